package databricks

import (
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/csv"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/airlockhq/airlock/version"
)

// tableWriter writes record batches to a table file.
type tableWriter interface {
	Write(rec arrow.RecordBatch) error
	// Close finishes the file; it does not close the underlying writer.
	Close() error
}

const (
	// rowGroupBytes and rowGroupRows bound a Parquet row group, which the
	// writer holds in memory until it is complete.
	rowGroupBytes = 64 << 20
	rowGroupRows  = 1 << 20
)

// parquetWriter writes a Parquet file, Snappy-compressed, with the Arrow
// schema stored so that readers get the same Arrow types back.
type parquetWriter struct {
	fw *pqarrow.FileWriter
}

// sinkOnly hides Close from the Parquet writer, which would otherwise close
// the file before the connector has synced it.
type sinkOnly struct{ w io.Writer }

func (s sinkOnly) Write(p []byte) (int, error) { return s.w.Write(p) }

func newParquetWriter(w io.Writer, schema *arrow.Schema) (*parquetWriter, error) {
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(rowGroupRows),
		parquet.WithCreatedBy(InstrumentName+" "+version.Version),
	)
	fw, err := pqarrow.NewFileWriter(schema, sinkOnly{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, err
	}
	return &parquetWriter{fw: fw}, nil
}

func (p *parquetWriter) Write(rec arrow.RecordBatch) error {
	if err := p.fw.WriteBuffered(rec); err != nil {
		return err
	}
	if p.fw.RowGroupTotalBytesWritten() >= rowGroupBytes {
		return p.fw.NewBufferedRowGroupChecked()
	}
	return nil
}

func (p *parquetWriter) Close() error { return p.fw.Close() }

// csvWriter writes RFC 4180 CSV with a header row; NULL is an empty field.
type csvWriter struct {
	w       *csv.Writer
	schema  *arrow.Schema
	written bool
}

func newCSVWriter(w io.Writer, schema *arrow.Schema) *csvWriter {
	return &csvWriter{w: csv.NewWriter(w, schema, csv.WithHeader(true), csv.WithNullWriter("")), schema: schema}
}

func (c *csvWriter) Write(rec arrow.RecordBatch) error {
	c.written = true
	return c.w.Write(rec)
}

func (c *csvWriter) Close() error {
	if !c.written {
		// An empty result still gets its header row.
		b := array.NewRecordBuilder(memory.NewGoAllocator(), c.schema)
		defer b.Release()
		rec := b.NewRecordBatch()
		defer rec.Release()
		if err := c.w.Write(rec); err != nil {
			return err
		}
	}
	return c.w.Flush()
}
