package outputchecks

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/airlockhq/airlock/model"
)

// tableSeparators are the table files a min-cell-count rule reads, by
// extension, and their field separator.
var tableSeparators = map[string]rune{".csv": ',', ".tsv": '\t', ".tab": '\t'}

// cellRef locates a small count: the data row (1 after the header), the
// file's line it starts on, and its column's header.
type cellRef struct {
	row, line int
	column    string
}

// tableScan is what scanning one table found.
type tableScan struct {
	small     int // cells holding a count from 1 to threshold-1
	examples  []cellRef
	rows      int
	noColumns bool   // no header matched the rule's columns
	unread    string // why the file could not be checked, or ""
}

// errRecordTooLong stops reading a table with a record above MaxRecordSize.
var errRecordTooLong = errors.New("record too long")

// minCellCount fails the CSV/TSV files (of those the rule's paths select)
// that hold a count from 1 to threshold-1 in a column the rule covers, and
// those it could not read through.
func minCellCount(ctx context.Context, r model.OutputRule, files []model.FileRecord, open OpenFunc) (model.CheckResult, error) {
	var res model.CheckResult
	var columns *regexp.Regexp
	if r.Columns != "" {
		var err error
		if columns, err = regexp.Compile(r.Columns); err != nil {
			return res, err // Validate has compiled it already
		}
	}
	var found, unread, noColumns []string
	read := 0
	for _, f := range files {
		sep, table := tableSeparators[strings.ToLower(path.Ext(f.Path))]
		if !table || !selected(r.Paths, f.Path) {
			continue
		}
		var s tableScan
		if err := readFile(ctx, open, f.Path, func(rd io.Reader) (err error) {
			s, err = scanTable(ctx, rd, sep, columns, r.Threshold)
			return err
		}); err != nil {
			return res, err
		}
		read++
		switch {
		case s.unread != "":
			unread = append(unread, fmt.Sprintf("%s (%s)", f.Path, s.unread))
			res.Files = append(res.Files, f.Path)
		case s.small > 0:
			found = append(found, fmt.Sprintf("%s (%s)", f.Path, describeCells(s)))
			res.Files = append(res.Files, f.Path)
		case s.noColumns:
			noColumns = append(noColumns, f.Path)
		}
	}
	which := "every column"
	if columns != nil {
		which = fmt.Sprintf("columns whose header matches %s", r.Columns)
	}
	if len(found)+len(unread) > 0 {
		var parts []string
		if len(found) > 0 {
			parts = append(parts, fmt.Sprintf("found counts from 1 to %d, which can identify people, in %s (%s): %s: suppress or round them (for example write <%d), then resubmit", r.Threshold-1, plural(len(found), "file"), which, nameSome(found), r.Threshold))
		}
		if len(unread) > 0 {
			parts = append(parts, fmt.Sprintf("could not check %s: %s: fix the file so it reads as a table, or ask the checkers to look at it", plural(len(unread), "file"), nameSome(unread)))
		}
		res.Message = ruleLabel(r) + ": " + strings.Join(parts, "; ")
		return res, nil
	}
	res.Passed = true
	if read == 0 {
		res.Message = fmt.Sprintf("%s: no CSV or TSV file%s to check", ruleLabel(r), scope(r))
		return res, nil
	}
	res.Message = fmt.Sprintf("%s: no count from 1 to %d in %s of the %s read%s", ruleLabel(r), r.Threshold-1, which, plural(read, "CSV/TSV file"), scope(r))
	if len(noColumns) > 0 {
		res.Message += fmt.Sprintf("; %s had no such column: %s", plural(len(noColumns), "file"), nameSome(noColumns))
	}
	return res, nil
}

// describeCells gives a table's small counts by row and column, never their
// values.
func describeCells(s tableScan) string {
	var refs []string
	for _, c := range s.examples {
		refs = append(refs, fmt.Sprintf("row %d (line %d) column %q", c.row, c.line, c.column))
	}
	out := strings.Join(refs, ", ")
	if more := s.small - len(s.examples); more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}

// boundedReader feeds a csv.Reader and fails once it holds more than
// MaxRecordSize bytes of one record: the bytes handed over beyond the end
// of the last record read.
type boundedReader struct {
	r    io.Reader
	n    int64
	recs *csv.Reader
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n-b.recs.InputOffset() > MaxRecordSize {
		return 0, errRecordTooLong
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// scanTable streams a table with a header row, counting the cells that
// hold a count from 1 to threshold-1 in the columns whose header matches
// columns (every column when nil; then also the columns past the header).
func scanTable(ctx context.Context, r io.Reader, sep rune, columns *regexp.Regexp, threshold int) (tableScan, error) {
	var s tableScan
	br := &boundedReader{r: r}
	recs := csv.NewReader(br)
	br.recs = recs
	recs.Comma = sep
	recs.LazyQuotes = true
	recs.FieldsPerRecord = -1
	recs.ReuseRecord = true

	// unreadable turns a parse or size failure into a finding; other
	// errors (the store's) are returned.
	unreadable := func(err error, row string) (tableScan, error) {
		var pe *csv.ParseError
		switch {
		case errors.Is(err, errRecordTooLong):
			s.unread = fmt.Sprintf("%s is longer than %s", row, model.FormatBytes(MaxRecordSize))
		case errors.As(err, &pe):
			s.unread = fmt.Sprintf("not a readable table at line %d: %v", pe.Line, pe.Err)
		default:
			return s, err
		}
		return s, nil
	}

	header, err := recs.Read()
	if err == io.EOF {
		return s, nil // an empty file holds no counts
	}
	if err != nil {
		return unreadable(err, "the header row")
	}
	names := make([]string, len(header))
	var covered []bool
	anyCovered := false
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		names[i] = strings.TrimSpace(h)
		ok := columns == nil || columns.MatchString(names[i])
		covered = append(covered, ok)
		anyCovered = anyCovered || ok
	}
	if !anyCovered {
		s.noColumns = true
		return s, nil
	}
	for {
		if s.rows%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return s, err
			}
		}
		rec, err := recs.Read()
		if err == io.EOF {
			return s, nil
		}
		if err != nil {
			return unreadable(err, fmt.Sprintf("row %d", s.rows+1))
		}
		s.rows++
		for i, cell := range rec {
			var column string
			switch {
			case i < len(names) && covered[i]:
				column = names[i]
			case i >= len(names) && columns == nil:
				column = fmt.Sprintf("column %d, past the header", i+1)
			default:
				continue
			}
			if !smallCount(cell, threshold) {
				continue
			}
			s.small++
			if len(s.examples) < MaxExamples {
				line, _ := recs.FieldPos(i)
				s.examples = append(s.examples, cellRef{row: s.rows, line: line, column: column})
			}
		}
	}
}

// smallCount reports whether cell is an integer (a trailing ".0" allowed)
// from 1 to threshold-1.
func smallCount(cell string, threshold int) bool {
	v := strings.TrimSpace(cell)
	if whole, frac, ok := strings.Cut(v, "."); ok {
		if frac == "" || strings.Trim(frac, "0") != "" {
			return false
		}
		v = whole
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return err == nil && n >= 1 && n < int64(threshold)
}
