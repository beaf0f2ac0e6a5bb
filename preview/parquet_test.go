package preview

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var base = time.Date(2024, 3, 1, 9, 30, 15, 123456000, time.UTC)

// writeParquet writes rows of a table with the shapes previews meet (ints,
// nullable strings, timestamps with and without a zone, dates, floats,
// booleans, binary, lists and structs), rowsPerGroup rows per row group.
func writeParquet(t *testing.T, rows, rowsPerGroup int) []byte {
	t.Helper()
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "seen_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "local_at", Type: &arrow.TimestampType{Unit: arrow.Millisecond}, Nullable: true},
		{Name: "born", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "ok", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
		{Name: "blob", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "tags", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
		{Name: "where", Type: arrow.StructOf(arrow.Field{Name: "lat", Type: arrow.PrimitiveTypes.Float64}, arrow.Field{Name: "site", Type: arrow.BinaryTypes.String}), Nullable: true},
	}, nil)
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithMaxRowGroupLength(int64(rowsPerGroup)))
	fw, err := pqarrow.NewFileWriter(schema, &buf, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	require.NoError(t, err)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	const batch = 5000
	for start := 0; start < rows; start += batch {
		for i := start; i < min(start+batch, rows); i++ {
			b.Field(0).(*array.Int64Builder).Append(int64(i))
			if i%7 == 3 {
				b.Field(1).AppendNull()
				b.Field(2).AppendNull()
				b.Field(3).AppendNull()
				b.Field(4).AppendNull()
				b.Field(5).AppendNull()
				b.Field(6).AppendNull()
				b.Field(7).AppendNull()
				b.Field(8).AppendNull()
				b.Field(9).AppendNull()
				continue
			}
			b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("person %d %s", i, strings.Repeat("x", 40)))
			ts := base.Add(time.Duration(i) * time.Hour)
			b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMicro()))
			b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(ts.UnixMilli()))
			b.Field(4).(*array.Date32Builder).Append(arrow.Date32FromTime(base.AddDate(0, 0, i)))
			b.Field(5).(*array.Float64Builder).Append(float64(i) + 0.5)
			b.Field(6).(*array.BooleanBuilder).Append(i%2 == 0)
			if i%2 == 0 {
				b.Field(7).(*array.BinaryBuilder).Append([]byte("text"))
			} else {
				b.Field(7).(*array.BinaryBuilder).Append([]byte{0, 1, 2, 0xff})
			}
			lb := b.Field(8).(*array.ListBuilder)
			lb.Append(true)
			lb.ValueBuilder().(*array.Int32Builder).AppendValues([]int32{int32(i), int32(i + 1)}, nil)
			sb := b.Field(9).(*array.StructBuilder)
			sb.Append(true)
			sb.FieldBuilder(0).(*array.Float64Builder).Append(51.5)
			sb.FieldBuilder(1).(*array.StringBuilder).Append("leeds")
		}
		rec := b.NewRecordBatch()
		require.NoError(t, fw.WriteBuffered(rec))
		rec.Release()
	}
	require.NoError(t, fw.Close())
	return buf.Bytes()
}

func TestParquetValues(t *testing.T) {
	data := writeParquet(t, 10, 100)
	tab, err := Parquet(bytes.NewReader(data), int64(len(data)), 5)
	require.NoError(t, err)
	assert.Equal(t, []string{"id", "name", "seen_at", "local_at", "born", "score", "ok", "blob", "tags", "where"}, tab.Columns)
	require.Len(t, tab.Rows, 5)
	assert.True(t, tab.Truncated)

	r0 := tab.Rows[0]
	assert.Equal(t, "0", r0[0])
	assert.Equal(t, "person 0 "+strings.Repeat("x", 40), r0[1])
	assert.Equal(t, "2024-03-01T09:30:15.123456Z", r0[2], "timestamps in RFC 3339")
	assert.Equal(t, "2024-03-01T09:30:15.123Z", r0[3])
	assert.Equal(t, "2024-03-01", r0[4])
	assert.Equal(t, "0.5", r0[5])
	assert.Equal(t, "true", r0[6])
	assert.Equal(t, "text", r0[7], "binary that is text shows as text")
	assert.Equal(t, "[0,1]", r0[8])
	assert.Contains(t, r0[9], "leeds")
	assert.Contains(t, r0[9], "51.5")

	r1 := tab.Rows[1]
	assert.Equal(t, "2024-03-01T10:30:15.123456Z", r1[2])
	assert.Equal(t, "base64:AAEC/w==", r1[7], "other binary shows as base64")

	// Row 3 is all nulls but its id: nulls are empty.
	assert.Equal(t, []string{"3", "", "", "", "", "", "", "", "", ""}, tab.Rows[3])

	all, err := Parquet(bytes.NewReader(data), int64(len(data)), 100)
	require.NoError(t, err)
	assert.Len(t, all.Rows, 10)
	assert.False(t, all.Truncated)
}

func TestParquetTimeZone(t *testing.T) {
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{{Name: "at", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "Europe/London"}}}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	b.Field(0).(*array.TimestampBuilder).Append(arrow.Timestamp(time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC).UnixMilli()))
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	fw, err := pqarrow.NewFileWriter(schema, &buf, parquet.NewWriterProperties(), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	require.NoError(t, err)
	require.NoError(t, fw.Write(rec))
	require.NoError(t, fw.Close())
	tab, err := Parquet(bytes.NewReader(buf.Bytes()), int64(buf.Len()), 5)
	require.NoError(t, err)
	require.Len(t, tab.Rows, 1)
	assert.Equal(t, "2024-07-01T13:00:00+01:00", tab.Rows[0][0], "shown in the column's zone")
}

// A large file with many row groups is previewed from its footer and its
// first row group only: a small fraction of its bytes are read.
func TestParquetReadsOnlyTheFirstRowGroups(t *testing.T) {
	data := writeParquet(t, 200_000, 10_000)
	r := &countingReaderAt{r: bytes.NewReader(data)}
	tab, err := Parquet(r, int64(len(data)), 20)
	require.NoError(t, err)
	require.Len(t, tab.Rows, 20)
	assert.True(t, tab.Truncated)
	assert.Equal(t, "19", tab.Rows[19][0])
	read := r.n.Load()
	t.Logf("file %d bytes, preview read %d bytes (%.1f%%)", len(data), read, 100*float64(read)/float64(len(data)))
	assert.Less(t, read, int64(len(data))/5, "reads the first of 20 row groups, not the whole file")

	// Rows that span row groups come from each in order.
	tab, err = Parquet(bytes.NewReader(data), int64(len(data)), 1000)
	require.NoError(t, err)
	require.Len(t, tab.Rows, 1000)
	assert.Equal(t, "999", tab.Rows[999][0])
	small := writeParquet(t, 30, 10)
	tab, err = Parquet(bytes.NewReader(small), int64(len(small)), 25)
	require.NoError(t, err)
	require.Len(t, tab.Rows, 25)
	for i, row := range tab.Rows {
		require.Equal(t, fmt.Sprint(i), row[0])
	}
}

func TestParquetRefusals(t *testing.T) {
	_, err := Parquet(bytes.NewReader([]byte("id,name\n1,a\n")), 12, 5)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a Parquet file")

	_, err = Parquet(bytes.NewReader([]byte("PAR1")), 4, 5)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "too small")

	// A footer length larger than the preview reads is refused before
	// anything is allocated for it.
	fake := append(make([]byte, 16), 0xff, 0xff, 0xff, 0x7f, 'P', 'A', 'R', '1')
	_, err = Parquet(bytes.NewReader(fake), int64(len(fake)), 5)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "footer")

	// A truncated file (its footer gone) is refused, not half read.
	data := writeParquet(t, 10, 100)
	_, err = Parquet(bytes.NewReader(data[:len(data)/2]), int64(len(data)/2), 5)
	require.Error(t, err)
}

type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}
