package outputchecks

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/model"
)

func TestMinCellCount(t *testing.T) {
	w := newWorkspace(t, map[string]string{
		// Zero, negatives, fractions, words and counts at or over the
		// threshold pass; 3, "7.0" and " 4 " fail.
		"results/ok.csv": "region,patients,rate\nnorth,0,0.5\nsouth,10,4.5\neast,-3,n/a\nwest,1200,2.5\n",
		"results/small.csv": "region,patients,rate\n" +
			"north,3,0.5\n" +
			"\"south, coastal\",\"12\",1\n" +
			"\"a\nquoted newline\",7.0,2\n" +
			"east, 4 ,9\n",
		// Only the count columns are covered: a small rate is not a count.
		"results/rates.tsv": "Region\tcases_count\tdeaths_count\trate\nnorth\t25\t6\t2\n",
		// No column matches the rule's columns.
		"results/noheader.csv": "region,mean_age\nnorth,3\n",
		// Upper-case extension; an empty file; a text file is not a table.
		"results/UPPER.CSV": "name,n\nx,2\n",
		"results/empty.csv": "",
		"notes.txt":         "n\n1\n",
	})
	res := runRule(t, w, model.OutputRule{Name: "small-counts", Description: "disclosure control", Kind: model.RuleMinCellCount, Threshold: 10})
	wantFailed(t, res, []string{"results/UPPER.CSV", "results/noheader.csv", "results/rates.tsv", "results/small.csv"},
		"rule small-counts (disclosure control): found counts from 1 to 9, which can identify people, in 4 files (every column): ",
		`results/UPPER.CSV (row 1 (line 2) column "n")`,
		`results/noheader.csv (row 1 (line 2) column "mean_age")`,
		`results/rates.tsv (row 1 (line 2) column "deaths_count", row 1 (line 2) column "rate")`,
		// A cell is located by the line it starts on: the quoted newline
		// puts row 3's count on line 5.
		`results/small.csv (row 1 (line 2) column "patients", row 2 (line 3) column "rate", row 3 (line 5) column "patients" and 3 more)`,
		"suppress or round them (for example write <10), then resubmit")

	res = runRule(t, w, model.OutputRule{Kind: model.RuleMinCellCount, Threshold: 10, Columns: `(?i)count|patients|^n$`})
	wantFailed(t, res, []string{"results/UPPER.CSV", "results/rates.tsv", "results/small.csv"},
		"in 3 files (columns whose header matches (?i)count|patients|^n$)",
		`results/rates.tsv (row 1 (line 2) column "deaths_count")`,
		`results/small.csv (row 1 (line 2) column "patients", row 3 (line 5) column "patients", row 4 (line 6) column "patients")`)

	// Paths narrow the rule; the file with no matching column is named.
	res = runRule(t, w, model.OutputRule{Kind: model.RuleMinCellCount, Threshold: 10, Columns: `patients`, Paths: []string{"results/ok.csv", "noheader.csv", "empty.csv"}})
	wantPassed(t, res, "no count from 1 to 9 in columns whose header matches patients of the 3 CSV/TSV files read matching results/ok.csv, noheader.csv, empty.csv",
		"; 1 file had no such column: results/noheader.csv")

	res = runRule(t, w, model.OutputRule{Kind: model.RuleMinCellCount, Threshold: 2, Paths: []string{"*.parquet"}})
	wantPassed(t, res, "no CSV or TSV file matching *.parquet to check")
}

func TestSmallCount(t *testing.T) {
	for cell, want := range map[string]bool{
		"1": true, "4": true, " 4 ": true, "4.0": true, "4.00": true, "+4": true,
		"0": false, "5": false, "-1": false, "4.5": false, "4.": false, ".0": false, "": false,
		"four": false, "1e0": false, "1,000": false, "99999999999999999999": false,
	} {
		if got := smallCount(cell, 5); got != want {
			t.Errorf("smallCount(%q, 5) = %v; want %v", cell, got, want)
		}
	}
}

func TestMinCellCountHeaderQuirks(t *testing.T) {
	w := newWorkspace(t, map[string]string{
		// A byte-order mark and spaces around the header; a row longer
		// than the header; a bare quote (read leniently).
		"bom.csv": "\ufeff count , label\n12,a\"b\n20,x,3\n",
	})
	res := runRule(t, w, model.OutputRule{Kind: model.RuleMinCellCount, Threshold: 5, Columns: `^count$`})
	wantPassed(t, res, "of the 1 CSV/TSV file read")
	res = runRule(t, w, model.OutputRule{Kind: model.RuleMinCellCount, Threshold: 5})
	wantFailed(t, res, []string{"bom.csv"}, `bom.csv (row 2 (line 3) column "column 3, past the header")`)
	res = runRule(t, w, model.OutputRule{Kind: model.RuleMinCellCount, Threshold: 13, Columns: `^count$`})
	wantFailed(t, res, []string{"bom.csv"}, `bom.csv (row 1 (line 2) column "count")`)
}

// A record longer than MaxRecordSize (an unclosed quote swallowing the
// rest of a 32 MiB file) cannot be checked: the rule fails on it, having
// held no more than about one record in memory.
func TestMinCellCountRecordTooLong(t *testing.T) {
	const size = 32 << 20
	open := func(context.Context, string) (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader("name,count\nx,20\n\"unclosed,"), &endless{n: size, fill: 'y'})), nil
	}
	files := []model.FileRecord{{Path: "huge.csv", Size: size}}
	var res []model.CheckResult
	var err error
	peak := peakHeap(func() {
		res, err = Run(context.Background(), &model.OutputChecks{Rules: []model.OutputRule{
			{Name: "small-counts", Kind: model.RuleMinCellCount, Threshold: 10, OnFail: model.OnFailFlag},
		}}, files, open)
	})
	if err != nil {
		t.Fatal(err)
	}
	wantFailed(t, res[0], []string{"huge.csv"}, "could not check 1 file: huge.csv (row 2 is longer than 1.0 MiB): fix the file so it reads as a table, or ask the checkers to look at it")
	t.Logf("a %d MiB record refused with a peak heap of %d KiB", size>>20, peak>>10)
	if peak > 16<<20 {
		t.Errorf("reading a %d MiB record peaked at %d KiB of heap; want it bounded by MaxRecordSize", size>>20, peak>>10)
	}
}

// A 44 MiB table is streamed: memory does not grow with its rows.
func TestMinCellCountMemoryBounded(t *testing.T) {
	const rows = 2 << 20
	row := []byte("region-name,1234,5678\n")
	open := func(context.Context, string) (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader("region,a,b\n"), &repeat{unit: row, n: rows}, strings.NewReader("last,3,100\n"))), nil
	}
	var res []model.CheckResult
	var err error
	peak := peakHeap(func() {
		res, err = Run(context.Background(), &model.OutputChecks{Rules: []model.OutputRule{
			{Name: "small-counts", Kind: model.RuleMinCellCount, Threshold: 10, OnFail: model.OnFailFlag},
		}}, []model.FileRecord{{Path: "big.csv"}}, open)
	})
	if err != nil {
		t.Fatal(err)
	}
	wantFailed(t, res[0], []string{"big.csv"}, `big.csv (row 2097153 (line 2097154) column "a")`)
	t.Logf("a %d MiB table scanned with a peak heap of %d KiB", rows*len(row)>>20, peak>>10)
	if peak > 16<<20 {
		t.Errorf("scanning a %d MiB table peaked at %d KiB of heap; want it bounded", rows*len(row)>>20, peak>>10)
	}
}

// repeat reads unit n times.
type repeat struct {
	unit []byte
	n    int
	off  int
}

func (r *repeat) Read(p []byte) (int, error) {
	i := 0
	for i < len(p) && r.n > 0 {
		c := copy(p[i:], r.unit[r.off:])
		i += c
		r.off += c
		if r.off == len(r.unit) {
			r.off = 0
			r.n--
		}
	}
	if i == 0 {
		return 0, io.EOF
	}
	return i, nil
}
