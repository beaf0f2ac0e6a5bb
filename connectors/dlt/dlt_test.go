package dlt

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/testservers"
)

// venvPython returns the dlt virtualenv's python, or skips (fails under CI).
func venvPython(t *testing.T) string {
	t.Helper()
	p := DefaultPython()
	if _, err := os.Stat(p); err != nil {
		testservers.Unavailable(t, fmt.Errorf("the dlt virtualenv's python %s is missing (%v): run deploy/tools/install.sh dlt", p, err))
	}
	return p
}

// producer builds the dlt source for conn through the registry, as a worker does.
func producer(t *testing.T, p *secrets.Provider, opts Options, conn model.Connection) connectors.Producer {
	t.Helper()
	conn.Type = model.ConnDLT
	src, err := Factories(p, opts).Source(context.Background(), conn)
	if err != nil {
		t.Fatalf("building the source for %s: %v", conn.URL, err)
	}
	pr, ok := src.(connectors.Producer)
	if !ok {
		t.Fatalf("the dlt source is not a connectors.Producer")
	}
	return pr
}

func table(name, conn string) model.Object {
	return model.Object{Table: &model.TableObject{Name: name, Connection: conn}}
}

// progressLog collects progress lines.
type progressLog struct {
	mu    sync.Mutex
	lines []string
}

func (p *progressLog) add(l string) { p.mu.Lock(); p.lines = append(p.lines, l); p.mu.Unlock() }
func (p *progressLog) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// produce runs Produce and reports how long it took.
func produce(t *testing.T, pr connectors.Producer, obj model.Object, dir string) (connectors.Produced, []string, error) {
	t.Helper()
	var log progressLog
	start := time.Now()
	res, err := pr.Produce(context.Background(), obj, dir, log.add)
	t.Logf("Produce(%s) took %s", obj.Describe(), time.Since(start).Round(10*time.Millisecond))
	return res, log.all(), err
}

// readParquet reads a parquet file with arrow-go: column names and each
// row's values as arrow prints them ("(null)" for null).
func readParquet(t *testing.T, path string) ([]string, [][]string) {
	t.Helper()
	r, err := pqfile.OpenParquetFile(path, false)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	defer r.Close()
	fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	tbl, err := fr.ReadTable(context.Background())
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	defer tbl.Release()
	var names []string
	rows := make([][]string, tbl.NumRows())
	for i := 0; i < int(tbl.NumCols()); i++ {
		col := tbl.Column(i)
		names = append(names, col.Name())
		n := 0
		for _, chunk := range col.Data().Chunks() {
			for j := 0; j < chunk.Len(); j++ {
				rows[n] = append(rows[n], chunk.ValueStr(j))
				n++
			}
		}
	}
	return names, rows
}

// tableRows reads every data file of table in res, keeping the columns cols.
func tableRows(t *testing.T, dir string, res connectors.Produced, tableName string, cols []string) [][]string {
	t.Helper()
	var out [][]string
	files := 0
	for _, f := range res.Files {
		if f.Table != tableName {
			continue
		}
		files++
		if f.EncodingFormat != "application/vnd.apache.parquet" {
			t.Errorf("%s: encoding format %q, want parquet", f.Path, f.EncodingFormat)
		}
		names, rows := readParquet(t, filepath.Join(dir, f.Path))
		idx := map[string]int{}
		for i, n := range names {
			idx[n] = i
		}
		for _, r := range rows {
			var sel []string
			for _, c := range cols {
				i, ok := idx[c]
				if !ok {
					t.Fatalf("%s has no column %q (it has %v)", f.Path, c, names)
				}
				sel = append(sel, r[i])
			}
			out = append(out, sel)
		}
	}
	if files == 0 {
		t.Fatalf("no data file for table %s in %+v", tableName, res.Files)
	}
	sort.Slice(out, func(i, j int) bool { return strings.Join(out[i], "\x00") < strings.Join(out[j], "\x00") })
	return out
}

func findTable(t *testing.T, res connectors.Produced, name string) connectors.Table {
	t.Helper()
	for _, tb := range res.Tables {
		if tb.Name == name {
			return tb
		}
	}
	t.Fatalf("no table %q in %+v", name, res.Tables)
	return connectors.Table{}
}

func columnTypes(tb connectors.Table) map[string]string {
	out := map[string]string{}
	for _, c := range tb.Columns {
		out[c.Name] = c.Type
	}
	return out
}

// checkFolder checks that res lists exactly the files under dir/<table>/,
// that dlt's load record says complete, and that no scratch folder is left.
func checkFolder(t *testing.T, dir, name string, res connectors.Produced) {
	t.Helper()
	listed := map[string]bool{}
	for _, f := range res.Files {
		listed[f.Path] = true
		if !strings.HasPrefix(f.Path, name+"/") {
			t.Errorf("file %s is outside the table's folder %s/", f.Path, name)
		}
	}
	var onDisk []string
	filepath.WalkDir(filepath.Join(dir, name), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			onDisk = append(onDisk, filepath.ToSlash(rel))
		}
		return err
	})
	if len(onDisk) != len(res.Files) {
		t.Errorf("the folder holds %d files, Produce lists %d:\n%v\n%+v", len(onDisk), len(res.Files), onDisk, res.Files)
	}
	for _, p := range onDisk {
		if !listed[p] {
			t.Errorf("%s is in the folder but not in Produced.Files", p)
		}
	}
	var loads int
	for _, f := range res.Files {
		if strings.HasPrefix(f.Path, name+"/_dlt_loads/") {
			loads++
			data, err := os.ReadFile(filepath.Join(dir, f.Path))
			if err != nil {
				t.Fatal(err)
			}
			var rec struct {
				LoadID string `json:"load_id"`
				Status int    `json:"status"`
			}
			if err := json.Unmarshal(data, &rec); err != nil {
				t.Fatalf("%s: %v", f.Path, err)
			}
			if rec.Status != 0 || rec.LoadID != res.Properties["load_id"] {
				t.Errorf("%s records load %s status %d; Produce reports load %s", f.Path, rec.LoadID, rec.Status, res.Properties["load_id"])
			}
		}
	}
	if loads != 1 || !listed[name+"/init"] {
		t.Errorf("the crate must hold dlt's bookkeeping (one _dlt_loads record, init): %+v", res.Files)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".dlt-run-*")); len(left) > 0 {
		t.Errorf("scratch folders left behind: %v", left)
	}
}

// makeSQLite creates a SQLite database with the venv's python.
func makeSQLite(t *testing.T, python, path string, script string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.stdin.read()); c.commit()", path)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("creating %s: %v\n%s", path, err, out)
	}
}

const clinicSQL = `
CREATE TABLE patients (id INTEGER PRIMARY KEY, name VARCHAR(50), born DATE, weight REAL, active BOOLEAN, score NUMERIC(10,2), seen TIMESTAMP);
INSERT INTO patients VALUES
 (1, 'Ann Smith', '1980-01-02', 61.5, 1, 12.34, '2024-05-01 10:00:00'),
 (2, 'Bob Jones', NULL, 80.25, 0, NULL, '2024-05-02 11:30:00'),
 (3, 'Cé Ünïcode', '1999-12-31', NULL, 1, 0.5, NULL),
 (4, 'O''Brien', '2001-07-04', 70, NULL, -3.75, '2024-06-01 00:00:01'),
 (5, NULL, '1975-03-15', 55.125, 0, 100, '2024-06-30 23:59:59');
CREATE TABLE visits (visit_id INTEGER, patient_id INTEGER NOT NULL, visited_on DATE, reason TEXT, cost DOUBLE);
INSERT INTO visits VALUES
 (10, 1, '2024-01-05', 'checkup', 25.0), (11, 1, '2024-02-05', 'follow-up, with comma', 30.5),
 (12, 2, '2024-03-01', NULL, 0), (13, 3, '2024-03-02', 'x-ray', 120.75),
 (14, 4, NULL, 'line
break', 15), (15, 5, '2024-04-01', 'blood test', 42.42), (16, 5, '2024-04-02', '', NULL);
CREATE TABLE archived (id INTEGER, note TEXT);
`

func TestSQLiteTablesLoadAsParquet(t *testing.T) {
	python := venvPython(t)
	root := t.TempDir()
	makeSQLite(t, python, filepath.Join(root, "clinic", "clinic.db"), clinicSQL)
	conn := model.Connection{Name: "clinic", URL: "sql_database+sqlite:///clinic/clinic.db"}
	pr := producer(t, &secrets.Provider{}, Options{FileRoot: root}, conn)
	if got := pr.Describe(); got != `sql_database+sqlite:///clinic/clinic.db (dlt connection "clinic")` {
		t.Errorf("Describe = %q", got)
	}
	if !pr.Produces(table("patients", "clinic")) {
		t.Fatal("Produces(table) = false")
	}
	items, err := pr.List(context.Background(), table("patients", "clinic"))
	if err != nil || len(items) != 1 || items[0].Path != "patients/" || items[0].Size != -1 {
		t.Fatalf("List = %+v, %v; want one folder item patients/ of unknown size", items, err)
	}

	work := t.TempDir()
	patients, lines, err := produce(t, pr, table("patients", "clinic"), work)
	if err != nil {
		t.Fatalf("Produce patients: %v\nprogress:\n%s", err, strings.Join(lines, "\n"))
	}
	visits, _, err := produce(t, pr, table("visits", "clinic"), work)
	if err != nil {
		t.Fatalf("Produce visits: %v", err)
	}
	checkFolder(t, work, "patients", patients)
	checkFolder(t, work, "visits", visits)
	t.Logf("progress of the patients run:\n%s", strings.Join(lines, "\n"))
	if len(lines) < 3 || !strings.Contains(strings.Join(lines, "\n"), "patients") {
		t.Errorf("progress lines say little: %q", lines)
	}

	pt := findTable(t, patients, "patients")
	if pt.Rows != 5 {
		t.Errorf("patients rows = %d, want 5", pt.Rows)
	}
	wantTypes := map[string]string{"id": "bigint", "name": "text", "born": "date", "weight": "double", "active": "bool", "score": "decimal(10,2)", "seen": "timestamp without time zone"}
	if got := columnTypes(pt); fmt.Sprint(got) != fmt.Sprint(wantTypes) {
		t.Errorf("patients columns = %v\nwant %v", got, wantTypes)
	}
	if got := pt.Columns[0].Name + "," + pt.Columns[6].Name; got != "id,seen" {
		t.Errorf("columns not in the database's order: %+v", pt.Columns)
	}
	gotRows := tableRows(t, work, patients, "patients", []string{"id", "name", "born", "weight", "active", "score", "seen"})
	wantRows := [][]string{
		{"1", "Ann Smith", "1980-01-02", "61.5", "true", "12.34", "2024-05-01T10:00:00"},
		{"2", "Bob Jones", "(null)", "80.25", "false", "(null)", "2024-05-02T11:30:00"},
		{"3", "Cé Ünïcode", "1999-12-31", "(null)", "true", "0.5", "(null)"}, // arrow prints decimals without trailing zeros
		{"4", "O'Brien", "2001-07-04", "70", "(null)", "-3.75", "2024-06-01T00:00:01"},
		{"5", "(null)", "1975-03-15", "55.125", "false", "100", "2024-06-30T23:59:59"},
	}
	if fmt.Sprint(gotRows) != fmt.Sprint(wantRows) {
		t.Errorf("patients rows read back:\n%v\nwant\n%v", gotRows, wantRows)
	}

	vt := findTable(t, visits, "visits")
	if vt.Rows != 7 {
		t.Errorf("visits rows = %d, want 7", vt.Rows)
	}
	if ct := columnTypes(vt); ct["visit_id"] != "bigint" || ct["visited_on"] != "date" || ct["reason"] != "text" || ct["cost"] != "double" {
		t.Errorf("visits columns = %v", ct)
	}
	gotVisits := tableRows(t, work, visits, "visits", []string{"visit_id", "patient_id", "visited_on", "reason", "cost"})
	wantVisits := [][]string{
		{"10", "1", "2024-01-05", "checkup", "25"},
		{"11", "1", "2024-02-05", "follow-up, with comma", "30.5"},
		{"12", "2", "2024-03-01", "(null)", "0"},
		{"13", "3", "2024-03-02", "x-ray", "120.75"},
		{"14", "4", "(null)", "line\nbreak", "15"},
		{"15", "5", "2024-04-01", "blood test", "42.42"},
		{"16", "5", "2024-04-02", "", "(null)"},
	}
	if fmt.Sprint(gotVisits) != fmt.Sprint(wantVisits) {
		t.Errorf("visits rows read back:\n%q\nwant\n%q", gotVisits, wantVisits)
	}

	for _, res := range []connectors.Produced{patients, visits} {
		p := res.Properties
		if p["dlt_version"] != "1.31.0" || p["source"] != "sql_database" || p["load_id"] == "" || !strings.HasPrefix(p["pipeline"], "airlock_") {
			t.Errorf("properties = %v", p)
		}
	}
	if patients.Properties["load_id"] == visits.Properties["load_id"] {
		t.Errorf("two runs share a load id %s", visits.Properties["load_id"])
	}

	// The same table again, written as csv by dlt.
	csvObj := table("visits", "clinic")
	csvObj.Table.Format = "csv"
	again, _, err := produce(t, pr, csvObj, work)
	if err != nil {
		t.Fatalf("Produce visits as csv: %v", err)
	}
	checkFolder(t, work, "visits", again)
	var csvRows [][]string
	for _, f := range again.Files {
		if f.Table != "visits" {
			continue
		}
		if !strings.HasSuffix(f.Path, ".csv") || f.EncodingFormat != "text/csv" {
			t.Errorf("csv output %s labelled %q", f.Path, f.EncodingFormat)
		}
		fh, err := os.Open(filepath.Join(work, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(fh).ReadAll()
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		csvRows = append(csvRows, recs[1:]...)
	}
	if len(csvRows) != 7 {
		t.Errorf("csv output holds %d rows, want 7", len(csvRows))
	}
}

func TestSQLiteUnknownOrEmptyTableIsBadInput(t *testing.T) {
	python := venvPython(t)
	root := t.TempDir()
	makeSQLite(t, python, filepath.Join(root, "clinic.db"), clinicSQL)
	pr := producer(t, &secrets.Provider{}, Options{FileRoot: root}, model.Connection{Name: "clinic", URL: "sql_database+sqlite:///clinic.db"})
	work := t.TempDir()
	_, _, err := produce(t, pr, table("admissions", "clinic"), work)
	if !connectors.IsBadInput(err) {
		t.Fatalf("unknown table: err = %v, want BadInput", err)
	}
	for _, want := range []string{`"admissions"`, "not found", "archived, patients, visits"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// An empty table gives nothing to import.
	_, _, err = produce(t, pr, table("archived", "clinic"), work)
	if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "yielded no rows") {
		t.Errorf("empty table: err = %v, want BadInput saying it yielded no rows", err)
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("a failed run left %v in the work folder", entries)
	}
}

// apiServer is a fake JSON API: /v1/samples serves two pages of samples
// (with a nested list, which dlt loads as a child table) to a bearer token.
type apiServer struct {
	*httptest.Server
	token string

	mu        sync.Mutex
	auths     []string
	page2Hits int
	failPage2 bool
	entered   chan struct{}
	released  chan bool // the slow endpoint's outcome: true if the client went away
}

func newAPIServer(t *testing.T, token string) *apiServer {
	a := &apiServer{token: token, entered: make(chan struct{}, 1), released: make(chan bool, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/samples", a.samples)
	mux.HandleFunc("/v1/slow", a.slow)
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

func (a *apiServer) samples(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.auths = append(a.auths, r.Header.Get("Authorization"))
	page2 := r.URL.Query().Get("page") == "2"
	if page2 {
		a.page2Hits++
	}
	fail := a.failPage2
	a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	if page2 && fail {
		w.Header().Set("Retry-After", "1") // dlt retries; keep its waits short
		// The body echoes the token, as a careless server might: it must be
		// scrubbed from what Airlock reports.
		http.Error(w, "internal error for token "+a.token, http.StatusInternalServerError)
		return
	}
	type sample struct {
		ID       int               `json:"id"`
		Name     string            `json:"name"`
		Measured *float64          `json:"measured"`
		Tags     []string          `json:"tags"`
		Meta     map[string]string `json:"meta"`
	}
	f := func(v float64) *float64 { return &v }
	body := map[string]any{}
	if !page2 {
		body["data"] = []sample{
			{1, "alpha", f(1.5), []string{"a", "b"}, map[string]string{"lab": "L1"}},
			{2, "beta", nil, []string{"c"}, map[string]string{"lab": "L2"}},
			{3, "gamma", f(-2), nil, map[string]string{"lab": "L1"}},
		}
		body["next"] = "http://" + r.Host + "/v1/samples?page=2"
	} else {
		body["data"] = []sample{
			{4, "delta", f(10.25), []string{"d", "e", "f"}, nil},
			{5, "epsilon", f(0), []string{}, map[string]string{"lab": "L3"}},
		}
		body["next"] = nil
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

// slow answers only when the client goes away (or after a minute).
func (a *apiServer) slow(w http.ResponseWriter, r *http.Request) {
	select {
	case a.entered <- struct{}{}:
	default:
	}
	select {
	case <-r.Context().Done():
		a.released <- true
	case <-time.After(time.Minute):
		a.released <- false
	}
}

func TestRESTAPIWithBearerTokenFromSecret(t *testing.T) {
	venvPython(t)
	const token = "tok-3f9a1c7e5b2d"
	t.Setenv(secrets.EnvVar("api-token"), token)
	api := newAPIServer(t, token)
	pr := producer(t, &secrets.Provider{}, Options{}, model.Connection{
		Name: "api", URL: "rest_api+" + api.URL + "/v1", Credentials: model.Credentials{TokenKey: "api-token"},
	})
	work := t.TempDir()
	res, lines, err := produce(t, pr, table("samples", "api"), work)
	if err != nil {
		t.Fatalf("Produce: %v\nprogress:\n%s", err, strings.Join(lines, "\n"))
	}
	checkFolder(t, work, "samples", res)
	api.mu.Lock()
	auths := api.auths
	api.mu.Unlock()
	if len(auths) != 2 {
		t.Errorf("the API served %d requests, want 2 pages", len(auths))
	}
	for _, a := range auths {
		if a != "Bearer "+token {
			t.Errorf("the API saw Authorization %q", a)
		}
	}
	for _, l := range lines {
		if strings.Contains(l, token) {
			t.Errorf("progress line shows the token: %q", l)
		}
	}
	samples := findTable(t, res, "samples")
	if samples.Rows != 5 {
		t.Errorf("samples rows = %d, want 5", samples.Rows)
	}
	ct := columnTypes(samples)
	if ct["id"] != "bigint" || ct["name"] != "text" || ct["measured"] != "double" || ct["meta__lab"] != "text" {
		t.Errorf("samples columns = %v", ct)
	}
	if tags := findTable(t, res, "samples__tags"); tags.Rows != 6 {
		t.Errorf("samples__tags rows = %d, want 6 (the nested lists)", tags.Rows)
	}
	got := tableRows(t, work, res, "samples", []string{"id", "name", "measured", "meta__lab"})
	want := [][]string{{"1", "alpha", "1.5", "L1"}, {"2", "beta", "(null)", "L2"}, {"3", "gamma", "-2", "L1"}, {"4", "delta", "10.25", "(null)"}, {"5", "epsilon", "0", "L3"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("samples read back:\n%v\nwant\n%v", got, want)
	}
	tags := tableRows(t, work, res, "samples__tags", []string{"value"})
	if fmt.Sprint(tags) != "[[a] [b] [c] [d] [e] [f]]" {
		t.Errorf("samples__tags values = %v", tags)
	}
	if res.Properties["source"] != "rest_api" {
		t.Errorf("properties = %v", res.Properties)
	}
}

func TestRESTAPIServerErrorFailsTheLoad(t *testing.T) {
	venvPython(t)
	const token = "tok-8d2e6b0a4c19"
	t.Setenv(secrets.EnvVar("api-token"), token)
	api := newAPIServer(t, token)
	api.failPage2 = true
	pr := producer(t, &secrets.Provider{}, Options{}, model.Connection{
		Name: "api", URL: "rest_api+" + api.URL + "/v1", Credentials: model.Credentials{TokenKey: "api-token"},
	})
	work := t.TempDir()
	res, lines, err := produce(t, pr, table("samples", "api"), work)
	if err == nil {
		t.Fatalf("a load whose second page fails succeeded: %+v", res)
	}
	if connectors.IsBadInput(err) {
		t.Errorf("a server error is worth retrying, but err is BadInput: %v", err)
	}
	if !strings.Contains(err.Error(), "500") {
		t.Errorf("the error does not say what failed: %v", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Errorf("the error shows the token: %v", err)
	}
	for _, l := range lines {
		if strings.Contains(l, token) {
			t.Errorf("progress line shows the token: %q", l)
		}
	}
	if len(res.Files) != 0 || len(res.Tables) != 0 {
		t.Errorf("a failed load returned %+v", res)
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("a failed load left %v in the work folder", entries)
	}
	t.Logf("dlt asked for the failing page %d times; error: %v", api.page2Hits, err)

	// An endpoint the API does not have is a mistake in the data source.
	_, _, err = produce(t, pr, table("samplez", "api"), work)
	if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "no such endpoint") {
		t.Errorf("unknown endpoint: err = %v, want BadInput saying 404 and no such endpoint", err)
	}
}

func TestFilesystemCSVFiles(t *testing.T) {
	venvPython(t)
	root := t.TempDir()
	for name, content := range map[string]string{
		"exports/visits/part-1.csv": "id,patient,reason,cost\n1,7,checkup,10.5\n2,8,,\n",
		"exports/visits/part-2.csv": "id,patient,reason,cost\n3,7,\"x-ray, chest\",99.99\n",
		"exports/visits/README.txt": "not data",
		"exports/other.csv":         "id\n1\n",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pr := producer(t, &secrets.Provider{}, Options{FileRoot: root}, model.Connection{
		Name: "exports", URL: "filesystem+file:///exports?glob={table}/*.csv",
	})
	work := t.TempDir()
	res, lines, err := produce(t, pr, table("visits", "exports"), work)
	if err != nil {
		t.Fatalf("Produce: %v\nprogress:\n%s", err, strings.Join(lines, "\n"))
	}
	checkFolder(t, work, "visits", res)
	vt := findTable(t, res, "visits")
	if vt.Rows != 3 {
		t.Errorf("visits rows = %d, want 3", vt.Rows)
	}
	if ct := columnTypes(vt); ct["id"] != "bigint" || ct["reason"] != "text" || ct["cost"] != "double" {
		t.Errorf("visits columns = %v", ct)
	}
	got := tableRows(t, work, res, "visits", []string{"id", "patient", "reason", "cost"})
	want := [][]string{{"1", "7", "checkup", "10.5"}, {"2", "8", "(null)", "(null)"}, {"3", "7", "x-ray, chest", "99.99"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("visits read back:\n%q\nwant\n%q", got, want)
	}
	if res.Properties["source"] != "filesystem" {
		t.Errorf("properties = %v", res.Properties)
	}

	// A glob that matches nothing, and a file that links out of the root,
	// are mistakes in the data source.
	outside := filepath.Join(t.TempDir(), "elsewhere.csv")
	os.WriteFile(outside, []byte("id\n1\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "exports", "links"), 0o755)
	if err := os.Symlink(outside, filepath.Join(root, "exports", "links", "a.csv")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"admissions": "no file matches 'admissions/*.csv'",
		"links":      "links/a.csv leads outside the worker's file root",
	} {
		_, _, err := produce(t, pr, table(name, "exports"), work)
		if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("table %s: err = %v, want BadInput saying %q", name, err, want)
		}
	}
}

// runnerProcesses returns the pid, argv and environment of every running
// runner whose command line mentions dir.
func runnerProcesses(t *testing.T, dir string) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), RunnerFileName) || !strings.Contains(string(cmdline), dir) {
			continue
		}
		environ, _ := os.ReadFile(filepath.Join(p, "environ"))
		out[filepath.Base(p)] = [2]string{string(cmdline), string(environ)}
	}
	return out
}

func TestCancelKillsTheRunnerAndTheTokenTravelsOnlyInItsEnvironment(t *testing.T) {
	venvPython(t)
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Fatalf("this test reads the child's argv and environment from /proc, which is not available: %v", err)
	}
	const token = "tok-c0ffee1234ab"
	t.Setenv(secrets.EnvVar("api-token"), token)
	t.Setenv(secrets.EnvVar("unrelated"), "unrelated-secret-5678")
	api := newAPIServer(t, token)
	pr := producer(t, &secrets.Provider{}, Options{}, model.Connection{
		Name: "api", URL: "rest_api+" + api.URL + "/v1", Credentials: model.Credentials{TokenKey: "api-token"},
	})
	work := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		res connectors.Produced
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := pr.Produce(ctx, table("slow", "api"), work, func(string) {})
		done <- outcome{res, err}
	}()
	select {
	case <-api.entered:
	case o := <-done:
		t.Fatalf("Produce ended before the request: %v", o.err)
	case <-time.After(60 * time.Second):
		t.Fatal("the runner never called the API")
	}

	procs := runnerProcesses(t, work)
	if len(procs) != 1 {
		t.Fatalf("found %d runner processes for %s, want 1", len(procs), work)
	}
	for pid, pe := range procs {
		argv, env := pe[0], strings.Split(pe[1], "\x00")
		if strings.Contains(argv, token) {
			t.Errorf("the token is in the runner's argv: %q", argv)
		}
		found := false
		for _, kv := range env {
			switch {
			case kv == envRESTToken+"="+token:
				found = true
			case strings.HasPrefix(kv, secrets.EnvPrefix):
				t.Errorf("runner %s inherited %s", pid, strings.SplitN(kv, "=", 2)[0])
			case strings.Contains(kv, token), strings.Contains(kv, "unrelated-secret-5678"):
				t.Errorf("runner %s has a secret under %s", pid, strings.SplitN(kv, "=", 2)[0])
			}
		}
		if !found {
			t.Errorf("runner %s has no %s in its environment", pid, envRESTToken)
		}
	}

	start := time.Now()
	cancel()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Produce did not return within 15s of the cancel")
	}
	t.Logf("Produce returned %s after the cancel", time.Since(start).Round(time.Millisecond))
	if !errors.Is(o.err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", o.err)
	}
	select {
	case gone := <-api.released:
		if !gone {
			t.Error("the runner's request was never dropped")
		}
	case <-time.After(10 * time.Second):
		t.Error("the runner's connection stayed open after the cancel: it is still running")
	}
	if left := runnerProcesses(t, work); len(left) != 0 {
		t.Errorf("runner processes survive the cancel: %v", left)
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("a cancelled run left %v in the work folder", entries)
	}
}

func TestTimeoutStopsTheRun(t *testing.T) {
	venvPython(t)
	api := newAPIServer(t, "unused")
	pr := producer(t, &secrets.Provider{}, Options{Timeout: 3 * time.Second}, model.Connection{Name: "api", URL: "rest_api+" + api.URL + "/v1"})
	work := t.TempDir()
	start := time.Now()
	_, _, err := produce(t, pr, table("slow", "api"), work)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "configured timeout of 3s") {
		t.Errorf("err = %v, want the configured timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a 3s timeout took %s", d)
	}
	if left := runnerProcesses(t, work); len(left) != 0 {
		t.Errorf("runner processes survive the timeout: %v", left)
	}
}
