package databricks

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/databricks/databricks-sdk-go/service/sql"
)

func TestArrowTypeMapping(t *testing.T) {
	cases := []struct {
		name, text string
		p, s       int
		want       string
	}{
		{"BOOLEAN", "BOOLEAN", 0, 0, "bool"},
		{"BYTE", "TINYINT", 0, 0, "int8"},
		{"SHORT", "SMALLINT", 0, 0, "int16"},
		{"INT", "INT", 0, 0, "int32"},
		{"LONG", "BIGINT", 0, 0, "int64"},
		{"", "BIGINT", 0, 0, "int64"},
		{"FLOAT", "FLOAT", 0, 0, "float32"},
		{"DOUBLE", "DOUBLE", 0, 0, "float64"},
		{"DECIMAL", "DECIMAL(12,2)", 12, 2, "decimal(12, 2)"},
		{"DECIMAL", "DECIMAL(20,4)", 0, 0, "decimal(20, 4)"},
		{"", "DECIMAL(7)", 0, 0, "decimal(7, 0)"},
		{"DECIMAL", "DECIMAL", 0, 0, "decimal(10, 0)"},
		{"DECIMAL", "DECIMAL(40,2)", 40, 2, "decimal256(40, 2)"},
		{"STRING", "STRING", 0, 0, "utf8"},
		{"CHAR", "CHAR(3)", 0, 0, "utf8"},
		{"STRING", "VARCHAR(10)", 0, 0, "utf8"},
		{"BINARY", "BINARY", 0, 0, "binary"},
		{"DATE", "DATE", 0, 0, "date32"},
		{"TIMESTAMP", "TIMESTAMP", 0, 0, "timestamp[us, tz=UTC]"},
		{"TIMESTAMP_NTZ", "TIMESTAMP_NTZ", 0, 0, "timestamp[us]"},
		{"TIMESTAMP", "TIMESTAMP_NTZ", 0, 0, "timestamp[us]"},
		{"ARRAY", "ARRAY<INT>", 0, 0, "utf8"},
		{"MAP", "MAP<STRING,INT>", 0, 0, "utf8"},
		{"STRUCT", "STRUCT<a:INT>", 0, 0, "utf8"},
		{"INTERVAL", "INTERVAL DAY TO SECOND", 0, 0, "utf8"},
		{"NULL", "VOID", 0, 0, "utf8"},
		{"VARIANT", "VARIANT", 0, 0, "utf8"},
		{"GEOGRAPHY", "GEOGRAPHY(4326)", 0, 0, "utf8"},
	}
	for _, c := range cases {
		got := arrowType(sql.ColumnInfo{TypeName: sql.ColumnInfoTypeName(c.name), TypeText: c.text, TypePrecision: c.p, TypeScale: c.s})
		if got.String() != c.want {
			t.Errorf("%s %s: %s, want %s", c.name, c.text, got, c.want)
		}
	}
}

func TestArrowSchemaRefusesDuplicateColumns(t *testing.T) {
	_, err := arrowSchema([]sql.ColumnInfo{{Name: "a", TypeName: "INT"}, {Name: "a", TypeName: "INT"}})
	if err == nil || !strings.Contains(err.Error(), `two columns named "a"`) {
		t.Errorf("err = %v", err)
	}
}

func TestConform(t *testing.T) {
	mem := memory.NewGoAllocator()
	build := func(dt arrow.DataType, fill func(b array.Builder)) arrow.Array {
		b := array.NewBuilder(mem, dt)
		defer b.Release()
		fill(b)
		return b.NewArray()
	}
	conv := func(a arrow.Array, to arrow.DataType) (string, error) {
		out, err := conform(a, to, mem)
		if err != nil {
			return "", err
		}
		defer out.Release()
		if !arrow.TypeEqual(out.DataType(), to) {
			t.Fatalf("conform to %s gave %s", to, out.DataType())
		}
		var vals []string
		for i := range out.Len() {
			vals = append(vals, out.ValueStr(i))
		}
		return strings.Join(vals, "|"), nil
	}

	ints := build(arrow.PrimitiveTypes.Int32, func(b array.Builder) {
		b.(*array.Int32Builder).AppendValues([]int32{1, -2}, nil)
		b.AppendNull()
	})
	if got, err := conv(ints, arrow.PrimitiveTypes.Int64); err != nil || got != "1|-2|(null)" {
		t.Errorf("int32 to int64: %q, %v", got, err)
	}
	big := build(arrow.PrimitiveTypes.Int64, func(b array.Builder) { b.(*array.Int64Builder).Append(1 << 40) })
	if _, err := conv(big, arrow.PrimitiveTypes.Int32); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("int64 overflow to int32: %v", err)
	}

	ms := &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "Etc/UTC"}
	ts := build(ms, func(b array.Builder) { b.(*array.TimestampBuilder).Append(1700000000123) })
	us := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	if got, err := conv(ts, us); err != nil || got != "2023-11-14T22:13:20.123Z" {
		t.Errorf("timestamp ms to us: %q, %v", got, err)
	}
	ns := build(&arrow.TimestampType{Unit: arrow.Nanosecond}, func(b array.Builder) { b.(*array.TimestampBuilder).Append(1500) })
	if _, err := conv(ns, &arrow.TimestampType{Unit: arrow.Microsecond}); err == nil {
		t.Error("nanoseconds that do not fit microseconds converted without error")
	}

	ls := build(arrow.BinaryTypes.LargeString, func(b array.Builder) { b.(*array.LargeStringBuilder).Append("x") })
	if got, err := conv(ls, arrow.BinaryTypes.String); err != nil || got != "x" {
		t.Errorf("large_string: %q, %v", got, err)
	}
	lt := arrow.ListOf(arrow.PrimitiveTypes.Int32)
	list := build(lt, func(b array.Builder) {
		lb := b.(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.Int32Builder).AppendValues([]int32{1, 2}, nil)
	})
	if got, err := conv(list, arrow.BinaryTypes.String); err != nil || got != "[1,2]" {
		t.Errorf("native list to text: %q, %v", got, err)
	}

	d := build(&arrow.Decimal128Type{Precision: 10, Scale: 2}, func(b array.Builder) {
		b.(*array.Decimal128Builder).Append(decimal128.FromI64(-12345))
	})
	if got, err := conv(d, &arrow.Decimal128Type{Precision: 14, Scale: 4}); err != nil || got != "-123.45" {
		t.Errorf("decimal rescale: %q, %v", got, err)
	}
	if _, err := conv(d, &arrow.Decimal128Type{Precision: 3, Scale: 2}); err == nil {
		t.Error("decimal that does not fit converted without error")
	}

	f32 := build(arrow.PrimitiveTypes.Float32, func(b array.Builder) { b.(*array.Float32Builder).Append(0.5) })
	if got, err := conv(f32, arrow.PrimitiveTypes.Float64); err != nil || got != "0.5" {
		t.Errorf("float32 to float64: %q, %v", got, err)
	}

	str := build(arrow.BinaryTypes.String, func(b array.Builder) { b.(*array.StringBuilder).Append("7") })
	if _, err := conv(str, arrow.PrimitiveTypes.Int64); err == nil || !strings.Contains(err.Error(), "CAST(col AS STRING)") {
		t.Errorf("string to int64: %v; want a refusal suggesting a cast", err)
	}
}
