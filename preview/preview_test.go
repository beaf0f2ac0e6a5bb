package preview

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleData(t *testing.T, name string) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "examples", "sample-data", name)
}

func TestCSVSampleData(t *testing.T) {
	path := sampleData(t, "clinic/patients.csv")
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	tab, err := CSV(f, 5)
	require.NoError(t, err)
	assert.Equal(t, []string{"person_id", "year_of_birth", "sex", "lsoa"}, tab.Columns)
	require.Len(t, tab.Rows, 5)
	assert.True(t, tab.Truncated, "patients.csv holds 200 rows, 5 were shown")

	// The rows are the file's first rows, as encoding/csv reads them.
	all, err := os.ReadFile(path)
	require.NoError(t, err)
	want, err := csv.NewReader(bytes.NewReader(all)).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, want[1:6], tab.Rows)

	// Default and maximum row counts.
	f.Seek(0, 0)
	tab, err = CSV(f, 0)
	require.NoError(t, err)
	assert.Len(t, tab.Rows, DefaultRows)
	f.Seek(0, 0)
	tab, err = CSV(f, 5000)
	require.NoError(t, err)
	assert.Len(t, tab.Rows, 200)
	assert.False(t, tab.Truncated, "every row was shown")
}

func TestCSVExactlyMaxRowsIsNotTruncated(t *testing.T) {
	tab, err := CSV(strings.NewReader("a,b\n1,2\n3,4\n"), 2)
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"1", "2"}, {"3", "4"}}, tab.Rows)
	assert.False(t, tab.Truncated)

	tab, err = CSV(strings.NewReader("a,b\n1,2\n3,4\n5,6"), 2)
	require.NoError(t, err)
	assert.Len(t, tab.Rows, 2)
	assert.True(t, tab.Truncated)
}

func TestCSVShapes(t *testing.T) {
	in := "\ufeffid,note,n\n1,\"two\nlines, and a comma\",3\n2,short\n3,x,y,extra\n4,,\n"
	tab, err := CSV(strings.NewReader(in), 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"id", "note", "n"}, tab.Columns, "the byte-order mark is not part of the first column's name")
	assert.Equal(t, [][]string{
		{"1", "two\nlines, and a comma", "3"},
		{"2", "short"},
		{"3", "x", "y", "extra"},
		{"4", "", ""},
	}, tab.Rows)
	assert.False(t, tab.Truncated)
}

func TestCSVEmpty(t *testing.T) {
	tab, err := CSV(strings.NewReader(""), 10)
	require.NoError(t, err)
	assert.Empty(t, tab.Columns)
	assert.Empty(t, tab.Rows)
	assert.NotNil(t, tab.Rows, "rows encode as [] in JSON, not null")

	tab, err = CSV(strings.NewReader("only,a,header\n"), 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"only", "a", "header"}, tab.Columns)
	assert.Empty(t, tab.Rows)
}

func TestTSV(t *testing.T) {
	tab, err := TSV(strings.NewReader("a\tb\n1,5\t2\n"), 10)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, tab.Columns)
	assert.Equal(t, [][]string{{"1,5", "2"}}, tab.Rows)
}

func TestCSVLongValuesAreCut(t *testing.T) {
	long := strings.Repeat("é", MaxCellBytes) // 2 bytes each
	tab, err := CSV(strings.NewReader("a,b\n"+long+",x\n"), 10)
	require.NoError(t, err)
	require.Len(t, tab.Rows, 1)
	v := tab.Rows[0][0]
	assert.True(t, strings.HasSuffix(v, "…"))
	assert.LessOrEqual(t, len(v), MaxCellBytes+len("…"))
	assert.True(t, strings.HasPrefix(long, strings.TrimSuffix(v, "…")), "cut on a character boundary")
	assert.Equal(t, "x", tab.Rows[0][1])
	assert.True(t, tab.Truncated, "a cut value marks the preview truncated")
}

// A file whose rows run past the byte limit is previewed up to it, and the
// row the limit cuts through is left out rather than shown partly.
func TestCSVByteLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,payload\n")
	row := strings.Repeat("z", 1<<20) // 1 MiB a row: the limit falls inside row 8
	for i := range 12 {
		b.WriteString(string(rune('a'+i)) + "," + row + "\n")
	}
	r := &countingReader{r: strings.NewReader(b.String())}
	tab, err := CSV(r, 100)
	require.NoError(t, err)
	assert.True(t, tab.Truncated)
	assert.LessOrEqual(t, r.n, int64(MaxCSVBytes), "never reads past the limit")
	require.NotEmpty(t, tab.Rows)
	assert.Less(t, len(tab.Rows), 8)
	for i, rw := range tab.Rows {
		require.Len(t, rw, 2, "row %d is whole", i)
		assert.Equal(t, string(rune('a'+i)), rw[0])
	}
}

func TestCSVUnreadable(t *testing.T) {
	_, err := CSV(strings.NewReader("a,b\n\"1,2\n"), 10)
	// An unterminated quote reaches the end of the file: with lazy quotes
	// this is read as a value, so no error; a reader error is reported.
	require.NoError(t, err)
	_, err = CSV(&failingReader{}, 10)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "header row")
}

func TestSupported(t *testing.T) {
	for p, want := range map[string]bool{
		"a.csv": true, "dir/B.CSV": true, "x.tsv": true, "t/p.parquet": true, "p.Parquet": true,
		"a.json": false, "csv": false, "a.csv.gz": false, "": false,
	} {
		assert.Equal(t, want, Supported(p), p)
	}
}

func TestFileDispatchesOnExtension(t *testing.T) {
	data := []byte("a\tb\n1\t2\n")
	tab, err := File(bytes.NewReader(data), int64(len(data)), "x/y.TSV", 5)
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, tab.Columns)
	_, err = File(bytes.NewReader(data), int64(len(data)), "notes.txt", 5)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "notes.txt")
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, os.ErrClosed }
