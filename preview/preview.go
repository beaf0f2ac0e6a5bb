// Package preview reads the first rows of tabular files (CSV, TSV and
// Parquet) so that a reviewer can see what a request holds before deciding
// on it. Memory stays bounded whatever the file's size: CSV is read through a
// byte limit, and Parquet reads only the footer and the pages of the first
// row groups that hold the rows asked for.
package preview

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf8"
)

// Table is the head of a tabular file: its column names and first rows,
// every value rendered as a string (null as "").
type Table struct {
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
	// Truncated is true when the file holds more rows than Rows, or a
	// value or the header was cut short.
	Truncated bool `json:"truncated"`
}

// Bounds on what a preview reads and returns.
const (
	// DefaultRows is the number of rows a preview shows when not told.
	DefaultRows = 20
	// MaxRows is the most rows a preview returns.
	MaxRows = 1000
	// MaxCellBytes bounds one rendered value; longer values end in "…".
	MaxCellBytes = 1024
	// MaxColumns bounds the columns a preview shows.
	MaxColumns = 500
	// MaxCSVBytes bounds how much of a delimited file is read: a file
	// whose first rows are longer than this is previewed up to it.
	MaxCSVBytes = 8 << 20
)

// Supported reports whether a preview can be made of the file at p, judged
// by its extension (.csv, .tsv, .parquet; any case).
func Supported(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".csv", ".tsv", ".parquet":
		return true
	}
	return false
}

// File previews the file at p (used only for its extension) of the given
// size, reading it through r.
func File(r io.ReaderAt, size int64, p string, maxRows int) (Table, error) {
	switch strings.ToLower(path.Ext(p)) {
	case ".csv":
		return CSV(io.NewSectionReader(r, 0, size), maxRows)
	case ".tsv":
		return TSV(io.NewSectionReader(r, 0, size), maxRows)
	case ".parquet":
		return Parquet(r, size, maxRows)
	}
	return Table{}, fmt.Errorf("%s: no preview for this kind of file: previews are made of .csv, .tsv and .parquet files", p)
}

// CSV reads the header and the first maxRows rows of comma-separated text
// (RFC 4180; rows may have differing numbers of fields). maxRows <= 0 means
// DefaultRows; more than MaxRows means MaxRows.
func CSV(r io.Reader, maxRows int) (Table, error) { return delimited(r, ',', maxRows) }

// TSV is CSV for tab-separated text.
func TSV(r io.Reader, maxRows int) (Table, error) { return delimited(r, '\t', maxRows) }

func delimited(r io.Reader, comma rune, maxRows int) (Table, error) {
	maxRows = clampRows(maxRows)
	lr := &io.LimitedReader{R: r, N: MaxCSVBytes}
	cr := csv.NewReader(lr)
	cr.Comma = comma
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	// cut reports whether the byte limit was reached: the record just
	// read may then be incomplete.
	cut := func() bool { return lr.N <= 0 }
	t := Table{Columns: []string{}, Rows: [][]string{}}
	header, err := cr.Read()
	switch {
	case errors.Is(err, io.EOF):
		return t, nil // an empty file has no columns and no rows
	case err != nil:
		return Table{}, fmt.Errorf("reading the header row: %w", err)
	case cut():
		t.Truncated = true
		return t, nil // the header alone is longer than the limit
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	t.Columns = t.cells(header)
	// A record is kept once the next one has been read (or the file ended
	// within the limit), so that a record the limit cut short is never
	// shown as if it were whole.
	var pending []string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			if pending != nil {
				if cut() {
					t.Truncated = true
				} else {
					t.Rows = append(t.Rows, pending)
				}
			}
			return t, nil
		}
		if err != nil {
			if cut() {
				if pending != nil {
					t.Rows = append(t.Rows, pending)
				}
				t.Truncated = true
				return t, nil
			}
			return Table{}, fmt.Errorf("not readable as delimited text: %w", err)
		}
		if pending != nil {
			t.Rows = append(t.Rows, pending)
		}
		if len(t.Rows) == maxRows {
			t.Truncated = true
			return t, nil
		}
		pending = t.cells(rec)
	}
}

// cells copies a record, bounding the number of columns and each value's
// length (and marking the table truncated when it cuts).
func (t *Table) cells(rec []string) []string {
	n := len(rec)
	if n > MaxColumns {
		n = MaxColumns
		t.Truncated = true
	}
	out := make([]string, n)
	for i := range n {
		out[i] = t.cell(rec[i])
	}
	return out
}

// cell bounds one value to MaxCellBytes, cutting on a rune boundary.
func (t *Table) cell(v string) string {
	if len(v) <= MaxCellBytes {
		return strings.Clone(v)
	}
	t.Truncated = true
	cut := MaxCellBytes
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "…"
}

func clampRows(n int) int {
	switch {
	case n <= 0:
		return DefaultRows
	case n > MaxRows:
		return MaxRows
	}
	return n
}

// printable reports whether b reads as text (valid UTF-8 without control
// characters other than tab and newlines).
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	return !bytes.ContainsFunc(b, func(r rune) bool {
		return r < 0x20 && r != '\t' && r != '\n' && r != '\r'
	})
}
