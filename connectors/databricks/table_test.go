package databricks_test

import (
	"context"
	"encoding/csv"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/databricks"
	"github.com/airlockhq/airlock/connectors/databricks/fakedatabricks"
	"github.com/airlockhq/airlock/model"
)

// progressLog collects progress lines.
type progressLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *progressLog) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lines = append(p.lines, s)
}

func (p *progressLog) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestTableParquetRoundTripWithPAT(t *testing.T) {
	const rows = 2500
	fake := startFake(t, fakedatabricks.Options{
		Tables:    map[string]*fakedatabricks.Table{"clinic.records.patients": patients(rows)},
		ChunkRows: 1000,
		BatchRows: 300,
	})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	obj := tableObject("clinic.records.patients")

	if !src.Produces(obj) {
		t.Fatal("Produces(table) = false")
	}
	items, err := src.List(context.Background(), obj)
	if err != nil {
		t.Fatal(err)
	}
	want := connectors.Item{Path: "clinic.records.patients.parquet", Ref: "table:clinic.records.patients", Size: -1, EncodingFormat: "application/vnd.apache.parquet"}
	if len(items) != 1 || items[0] != want {
		t.Fatalf("List = %+v, want [%+v]", items, want)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("List of a table made %d requests; it must not call the workspace", n)
	}

	dir := t.TempDir()
	var prog progressLog
	out, err := src.Produce(context.Background(), obj, dir, prog.add)
	if err != nil {
		t.Fatal(err)
	}
	sts := fake.Statements()
	if len(sts) != 1 {
		t.Fatalf("%d statements, want 1", len(sts))
	}
	st := sts[0]
	if st.Statement != "SELECT * FROM `clinic`.`records`.`patients`" || st.Disposition != "EXTERNAL_LINKS" || st.Format != "ARROW_STREAM" ||
		st.WaitTimeout != "10s" || st.OnWaitTimeout != "CONTINUE" || st.WarehouseID != warehouseID {
		t.Errorf("statement sent as %+v", st)
	}
	if len(out.Files) != 1 || out.Files[0] != (connectors.ProducedFile{Path: "clinic.records.patients.parquet", EncodingFormat: "application/vnd.apache.parquet", Table: "clinic.records.patients"}) {
		t.Errorf("Files = %+v", out.Files)
	}
	if len(out.Tables) != 1 || out.Tables[0].Name != "clinic.records.patients" || out.Tables[0].Rows != rows {
		t.Fatalf("Tables = %+v", out.Tables)
	}
	var types []string
	for _, c := range out.Tables[0].Columns {
		types = append(types, c.Name+" "+c.Type)
	}
	if got := strings.Join(types, ", "); got != "id BIGINT, name STRING, age INT, small SMALLINT, tiny TINYINT, score DOUBLE, ratio FLOAT, amount DECIMAL(12,2), active BOOLEAN, born DATE, seen TIMESTAMP, local_seen TIMESTAMP_NTZ, blob BINARY, tags ARRAY<STRING>" {
		t.Errorf("Columns = %s", got)
	}
	if out.Properties["statement_id"] != st.ID || out.Properties["warehouse_id"] != warehouseID {
		t.Errorf("Properties = %v", out.Properties)
	}
	if names := dirEntries(t, dir); !slices.Equal(names, []string{"clinic.records.patients.parquet"}) {
		t.Errorf("work folder holds %v, want only the Parquet file (no spool or partial files)", names)
	}
	checkPatients(t, readParquet(t, filepath.Join(dir, "clinic.records.patients.parquet")), rows)

	if !strings.Contains(prog.String(), "chunk 3 of 3 written, 2500 rows so far") {
		t.Errorf("progress does not report the chunks:\n%s", prog.String())
	}
	fetches := fake.LinkFetches()
	if len(fetches) != 3 {
		t.Errorf("%d link fetches, want one per chunk: %+v", len(fetches), fetches)
	}
	for _, f := range fetches {
		if f.HadAuthorization || f.Status != 200 {
			t.Errorf("link fetch %+v: want 200 and no Authorization header", f)
		}
	}
	for _, r := range fake.Requests() {
		if r.Auth != "Bearer" || r.Status != 200 {
			t.Errorf("API request %s %s: auth %q status %d", r.Method, r.Path, r.Auth, r.Status)
		}
	}
}

func TestTableCSV(t *testing.T) {
	const rows = 40
	fake := startFake(t, fakedatabricks.Options{
		Tables:    map[string]*fakedatabricks.Table{"main.default.patients": patients(rows)},
		ChunkRows: 16,
	})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	obj := tableObject("patients")
	obj.Table.Format = "csv"
	items, err := src.List(context.Background(), obj)
	if err != nil || len(items) != 1 || items[0].Path != "patients.csv" || items[0].EncodingFormat != "text/csv" {
		t.Fatalf("List = %+v, %v", items, err)
	}
	dir := t.TempDir()
	out, err := src.Produce(context.Background(), obj, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Files[0].Path != "patients.csv" || out.Files[0].EncodingFormat != "text/csv" || out.Tables[0].Rows != rows {
		t.Fatalf("Produced = %+v", out)
	}
	// With no catalog or schema in the url the name goes unqualified and
	// the warehouse's defaults apply.
	if st := fake.Statements()[0]; st.Statement != "SELECT * FROM `patients`" || st.Catalog != "" || st.Schema != "" {
		t.Errorf("statement %+v", st)
	}
	f, err := os.Open(filepath.Join(dir, "patients.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != rows+1 {
		t.Fatalf("%d CSV records, want a header and %d rows", len(recs), rows)
	}
	var header []string
	for _, c := range patientColumns {
		header = append(header, c.Name)
	}
	if !slices.Equal(recs[0], header) {
		t.Errorf("header %v, want %v", recs[0], header)
	}
	want0 := []string{"0", `patient 0, "quoted"`, "0", "-15000", "-128", "0", "0", "0.00", "true", "1950-01-01", "2024-01-01 00:00:00.123456Z", "2023-06-01 12:00:00", "AAAA/w==", `["a0","b"]`}
	if !slices.Equal(recs[1], want0) {
		t.Errorf("row 0 = %q\nwant      %q", recs[1], want0)
	}
	if got := recs[1+3]; got[0] != "3" || strings.Join(got[1:], "") != "" {
		t.Errorf("row 3 (NULLs) = %q, want its id and empty fields", got)
	}
	if got := recs[1+21][7]; got != "-63.21" {
		t.Errorf("row 21 amount = %q, want -63.21", got)
	}
}

func TestEmptyTable(t *testing.T) {
	fake := startFake(t, fakedatabricks.Options{Tables: map[string]*fakedatabricks.Table{"main.default.empty": patients(0)}})
	src := newSource(t, connection(fake.URL+"/main.default", patCreds), withWarehouse(fastOptions()))
	dir := t.TempDir()
	out, err := src.Produce(context.Background(), tableObject("empty"), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Tables[0].Rows != 0 {
		t.Fatalf("rows = %d", out.Tables[0].Rows)
	}
	checkPatients(t, readParquet(t, filepath.Join(dir, "empty.parquet")), 0)

	obj := tableObject("empty")
	obj.Table.Format = "csv"
	if _, err := src.Produce(context.Background(), obj, dir, nil); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "empty.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "id,name,age,") || strings.Count(string(data), "\n") != 1 {
		t.Errorf("empty CSV = %q, want just the header", data)
	}
}

func withWarehouse(o databricks.Options) databricks.Options {
	o.DefaultWarehouseID = warehouseID
	return o
}

func TestPollsPendingRunningSucceeded(t *testing.T) {
	fake := startFake(t, fakedatabricks.Options{
		Tables:       map[string]*fakedatabricks.Table{"main.default.patients": patients(10)},
		PendingPolls: 2,
		RunningPolls: 3,
	})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	var prog progressLog
	out, err := src.Produce(context.Background(), tableObject("patients"), t.TempDir(), prog.add)
	if err != nil {
		t.Fatal(err)
	}
	st := fake.Statements()[0]
	if st.Polls != 5 || st.State != "SUCCEEDED" {
		t.Errorf("statement polled %d times, state %s; want 5 polls (1 more PENDING, 3 RUNNING, then SUCCEEDED)", st.Polls, st.State)
	}
	p := prog.String()
	if strings.Count(p, " PENDING for ") != 2 || strings.Count(p, " RUNNING for ") != 3 || !strings.Contains(p, "succeeded after") {
		t.Errorf("progress does not follow the states:\n%s", p)
	}
	if out.Tables[0].Rows != 10 {
		t.Errorf("rows = %d", out.Tables[0].Rows)
	}
}

func TestExpiredLinksAreFetchedAgain(t *testing.T) {
	const rows = 50
	fake := startFake(t, fakedatabricks.Options{
		Tables:           map[string]*fakedatabricks.Table{"main.default.patients": patients(rows)},
		ChunkRows:        10,
		PastExpiration:   []int{0},    // the link in the statement response is already stale
		ExpireFirstFetch: []int{2, 4}, // these expire in flight: storage answers 403
	})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	dir := t.TempDir()
	if _, err := src.Produce(context.Background(), tableObject("patients"), dir, nil); err != nil {
		t.Fatal(err)
	}
	checkPatients(t, readParquet(t, filepath.Join(dir, "patients.parquet")), rows)
	st := fake.Statements()[0]
	// Chunk 0's stale link is never used: its first fetch is the fresh one.
	// Chunks 2 and 4 are asked for twice: once for the first link, again
	// after storage refused it.
	if st.ChunkRequests[0] != 1 || st.ChunkRequests[2] != 2 || st.ChunkRequests[4] != 2 || st.ChunkRequests[1] != 1 {
		t.Errorf("chunk endpoint requests = %v", st.ChunkRequests)
	}
	var refused []int
	for _, f := range fake.LinkFetches() {
		if f.Status != 200 {
			refused = append(refused, f.Chunk)
			if f.Status != 403 || f.Refused != "Request has expired" {
				t.Errorf("unexpected refusal %+v", f)
			}
		}
		if f.HadAuthorization {
			t.Errorf("link fetch for chunk %d carried an Authorization header", f.Chunk)
		}
	}
	slices.Sort(refused)
	if !slices.Equal(refused, []int{2, 4}) {
		t.Errorf("refused fetches for chunks %v, want [2 4]", refused)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	fake := startFake(t, fakedatabricks.Options{
		Tables:    map[string]*fakedatabricks.Table{"main.default.patients": patients(30)},
		ChunkRows: 10,
	})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	fake.FailNextAPI(1, 429, "1")
	fake.FailNextAPI(1, 503, "1")
	fake.FailNextLinks(1, 503, "1")
	start := time.Now()
	out, err := src.Produce(context.Background(), tableObject("patients"), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Tables[0].Rows != 30 {
		t.Fatalf("rows = %d", out.Tables[0].Rows)
	}
	reqs := fake.Requests()
	if len(reqs) < 3 || reqs[0].Status != 429 || reqs[1].Status != 503 || reqs[2].Status != 200 || reqs[2].Path != "/api/2.0/sql/statements" {
		t.Fatalf("requests: %+v", reqs)
	}
	for i := 1; i <= 2; i++ {
		if gap := reqs[i].Time.Sub(reqs[i-1].Time); gap < 950*time.Millisecond {
			t.Errorf("retry %d came %s after the answer asking to wait 1s", i, gap)
		}
	}
	var refused, served []time.Time
	for _, f := range fake.LinkFetches() {
		if f.Status == 503 {
			refused = append(refused, f.Time)
		} else if f.Status == 200 {
			served = append(served, f.Time)
		}
	}
	if len(refused) != 1 || len(served) != 3 {
		t.Fatalf("link fetches: %+v", fake.LinkFetches())
	}
	// The refused fetch is retried a second later; the others proceed.
	waited := false
	for _, s := range served {
		if s.Sub(refused[0]) >= 950*time.Millisecond {
			waited = true
		}
	}
	if !waited {
		t.Errorf("no link fetch waited out the storage's Retry-After")
	}
	if el := time.Since(start); el < 3*time.Second-100*time.Millisecond {
		t.Errorf("Produce took %s; waiting out three Retry-After: 1 takes at least ~3s", el)
	}
	t.Logf("three Retry-After: 1 answers cost %s", time.Since(start).Round(10*time.Millisecond))
}

func TestPersistentThrottlingGivesUpRetryably(t *testing.T) {
	fake := startFake(t, fakedatabricks.Options{Tables: map[string]*fakedatabricks.Table{"main.default.patients": patients(3)}})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	fake.FailNextAPI(10, 503, "0")
	_, err := src.Produce(context.Background(), tableObject("patients"), t.TempDir(), nil)
	if err == nil || connectors.IsBadInput(err) || !strings.Contains(err.Error(), "HTTP 503") {
		t.Fatalf("err = %v; want a retryable error naming HTTP 503", err)
	}
	if n := len(fake.Requests()); n != 5 {
		t.Errorf("%d requests; want the connector to stop after 5 attempts", n)
	}
}

func TestFailedStatements(t *testing.T) {
	broken := patients(5)
	broken.Fail = &fakedatabricks.StatementError{ErrorCode: "INTERNAL_ERROR", Message: "Query execution failed: warehouse ran out of memory"}
	fake := startFake(t, fakedatabricks.Options{
		Tables:       map[string]*fakedatabricks.Table{"main.default.patients": patients(5), "main.default.broken": broken},
		RunningPolls: 1,
	})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())

	_, err := src.Produce(context.Background(), tableObject("broken"), t.TempDir(), nil)
	if err == nil || connectors.IsBadInput(err) || !strings.Contains(err.Error(), "warehouse ran out of memory") || !strings.Contains(err.Error(), "INTERNAL_ERROR") {
		t.Errorf("internal failure: err = %v; want a retryable error quoting Databricks", err)
	}

	_, err = src.Produce(context.Background(), tableObject("missing"), t.TempDir(), nil)
	if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "[TABLE_OR_VIEW_NOT_FOUND] The table or view `main`.`default`.`missing` cannot be found") {
		t.Errorf("missing table: err = %v; want bad input quoting Databricks", err)
	}

	obj := tableObject("report")
	obj.Table.Query = "SELEC id FROM patients"
	dir := t.TempDir()
	_, err = src.Produce(context.Background(), obj, dir, nil)
	if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "PARSE_SYNTAX_ERROR") {
		t.Errorf("bad SQL: err = %v; want bad input quoting Databricks", err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("a failed statement left %v in the work folder", names)
	}
}

func TestQueryObject(t *testing.T) {
	fake := startFake(t, fakedatabricks.Options{
		Tables:  map[string]*fakedatabricks.Table{"main.default.patients": patients(12)},
		Queries: map[string]string{"SELECT * FROM patients WHERE age > 3": "main.default.patients"},
	})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	obj := tableObject("adults")
	obj.Table.Query = "  SELECT * FROM patients WHERE age > 3  "
	dir := t.TempDir()
	out, err := src.Produce(context.Background(), obj, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Files[0].Path != "adults.parquet" || out.Tables[0].Name != "adults" {
		t.Errorf("Produced = %+v", out)
	}
	checkPatients(t, readParquet(t, filepath.Join(dir, "adults.parquet")), 12)
}

func TestBadTableNamesAreRefused(t *testing.T) {
	fake := startFake(t, fakedatabricks.Options{})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	for _, name := range []string{"../etc/passwd", "a/b", "a.b.c.d", "x y", ".hidden", "a..b", "", "tab\tle", "`quoted`"} {
		_, err := src.List(context.Background(), tableObject(name))
		if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "table name") {
			t.Errorf("List(%q): err = %v; want bad input about the table name", name, err)
		}
		_, err = src.Produce(context.Background(), tableObject(name), t.TempDir(), nil)
		if !connectors.IsBadInput(err) {
			t.Errorf("Produce(%q): err = %v; want bad input", name, err)
		}
	}
	obj := tableObject("ok")
	obj.Table.Format = "xlsx"
	if _, err := src.List(context.Background(), obj); !connectors.IsBadInput(err) || !strings.Contains(err.Error(), `unknown format "xlsx"`) {
		t.Errorf("format xlsx: err = %v", err)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("refusing names made %d requests", n)
	}
}

func TestTruncatedResultIsRefused(t *testing.T) {
	tr := patients(100)
	tr.Truncated = true
	fake := startFake(t, fakedatabricks.Options{Tables: map[string]*fakedatabricks.Table{"main.default.big": tr}})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	dir := t.TempDir()
	_, err := src.Produce(context.Background(), tableObject("big"), dir, nil)
	if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("err = %v; want bad input saying the result was truncated", err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("a refused result left %v in the work folder", names)
	}
	if n := len(fake.LinkFetches()); n != 0 {
		t.Errorf("%d chunks downloaded for a refused result", n)
	}
}

func TestCancellationCancelsTheStatement(t *testing.T) {
	fake := startFake(t, fakedatabricks.Options{
		Tables:       map[string]*fakedatabricks.Table{"main.default.patients": patients(10)},
		PendingPolls: 1000,
	})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	polls := 0
	_, err := src.Produce(ctx, tableObject("patients"), t.TempDir(), func(line string) {
		if strings.Contains(line, "PENDING") {
			if polls++; polls == 3 {
				cancel()
			}
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	st := fake.Statements()[0]
	if !st.Canceled || st.State != "CANCELED" || st.CancelRequests != 1 {
		t.Errorf("statement after cancellation: %+v; want it cancelled on the warehouse", st)
	}
}

func TestStatementCanceledElsewhereIsRetryable(t *testing.T) {
	fake := startFake(t, fakedatabricks.Options{
		Tables:       map[string]*fakedatabricks.Table{"main.default.patients": patients(10)},
		PendingPolls: 1000,
	})
	src := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	_, err := src.Produce(context.Background(), tableObject("patients"), t.TempDir(), func(line string) {
		if st := fake.Statements(); len(st) == 1 && strings.Contains(line, "PENDING") {
			// Someone else cancels it on the warehouse.
			req, _ := http.NewRequest(http.MethodPost, fake.URL+"/api/2.0/sql/statements/"+st[0].ID+"/cancel", nil)
			req.Header.Set("Authorization", "Bearer "+patValue)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		}
	})
	if err == nil || connectors.IsBadInput(err) || !strings.Contains(err.Error(), "CANCELED") {
		t.Fatalf("err = %v; want a retryable error saying the statement was cancelled", err)
	}
}

func TestNoWarehouseIsBadInputAtList(t *testing.T) {
	fake := startFake(t, fakedatabricks.Options{})
	src := newSource(t, connection(fake.URL+"/path/to/datasource.location", patCreds), fastOptions())
	_, err := src.List(context.Background(), tableObject("patients"))
	if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "/sql/1.0/warehouses/") || !strings.Contains(err.Error(), "databricks.warehouseId") {
		t.Fatalf("err = %v; want bad input saying how to name a warehouse", err)
	}
}

// The shared fixture's connection: url path datasource.location is the
// catalog and schema of unqualified table names.
func TestFixtureConnection(t *testing.T) {
	data, err := os.ReadFile("../../model/testdata/fixtures/import-databricks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := model.ParseDocuments("import-databricks.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	ds := docs.DataSources[0]
	conn, _ := ds.Connection("databricks")
	p := provider(t, map[string]string{"DatabricksUsername": userValue, "DatabricksPassword": passwordValue})
	opts := fastOptions()
	opts.DefaultWarehouseID = warehouseID
	built, err := databricks.Factories(p, opts).Source(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	src := built.(*databricks.Source)
	if d := src.Describe(); d != `https://example-databricks-instance.xlscsde.nhs.uk (databricks connection "databricks", warehouse `+warehouseID+`, tables in datasource.location)` {
		t.Errorf("Describe = %s", d)
	}
	for _, obj := range ds.Spec.Objects {
		items, err := src.List(context.Background(), obj)
		if err != nil || len(items) != 1 || items[0].Path != obj.Table.Name+".parquet" {
			t.Errorf("List(%s) = %+v, %v", obj.Describe(), items, err)
		}
	}

	// The same url path against the fake: the statement names
	// `datasource`.`location`.`patients` and sets the catalog and schema.
	fake := startFake(t, fakedatabricks.Options{Tables: map[string]*fakedatabricks.Table{"datasource.location.patients": patients(7)}})
	conn.URL = fake.URL + "/path/to/datasource.location"
	src, err = databricks.New(context.Background(), p, opts, conn)
	if err != nil {
		t.Fatal(err)
	}
	out, err := src.Produce(context.Background(), ds.Spec.Objects[0], t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := fake.Statements()[0]
	if st.Statement != "SELECT * FROM `datasource`.`location`.`patients`" || st.Catalog != "datasource" || st.Schema != "location" || out.Tables[0].Rows != 7 {
		t.Errorf("statement %+v, produced %+v", st, out)
	}
	for _, r := range fake.Requests() {
		if r.Auth != "Basic" {
			t.Errorf("request %s %s used %q, want basic auth", r.Method, r.Path, r.Auth)
		}
	}
}
