package fakedatabricks

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// colType is a column's type as the manifest describes it and as the fake
// encodes it in Arrow.
type colType struct {
	text      string // type_text
	name      string // type_name
	arrow     arrow.DataType
	precision int
	scale     int
}

var decimalRE = regexp.MustCompile(`^DECIMAL\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$`)

// parseType maps a SQL type to its manifest type_name and the Arrow type the
// fake sends. TIMESTAMP is sent as microseconds labelled Etc/UTC.
func parseType(text string) (colType, error) {
	t := strings.ToUpper(strings.TrimSpace(text))
	ct := colType{text: t}
	switch {
	case t == "BOOLEAN":
		ct.name, ct.arrow = "BOOLEAN", arrow.FixedWidthTypes.Boolean
	case t == "TINYINT" || t == "BYTE":
		ct.name, ct.arrow = "BYTE", arrow.PrimitiveTypes.Int8
	case t == "SMALLINT" || t == "SHORT":
		ct.name, ct.arrow = "SHORT", arrow.PrimitiveTypes.Int16
	case t == "INT" || t == "INTEGER":
		ct.name, ct.arrow = "INT", arrow.PrimitiveTypes.Int32
	case t == "BIGINT" || t == "LONG":
		ct.name, ct.arrow = "LONG", arrow.PrimitiveTypes.Int64
	case t == "FLOAT" || t == "REAL":
		ct.name, ct.arrow = "FLOAT", arrow.PrimitiveTypes.Float32
	case t == "DOUBLE":
		ct.name, ct.arrow = "DOUBLE", arrow.PrimitiveTypes.Float64
	case t == "DECIMAL" || decimalRE.MatchString(t):
		p, s := 10, 0
		if m := decimalRE.FindStringSubmatch(t); m != nil {
			p, _ = strconv.Atoi(m[1])
			s, _ = strconv.Atoi(m[2])
		}
		if p < 1 || p > 38 || s > p {
			return ct, fmt.Errorf("type %s: precision must be 1..38 and scale at most the precision", text)
		}
		ct.text = fmt.Sprintf("DECIMAL(%d,%d)", p, s)
		ct.name, ct.arrow, ct.precision, ct.scale = "DECIMAL", &arrow.Decimal128Type{Precision: int32(p), Scale: int32(s)}, p, s
	case t == "STRING" || strings.HasPrefix(t, "VARCHAR"):
		ct.name, ct.arrow = "STRING", arrow.BinaryTypes.String
	case strings.HasPrefix(t, "CHAR"):
		ct.name, ct.arrow = "CHAR", arrow.BinaryTypes.String
	case t == "BINARY":
		ct.name, ct.arrow = "BINARY", arrow.BinaryTypes.Binary
	case t == "DATE":
		ct.name, ct.arrow = "DATE", arrow.FixedWidthTypes.Date32
	case t == "TIMESTAMP":
		ct.name, ct.arrow = "TIMESTAMP", &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Etc/UTC"}
	case t == "TIMESTAMP_NTZ":
		ct.name, ct.arrow = "TIMESTAMP_NTZ", &arrow.TimestampType{Unit: arrow.Microsecond}
	case strings.HasPrefix(t, "ARRAY<"):
		ct.name, ct.arrow = "ARRAY", arrow.BinaryTypes.String
	case strings.HasPrefix(t, "MAP<"):
		ct.name, ct.arrow = "MAP", arrow.BinaryTypes.String
	case strings.HasPrefix(t, "STRUCT<"):
		ct.name, ct.arrow = "STRUCT", arrow.BinaryTypes.String
	case strings.HasPrefix(t, "INTERVAL"):
		ct.name, ct.arrow = "INTERVAL", arrow.BinaryTypes.String
	case t == "VOID":
		ct.name, ct.arrow = "NULL", arrow.BinaryTypes.String
	default:
		return ct, fmt.Errorf("unknown column type %q", text)
	}
	return ct, nil
}

// tableDef is a table with its parsed column types.
type tableDef struct {
	name   string
	table  *Table
	types  []colType
	schema *arrow.Schema
}

func newTableDef(name string, t *Table) (*tableDef, error) {
	if t == nil {
		return nil, fmt.Errorf("fakedatabricks: table %s is nil", name)
	}
	if parts := strings.Split(name, "."); len(parts) != 3 {
		return nil, fmt.Errorf("fakedatabricks: table name %q: give it as catalog.schema.table", name)
	}
	if t.Rows > 0 && t.Value == nil {
		return nil, fmt.Errorf("fakedatabricks: table %s has rows but no Value function", name)
	}
	def := &tableDef{name: name, table: t}
	fields := make([]arrow.Field, len(t.Columns))
	for i, c := range t.Columns {
		ct, err := parseType(c.Type)
		if err != nil {
			return nil, fmt.Errorf("fakedatabricks: table %s column %s: %v", name, c.Name, err)
		}
		def.types = append(def.types, ct)
		fields[i] = arrow.Field{Name: c.Name, Type: ct.arrow, Nullable: true}
	}
	def.schema = arrow.NewSchema(fields, nil)
	return def, nil
}

// encodeChunk writes rows [from, to) as an Arrow IPC stream of record
// batches of at most batchRows rows.
func (d *tableDef) encodeChunk(from, to, batchRows int64) ([]byte, error) {
	mem := memory.NewGoAllocator()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(d.schema), ipc.WithAllocator(mem))
	b := array.NewRecordBuilder(mem, d.schema)
	defer b.Release()
	for start := from; start < to; start += batchRows {
		end := min(start+batchRows, to)
		for row := start; row < end; row++ {
			for col, ct := range d.types {
				if err := appendValue(b.Field(col), ct, d.table.Value(row, col)); err != nil {
					return nil, fmt.Errorf("table %s row %d column %s: %v", d.name, row, d.table.Columns[col].Name, err)
				}
			}
		}
		rec := b.NewRecordBatch()
		err := w.Write(rec)
		rec.Release()
		if err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// appendValue appends v to a builder of column type ct.
func appendValue(b array.Builder, ct colType, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	bad := func() error { return fmt.Errorf("value %v (%T) does not fit type %s", v, v, ct.text) }
	switch b := b.(type) {
	case *array.BooleanBuilder:
		x, ok := v.(bool)
		if !ok {
			return bad()
		}
		b.Append(x)
	case *array.Int8Builder:
		x, ok := asInt(v)
		if !ok || x < math.MinInt8 || x > math.MaxInt8 {
			return bad()
		}
		b.Append(int8(x))
	case *array.Int16Builder:
		x, ok := asInt(v)
		if !ok || x < math.MinInt16 || x > math.MaxInt16 {
			return bad()
		}
		b.Append(int16(x))
	case *array.Int32Builder:
		x, ok := asInt(v)
		if !ok || x < math.MinInt32 || x > math.MaxInt32 {
			return bad()
		}
		b.Append(int32(x))
	case *array.Int64Builder:
		x, ok := asInt(v)
		if !ok {
			return bad()
		}
		b.Append(x)
	case *array.Float32Builder:
		switch x := v.(type) {
		case float32:
			b.Append(x)
		case float64:
			b.Append(float32(x))
		default:
			return bad()
		}
	case *array.Float64Builder:
		switch x := v.(type) {
		case float32:
			b.Append(float64(x))
		case float64:
			b.Append(x)
		default:
			return bad()
		}
	case *array.Decimal128Builder:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		n, err := decimal128.FromString(s, int32(ct.precision), int32(ct.scale))
		if err != nil {
			return fmt.Errorf("decimal %q: %v", s, err)
		}
		b.Append(n)
	case *array.StringBuilder:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		b.Append(s)
	case *array.BinaryBuilder:
		x, ok := v.([]byte)
		if !ok {
			return bad()
		}
		b.Append(x)
	case *array.Date32Builder:
		t, ok := v.(time.Time)
		if !ok {
			return bad()
		}
		b.Append(arrow.Date32FromTime(t))
	case *array.TimestampBuilder:
		t, ok := v.(time.Time)
		if !ok {
			return bad()
		}
		b.Append(arrow.Timestamp(t.UnixMicro()))
	default:
		return fmt.Errorf("no builder for type %s", ct.text)
	}
	return nil
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	}
	return 0, false
}
