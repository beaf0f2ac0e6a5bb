package databricks

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/databricks/databricks-sdk-go/service/sql"
)

var decimalTextRE = regexp.MustCompile(`^DECIMAL\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)`)

// arrowType is the Arrow type the connector writes for a result column,
// from the manifest's type_name (and type_text where type_name is not
// enough). Types without an exact Arrow counterpart are strings.
func arrowType(c sql.ColumnInfo) arrow.DataType {
	name := strings.ToUpper(string(c.TypeName))
	text := strings.ToUpper(strings.TrimSpace(c.TypeText))
	if name == "" {
		name, _, _ = strings.Cut(text, "(")
		name, _, _ = strings.Cut(name, "<")
		name = strings.TrimSpace(name)
	}
	switch name {
	case "BOOLEAN":
		return arrow.FixedWidthTypes.Boolean
	case "BYTE", "TINYINT":
		return arrow.PrimitiveTypes.Int8
	case "SHORT", "SMALLINT":
		return arrow.PrimitiveTypes.Int16
	case "INT", "INTEGER":
		return arrow.PrimitiveTypes.Int32
	case "LONG", "BIGINT":
		return arrow.PrimitiveTypes.Int64
	case "FLOAT", "REAL":
		return arrow.PrimitiveTypes.Float32
	case "DOUBLE":
		return arrow.PrimitiveTypes.Float64
	case "DECIMAL", "DEC", "NUMERIC":
		p, s := c.TypePrecision, c.TypeScale
		if p == 0 {
			p, s = 10, 0 // DECIMAL without arguments is DECIMAL(10,0)
			if m := decimalTextRE.FindStringSubmatch(text); m != nil {
				p, _ = strconv.Atoi(m[1])
				if m[2] != "" {
					s, _ = strconv.Atoi(m[2])
				}
			}
		}
		if p > 38 {
			return &arrow.Decimal256Type{Precision: int32(p), Scale: int32(s)}
		}
		return &arrow.Decimal128Type{Precision: int32(p), Scale: int32(s)}
	case "STRING", "CHAR", "VARCHAR":
		return arrow.BinaryTypes.String
	case "BINARY":
		return arrow.BinaryTypes.Binary
	case "DATE":
		return arrow.FixedWidthTypes.Date32
	case "TIMESTAMP_NTZ":
		return &arrow.TimestampType{Unit: arrow.Microsecond}
	case "TIMESTAMP":
		if strings.HasPrefix(text, "TIMESTAMP_NTZ") {
			return &arrow.TimestampType{Unit: arrow.Microsecond}
		}
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	}
	// ARRAY, MAP, STRUCT, INTERVAL, VARIANT, NULL, USER_DEFINED_TYPE and
	// anything newer.
	return arrow.BinaryTypes.String
}

// arrowSchema is the schema of the file the connector writes.
func arrowSchema(cols []sql.ColumnInfo) (*arrow.Schema, error) {
	fields := make([]arrow.Field, len(cols))
	seen := map[string]bool{}
	for i, c := range cols {
		if c.Name == "" {
			return nil, fmt.Errorf("column %d of the result has no name", i+1)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("the result has two columns named %q: give them distinct names (AS) in a query", c.Name)
		}
		seen[c.Name] = true
		fields[i] = arrow.Field{Name: c.Name, Type: arrowType(c), Nullable: true}
	}
	return arrow.NewSchema(fields, nil), nil
}

// conformRecord returns rec with every column in the type schema gives it.
// Columns already of that type are kept; others are converted where the
// conversion loses nothing (wider integers, another timestamp unit or zone
// label, another decimal precision, large or view variants, text for types
// written as strings). The caller releases the result.
func conformRecord(rec arrow.RecordBatch, schema *arrow.Schema, mem memory.Allocator) (arrow.RecordBatch, error) {
	cols := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i := range cols {
		c, err := conform(rec.Column(i), schema.Field(i).Type, mem)
		if err != nil {
			return nil, fmt.Errorf("column %q: %v", schema.Field(i).Name, err)
		}
		cols[i] = c
	}
	return array.NewRecordBatch(schema, cols, rec.NumRows()), nil
}

// conform converts one column to the target type. The result is retained.
func conform(a arrow.Array, target arrow.DataType, mem memory.Allocator) (arrow.Array, error) {
	if arrow.TypeEqual(a.DataType(), target) {
		a.Retain()
		return a, nil
	}
	cannot := func() (arrow.Array, error) {
		return nil, fmt.Errorf("Databricks sent Arrow type %s where the manifest's type maps to %s, and the connector cannot convert it without loss; cast the column in the object's query, e.g. CAST(col AS STRING)", a.DataType(), target)
	}
	n := a.Len()
	switch t := target.(type) {
	case *arrow.TimestampType:
		src, ok := a.(*array.Timestamp)
		if !ok {
			return cannot()
		}
		from := src.DataType().(*arrow.TimestampType).Unit
		b := array.NewTimestampBuilder(mem, t)
		defer b.Release()
		for i := range n {
			if src.IsNull(i) {
				b.AppendNull()
				continue
			}
			v, ok := rescaleTime(int64(src.Value(i)), from, t.Unit)
			if !ok {
				return nil, fmt.Errorf("timestamp %d (%s) does not fit in %s", src.Value(i), from, t.Unit)
			}
			b.Append(arrow.Timestamp(v))
		}
		return b.NewArray(), nil
	case *arrow.Int8Type, *arrow.Int16Type, *arrow.Int32Type, *arrow.Int64Type:
		lo, hi := intRange(target)
		if _, ok := intValue(a, 0); !ok && n > 0 {
			return cannot()
		}
		b := array.NewBuilder(mem, target)
		defer b.Release()
		for i := range n {
			if a.IsNull(i) {
				b.AppendNull()
				continue
			}
			v, ok := intValue(a, i)
			if !ok {
				return cannot()
			}
			if v < lo || v > hi {
				return nil, fmt.Errorf("value %d does not fit in %s", v, target)
			}
			switch b := b.(type) {
			case *array.Int8Builder:
				b.Append(int8(v))
			case *array.Int16Builder:
				b.Append(int16(v))
			case *array.Int32Builder:
				b.Append(int32(v))
			case *array.Int64Builder:
				b.Append(v)
			}
		}
		return b.NewArray(), nil
	case *arrow.Float64Type:
		src, ok := a.(*array.Float32)
		if !ok {
			return cannot()
		}
		b := array.NewFloat64Builder(mem)
		defer b.Release()
		for i := range n {
			if src.IsNull(i) {
				b.AppendNull()
			} else {
				b.Append(float64(src.Value(i)))
			}
		}
		return b.NewArray(), nil
	case *arrow.Decimal128Type:
		src, ok := a.(*array.Decimal128)
		if !ok {
			return cannot()
		}
		from := src.DataType().(*arrow.Decimal128Type).Scale
		b := array.NewDecimal128Builder(mem, t)
		defer b.Release()
		for i := range n {
			if src.IsNull(i) {
				b.AppendNull()
				continue
			}
			v, err := src.Value(i).Rescale(from, t.Scale)
			if err != nil || !v.FitsInPrecision(t.Precision) {
				return nil, fmt.Errorf("decimal %s does not fit in %s", src.Value(i).ToString(from), t)
			}
			b.Append(v)
		}
		return b.NewArray(), nil
	case *arrow.Decimal256Type:
		src, ok := a.(*array.Decimal256)
		if !ok {
			return cannot()
		}
		from := src.DataType().(*arrow.Decimal256Type).Scale
		b := array.NewDecimal256Builder(mem, t)
		defer b.Release()
		for i := range n {
			if src.IsNull(i) {
				b.AppendNull()
				continue
			}
			v, err := src.Value(i).Rescale(from, t.Scale)
			if err != nil || !v.FitsInPrecision(t.Precision) {
				return nil, fmt.Errorf("decimal %s does not fit in %s", src.Value(i).ToString(from), t)
			}
			b.Append(v)
		}
		return b.NewArray(), nil
	case *arrow.Date32Type:
		src, ok := a.(*array.Date64)
		if !ok {
			return cannot()
		}
		b := array.NewDate32Builder(mem)
		defer b.Release()
		for i := range n {
			if src.IsNull(i) {
				b.AppendNull()
			} else {
				b.Append(arrow.Date32FromTime(src.Value(i).ToTime()))
			}
		}
		return b.NewArray(), nil
	case *arrow.StringType:
		b := array.NewStringBuilder(mem)
		defer b.Release()
		for i := range n {
			switch {
			case a.IsNull(i):
				b.AppendNull()
			default:
				switch src := a.(type) {
				case *array.LargeString:
					b.Append(src.Value(i))
				case *array.StringView:
					b.Append(src.Value(i))
				default:
					// Complex types and anything else Databricks sends
					// natively: their text (JSON for nested values).
					b.Append(a.ValueStr(i))
				}
			}
		}
		return b.NewArray(), nil
	case *arrow.BinaryType:
		b := array.NewBinaryBuilder(mem, arrow.BinaryTypes.Binary)
		defer b.Release()
		for i := range n {
			if a.IsNull(i) {
				b.AppendNull()
				continue
			}
			switch src := a.(type) {
			case *array.LargeBinary:
				b.Append(src.Value(i))
			case *array.BinaryView:
				b.Append(src.Value(i))
			case *array.FixedSizeBinary:
				b.Append(src.Value(i))
			default:
				return cannot()
			}
		}
		return b.NewArray(), nil
	}
	return cannot()
}

// rescaleTime converts a timestamp between units, reporting overflow or a
// loss of precision.
func rescaleTime(v int64, from, to arrow.TimeUnit) (int64, bool) {
	mult := map[arrow.TimeUnit]int64{arrow.Second: 1, arrow.Millisecond: 1e3, arrow.Microsecond: 1e6, arrow.Nanosecond: 1e9}
	f, t := mult[from], mult[to]
	switch {
	case f == t:
		return v, true
	case t > f:
		k := t / f
		if v > math.MaxInt64/k || v < math.MinInt64/k {
			return 0, false
		}
		return v * k, true
	default:
		k := f / t
		return v / k, v%k == 0
	}
}

func intRange(t arrow.DataType) (int64, int64) {
	switch t.ID() {
	case arrow.INT8:
		return math.MinInt8, math.MaxInt8
	case arrow.INT16:
		return math.MinInt16, math.MaxInt16
	case arrow.INT32:
		return math.MinInt32, math.MaxInt32
	}
	return math.MinInt64, math.MaxInt64
}

// intValue reads element i of an integer array of any width.
func intValue(a arrow.Array, i int) (int64, bool) {
	switch a := a.(type) {
	case *array.Int8:
		return int64(a.Value(i)), true
	case *array.Int16:
		return int64(a.Value(i)), true
	case *array.Int32:
		return int64(a.Value(i)), true
	case *array.Int64:
		return a.Value(i), true
	case *array.Uint8:
		return int64(a.Value(i)), true
	case *array.Uint16:
		return int64(a.Value(i)), true
	case *array.Uint32:
		return int64(a.Value(i)), true
	case *array.Uint64:
		if a.Value(i) > math.MaxInt64 {
			return 0, false
		}
		return int64(a.Value(i)), true
	}
	return 0, false
}
