package databricks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/airlockhq/airlock/connectors/databricks"
	"github.com/airlockhq/airlock/connectors/databricks/fakedatabricks"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

// Secret values used throughout: distinctive, so a leak into a message is
// easy to find.
const (
	patValue      = "dapi-pat-0123456789abcdef"
	userValue     = "alice-user-7731"
	passwordValue = "hunter2-password-9921"
	clientIDValue = "sp-client-id-5517"
	clientSecret  = "dose-sp-secret-4471"
	warehouseID   = "wh0123456789abcd"
)

var allSecrets = []string{patValue, userValue, passwordValue, clientIDValue, clientSecret}

// provider holds secrets as files in a folder, as a mounted Kubernetes
// Secret does, and never reads the environment.
func provider(t *testing.T, vals map[string]string) *secrets.Provider {
	t.Helper()
	dir := t.TempDir()
	for k, v := range vals {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return &secrets.Provider{Dir: dir, NoEnv: true}
}

var defaultSecrets = map[string]string{
	"DbToken":        patValue,
	"DbUser":         userValue,
	"DbPassword":     passwordValue,
	"DbTokenUser":    "token",
	"DbClientID":     clientIDValue,
	"DbClientSecret": clientSecret,
}

var (
	patCreds   = model.Credentials{TokenKey: "DbToken"}
	basicCreds = model.Credentials{UserKey: "DbUser", PasswordKey: "DbPassword"}
	m2mCreds   = model.Credentials{ClientIDKey: "DbClientID", ClientSecretKey: "DbClientSecret"}
)

// fastOptions poll quickly so that tests run fast.
func fastOptions() databricks.Options {
	return databricks.Options{PollInterval: 10 * time.Millisecond, MaxPollInterval: 50 * time.Millisecond, DownloadConcurrency: 3}
}

// startFake starts a fake workspace that accepts the test credentials.
func startFake(t *testing.T, opts fakedatabricks.Options) *fakedatabricks.Server {
	t.Helper()
	opts.Token = patValue
	opts.Username, opts.Password = userValue, passwordValue
	opts.ClientID, opts.ClientSecret = clientIDValue, clientSecret
	if opts.WarehouseID == "" {
		opts.WarehouseID = warehouseID
	}
	f, err := fakedatabricks.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func connection(url string, creds model.Credentials) model.Connection {
	return model.Connection{Type: model.ConnDatabricks, Name: "databricks", URL: url, Credentials: creds}
}

// newSource builds the connector through its registry, as a worker does.
func newSource(t *testing.T, conn model.Connection, opts databricks.Options) *databricks.Source {
	t.Helper()
	src, err := databricks.Factories(provider(t, defaultSecrets), opts).Source(context.Background(), conn)
	if err != nil {
		t.Fatalf("building the source: %v", err)
	}
	return src.(*databricks.Source)
}

func tableObject(name string) model.Object {
	return model.Object{Table: &model.TableObject{Name: name, Connection: "databricks"}}
}

// The patients table has one column of every scalar type the connector
// maps, a complex type sent as text, and NULLs in every seventh row.
var patientColumns = []fakedatabricks.Column{
	{Name: "id", Type: "BIGINT"},
	{Name: "name", Type: "STRING"},
	{Name: "age", Type: "INT"},
	{Name: "small", Type: "SMALLINT"},
	{Name: "tiny", Type: "TINYINT"},
	{Name: "score", Type: "DOUBLE"},
	{Name: "ratio", Type: "FLOAT"},
	{Name: "amount", Type: "DECIMAL(12,2)"},
	{Name: "active", Type: "BOOLEAN"},
	{Name: "born", Type: "DATE"},
	{Name: "seen", Type: "TIMESTAMP"},
	{Name: "local_seen", Type: "TIMESTAMP_NTZ"},
	{Name: "blob", Type: "BINARY"},
	{Name: "tags", Type: "ARRAY<STRING>"},
}

// wantArrowTypes are the Arrow types the connector must write for them.
var wantArrowTypes = []string{
	"int64", "utf8", "int32", "int16", "int8", "float64", "float32", "decimal(12, 2)",
	"bool", "date32", "timestamp[us, tz=UTC]", "timestamp[us]", "binary", "utf8",
}

func patientValue(row int64, col int) any {
	if row%7 == 3 && col > 0 {
		return nil
	}
	switch col {
	case 0:
		return row
	case 1:
		return fmt.Sprintf("patient %d, \"quoted\"", row)
	case 2:
		return int32(row % 100)
	case 3:
		return int16(row%30000 - 15000)
	case 4:
		return int8(row%256 - 128)
	case 5:
		return float64(row) * 1.5
	case 6:
		return float32(row) / 4
	case 7:
		sign := ""
		if row%5 == 1 {
			sign = "-"
		}
		return fmt.Sprintf("%s%d.%02d", sign, row*3, row%100)
	case 8:
		return row%2 == 0
	case 9:
		return time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(row))
	case 10:
		return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(row)*time.Second + 123456*time.Microsecond)
	case 11:
		return time.Date(2023, 6, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(row) * time.Minute)
	case 12:
		return []byte{byte(row), byte(row >> 8), 0, 255}
	case 13:
		return fmt.Sprintf(`["a%d","b"]`, row)
	}
	panic("no such column")
}

func patients(rows int64) *fakedatabricks.Table {
	return &fakedatabricks.Table{Columns: patientColumns, Rows: rows, Value: patientValue}
}

// normalize turns a generator value into what readBack returns for it.
func normalize(v any, col int) any {
	if v == nil {
		return nil
	}
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case float32:
		return float64(x)
	case float64:
		return x
	case bool:
		return x
	case []byte:
		return string(x)
	case time.Time:
		if col == 9 {
			return x.Format("2006-01-02")
		}
		return x.UnixMicro()
	case string:
		if col == 7 {
			n, err := decimal128.FromString(x, 12, 2)
			if err != nil {
				panic(err)
			}
			return n.ToString(2)
		}
		return x
	}
	panic(fmt.Sprintf("unexpected %T", v))
}

// readBack returns element i of a column read from Parquet, in the form
// normalize gives.
func readBack(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Int32:
		return int64(a.Value(i))
	case *array.Int16:
		return int64(a.Value(i))
	case *array.Int8:
		return int64(a.Value(i))
	case *array.Float64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Boolean:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.Binary:
		return string(a.Value(i))
	case *array.Decimal128:
		return a.Value(i).ToString(a.DataType().(*arrow.Decimal128Type).Scale)
	case *array.Date32:
		return a.Value(i).ToTime().Format("2006-01-02")
	case *array.Timestamp:
		return int64(a.Value(i))
	}
	panic(fmt.Sprintf("unexpected array %T", a))
}

// readParquet reads a whole Parquet file back with pqarrow.
func readParquet(t *testing.T, path string) arrow.Table {
	t.Helper()
	r, err := pqfile.OpenParquetFile(path, false)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	t.Cleanup(func() { r.Close() })
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{BatchSize: 512}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	t.Cleanup(tbl.Release)
	return tbl
}

// checkPatients compares a table read back from Parquet with the generator.
func checkPatients(t *testing.T, tbl arrow.Table, rows int64) {
	t.Helper()
	if tbl.NumRows() != rows {
		t.Fatalf("read back %d rows, want %d", tbl.NumRows(), rows)
	}
	if int(tbl.NumCols()) != len(patientColumns) {
		t.Fatalf("read back %d columns, want %d", tbl.NumCols(), len(patientColumns))
	}
	for c := range patientColumns {
		f := tbl.Schema().Field(c)
		if f.Name != patientColumns[c].Name || f.Type.String() != wantArrowTypes[c] {
			t.Errorf("column %d is %s %s, want %s %s", c, f.Name, f.Type, patientColumns[c].Name, wantArrowTypes[c])
		}
		row := int64(0)
		for _, chunk := range tbl.Column(c).Data().Chunks() {
			for i := range chunk.Len() {
				got, want := readBack(chunk, i), normalize(patientValue(row, c), c)
				if got != want {
					t.Fatalf("row %d column %s: got %v (%T), want %v (%T)", row, f.Name, got, got, want, want)
				}
				row++
			}
		}
	}
}
