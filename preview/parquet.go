package preview

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Bounds on what a Parquet preview reads.
const (
	// MaxFooterBytes bounds the file metadata a preview reads; a file
	// whose footer is larger (millions of row groups or columns) is
	// refused rather than loaded.
	MaxFooterBytes = 16 << 20
	// readBufferBytes is the read buffer of each column chunk stream.
	readBufferBytes = 64 << 10
	// maxPageBytes bounds one page, compressed or not.
	maxPageBytes = 64 << 20
)

// parquetMagic ends (and starts) every unencrypted Parquet file.
var parquetMagic = []byte("PAR1")

// Parquet reads the column names and first maxRows rows of a Parquet file
// of the given size. It reads the footer, then only the first row groups
// that hold those rows, page by page, so memory stays bounded by the pages
// of one batch whatever the file's size. Values are rendered as strings:
// null as "", timestamps in RFC 3339 (UTC unless the column names a zone),
// binary that is not text in base64, nested values as JSON-like text.
// maxRows <= 0 means DefaultRows; more than MaxRows means MaxRows.
func Parquet(r io.ReaderAt, size int64, maxRows int) (Table, error) {
	maxRows = clampRows(maxRows)
	if err := checkFooter(r, size); err != nil {
		return Table{}, err
	}
	mem := memory.NewGoAllocator()
	props := parquet.NewReaderProperties(mem)
	props.BufferedStreamEnabled = true
	props.BufferSize = readBufferBytes
	props.MaxCompressedPageSize = maxPageBytes
	props.MaxUncompressedPageSize = maxPageBytes
	pf, err := file.NewParquetReader(io.NewSectionReader(r, 0, size), file.WithReadProps(props))
	if err != nil {
		return Table{}, fmt.Errorf("not a readable Parquet file: %w", err)
	}
	defer pf.Close()
	return readParquet(pf, mem, maxRows)
}

// checkFooter refuses what is not a Parquet file, or one whose footer is
// too large to read, before the reader allocates it.
func checkFooter(r io.ReaderAt, size int64) error {
	if size < 12 {
		return fmt.Errorf("not a Parquet file: %d bytes is too small to hold one", size)
	}
	tail := make([]byte, 8)
	if _, err := r.ReadAt(tail, size-8); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the Parquet footer: %w", err)
	}
	if string(tail[4:]) != string(parquetMagic) {
		return fmt.Errorf("not a Parquet file (it does not end in %q), or an encrypted one, which cannot be previewed", parquetMagic)
	}
	if n := binary.LittleEndian.Uint32(tail[:4]); int64(n) > MaxFooterBytes {
		return fmt.Errorf("the Parquet footer is %d bytes, more than the %d a preview reads", n, MaxFooterBytes)
	}
	return nil
}

func readParquet(pf *file.Reader, mem memory.Allocator, maxRows int) (Table, error) {
	meta := pf.MetaData()
	// The first row groups holding maxRows+1 rows: one more than shown
	// tells whether the file holds more.
	var groups []int
	var rows int64
	for i := 0; i < pf.NumRowGroups() && rows <= int64(maxRows); i++ {
		if n := meta.RowGroup(i).NumRows(); n > 0 {
			groups = append(groups, i)
			rows += n
		}
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(maxRows)}, mem)
	if err != nil {
		return Table{}, fmt.Errorf("reading the Parquet schema: %w", err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return Table{}, fmt.Errorf("reading the Parquet schema: %w", err)
	}
	t := Table{Columns: []string{}, Rows: [][]string{}, Truncated: pf.NumRows() > int64(maxRows)}
	nfields := schema.NumFields()
	if nfields > MaxColumns {
		nfields = MaxColumns
		t.Truncated = true
	}
	for i := range nfields {
		t.Columns = append(t.Columns, t.cell(schema.Field(i).Name))
	}
	if len(groups) == 0 || nfields == 0 {
		return t, nil
	}
	fields := make([]int, nfields)
	for i := range fields {
		fields[i] = i
	}
	cols, err := leafColumns(fr, schema, fields)
	if err != nil {
		return Table{}, err
	}
	rr, err := fr.GetRecordReader(context.Background(), cols, groups)
	if err != nil {
		return Table{}, fmt.Errorf("reading the Parquet row groups: %w", err)
	}
	defer rr.Release()
	for len(t.Rows) < maxRows && rr.Next() {
		rec := rr.RecordBatch()
		for row := 0; row < int(rec.NumRows()) && len(t.Rows) < maxRows; row++ {
			out := make([]string, rec.NumCols())
			for c := range out {
				out[c] = t.cell(render(rec.Column(c), row))
			}
			t.Rows = append(t.Rows, out)
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return Table{}, fmt.Errorf("reading Parquet rows: %w", err)
	}
	return t, nil
}

// leafColumns lists the Parquet leaf columns of the given top-level fields,
// which is what the record reader selects by.
func leafColumns(fr *pqarrow.FileReader, schema *arrow.Schema, fields []int) ([]int, error) {
	manifest := fr.Manifest
	if manifest == nil {
		return nil, fmt.Errorf("reading the Parquet schema: no schema manifest")
	}
	var leaves []int
	var walk func(f pqarrow.SchemaField)
	walk = func(f pqarrow.SchemaField) {
		if f.ColIndex >= 0 && len(f.Children) == 0 {
			leaves = append(leaves, f.ColIndex)
		}
		for _, ch := range f.Children {
			walk(ch)
		}
	}
	for _, i := range fields {
		if i >= len(manifest.Fields) {
			return nil, fmt.Errorf("reading the Parquet schema: field %d of %d missing", i, schema.NumFields())
		}
		walk(manifest.Fields[i])
	}
	return leaves, nil
}

// render shows one value as text.
func render(col arrow.Array, i int) string {
	if col.IsNull(i) {
		return ""
	}
	switch a := col.(type) {
	case *array.Timestamp:
		typ := a.DataType().(*arrow.TimestampType)
		ts := a.Value(i).ToTime(typ.Unit)
		if typ.TimeZone != "" {
			if loc, err := time.LoadLocation(typ.TimeZone); err == nil {
				return ts.In(loc).Format(time.RFC3339Nano)
			}
		}
		return ts.UTC().Format(time.RFC3339Nano)
	case *array.Date32:
		return a.Value(i).ToTime().Format(time.DateOnly)
	case *array.Date64:
		return a.Value(i).ToTime().Format(time.DateOnly)
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return renderBytes(a.Value(i))
	case *array.LargeBinary:
		return renderBytes(a.Value(i))
	case *array.FixedSizeBinary:
		return renderBytes(a.Value(i))
	case *array.Dictionary:
		return render(a.Dictionary(), a.GetValueIndex(i))
	}
	return col.ValueStr(i)
}

// renderBytes shows bytes as text when they are text, else as base64.
func renderBytes(b []byte) string {
	if printable(b) {
		return string(b)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(b)
}
