package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/preview"
)

func repoFile(t *testing.T, rel string) []byte {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", rel))
	require.NoError(t, err)
	return data
}

func TestCreateImport(t *testing.T) {
	e := newEnv(t)
	doc := string(repoFile(t, "examples/datasources/sample-file.yaml"))
	dsOnly, _, _ := strings.Cut(doc, "\n---\n")

	code, _, body := e.call("rita", "POST", "/api/v1/imports", mustJSON(t, map[string]string{"document": doc, "policy": "standard-import"}))
	require.Equal(t, http.StatusCreated, code, "%s", body)
	var res map[string]string
	require.NoError(t, json.Unmarshal(body, &res))
	assert.Equal(t, "EXTRACTING", res["state"])
	assert.True(t, strings.HasPrefix(res["id"], "import-sample-clinic-extract-"), res["id"])
	require.Len(t, e.fake.imports, 1)
	in := e.fake.imports[0]
	assert.Equal(t, "rita", in.Requester)
	assert.Equal(t, "api", in.Via)
	assert.Equal(t, "advanced-generic-workspace", in.Workspace, "from the binding in the document")
	assert.Equal(t, "dsb-sample-clinic-extract", in.Binding)
	assert.Equal(t, "standard-import", in.Policy)
	assert.Equal(t, "sample-clinic-extract", in.DataSource.Metadata.Name)

	// Without a binding the workspace comes from the body.
	code, _, body = e.call("rita", "POST", "/api/v1/imports", mustJSON(t, map[string]string{"document": dsOnly, "workspace": "ws-one"}))
	require.Equal(t, http.StatusCreated, code, "%s", body)
	assert.Equal(t, "ws-one", e.fake.imports[1].Workspace)
	assert.Empty(t, e.fake.imports[1].Binding)

	uploaded := strings.Replace(dsOnly, "type: Import", "type: Uploaded", 1)
	for _, c := range []struct {
		name, user, body string
		status           int
		contains         string
	}{
		{"no document", "rita", `{"workspace":"ws"}`, 400, "document: missing"},
		{"not YAML of a data source", "rita", mustJSON(t, map[string]string{"document": "kind: Pod\n", "workspace": "ws"}), 400, "apiVersion"},
		{"a field error names the field and line", "rita", mustJSON(t, map[string]string{"document": strings.Replace(dsOnly, "id: d4e6", "id: D4 E6", 1), "workspace": "ws"}), 400, "spec.project.id"},
		{"an unknown YAML field", "rita", mustJSON(t, map[string]string{"document": strings.Replace(dsOnly, "spec:\n", "spec:\n  colour: red\n", 1), "workspace": "ws"}), 400, "colour"},
		{"uploaded data sources are uploaded", "rita", mustJSON(t, map[string]string{"document": uploaded, "workspace": "ws"}), 400, "arrive by upload"},
		{"no workspace", "rita", mustJSON(t, map[string]string{"document": dsOnly}), 400, "workspace: missing"},
		{"bad workspace", "rita", mustJSON(t, map[string]string{"document": dsOnly, "workspace": "My Space"}), 400, `workspace "My Space"`},
		{"workspace contradicts binding", "rita", mustJSON(t, map[string]string{"document": doc, "workspace": "other"}), 400, "contradicts binding dsb-sample-clinic-extract"},
		{"unknown body field", "rita", `{"document":"x","requester":"rob"}`, 400, "requester: unknown field"},
		{"no import capability", "mallory", mustJSON(t, map[string]string{"document": doc}), 403, "import:d4e6"},
		{"reader is not importer", "petra", mustJSON(t, map[string]string{"document": doc}), 403, "import:d4e6"},
		{"other project", "rita", mustJSON(t, map[string]string{"document": strings.Replace(doc, "id: d4e6", "id: x9", 1)}), 403, "import:x9"},
	} {
		code, _, body := e.call(c.user, "POST", "/api/v1/imports", c.body)
		assert.Equal(t, c.status, code, "%s: %s", c.name, body)
		assert.Contains(t, errorOf(t, body).Message, c.contains, c.name)
	}
	assert.Len(t, e.fake.imports, 2, "no refused import was started")
}

func TestCrate(t *testing.T) {
	e := newEnv(t)
	st := awaiting("import-a-111111", "rita")
	e.fake.put(st)
	ds := sampleDataSource(t)
	crate, err := activities.BuildCrate(activities.CrateInput{Request: st, DataSource: ds})
	require.NoError(t, err)
	e.stage(st.ID, activities.CrateFile, crate)

	code, h, body := e.call("petra", "GET", "/api/v1/requests/import-a-111111/crate", "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Equal(t, "application/ld+json", h.Get("Content-Type"))
	assert.Equal(t, crate, body)

	// Once released, the crate is the workspace's.
	done := awaiting("import-d-444444", "rita")
	done.State = model.StateCompleted
	e.fake.put(done)
	released := []byte(`{"@context":"https://w3id.org/ro/crate/1.2/context","@graph":[]}`)
	putFile(t, e.workspaces, path.Join(activities.WorkspacePrefix(done.Workspace, done.DataSource, done.ID), activities.CrateFile), released)
	code, _, body = e.call("rita", "GET", "/api/v1/requests/import-d-444444/crate", "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Equal(t, released, body)

	noCrate := awaiting("import-b-222222", "rita")
	noCrate.State = model.StateExtracting
	e.fake.put(noCrate)
	code, _, body = e.call("rita", "GET", "/api/v1/requests/import-b-222222/crate", "")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, errorOf(t, body).Message, "has no crate now (it is EXTRACTING)")

	code, _, missing := e.call("mallory", "GET", "/api/v1/requests/import-x-000000/crate", "")
	assert.Equal(t, http.StatusNotFound, code)
	code, _, hidden := e.call("mallory", "GET", "/api/v1/requests/import-a-111111/crate", "")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, strings.ReplaceAll(string(missing), "import-x-000000", "import-a-111111"), string(hidden))
}

func sampleDataSource(t *testing.T) model.DataSource {
	t.Helper()
	docs, err := model.ParseDocuments("sample-file.yaml", repoFile(t, "examples/datasources/sample-file.yaml"))
	require.NoError(t, err)
	return docs.DataSources[0]
}

// writeParquet makes a small Parquet file: id, name and a timestamp.
func writeParquet(t *testing.T, rows int) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "seen", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	}, nil)
	b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	defer b.Release()
	base := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range rows {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		if i == 1 {
			b.Field(1).AppendNull()
		} else {
			b.Field(1).(*array.StringBuilder).Append("name " + string(rune('a'+i%26)))
		}
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(i) * time.Hour).UnixMilli()))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	fw, err := pqarrow.NewFileWriter(schema, &buf, parquet.NewWriterProperties(), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	require.NoError(t, err)
	require.NoError(t, fw.Write(rec))
	require.NoError(t, fw.Close())
	return buf.Bytes()
}

// previewRequest stages a CSV, a Parquet file and a text file for a
// request and records them as its files.
func previewRequest(t *testing.T, e *env, id, requester string) model.RequestStatus {
	t.Helper()
	csv := repoFile(t, "examples/sample-data/clinic/patients.csv")
	pq := writeParquet(t, 30)
	st := awaiting(id, requester)
	st.Files = []model.FileRecord{
		{Path: "clinic/patients.csv", Size: int64(len(csv)), SHA256: strings.Repeat("a", 64)},
		{Path: "clinic/visits.parquet", Size: int64(len(pq)), SHA256: strings.Repeat("b", 64)},
		{Path: "notes.txt", Size: 5, SHA256: strings.Repeat("c", 64)},
	}
	st.ManifestDigest = model.ManifestDigest(st.Files)
	e.fake.put(st)
	e.stage(id, "clinic/patients.csv", csv)
	e.stage(id, "clinic/visits.parquet", pq)
	e.stage(id, "notes.txt", []byte("hello"))
	return st
}

func TestPreview(t *testing.T) {
	e := newEnv(t)
	previewRequest(t, e, "import-a-111111", "rita")
	get := func(user, query string) (int, []byte) {
		code, _, body := e.call(user, "GET", "/api/v1/requests/import-a-111111/preview"+query, "")
		return code, body
	}
	code, body := get("dana", "?path=clinic/patients.csv&rows=3")
	require.Equal(t, http.StatusOK, code, "%s", body)
	var tab preview.Table
	require.NoError(t, json.Unmarshal(body, &tab))
	assert.Equal(t, []string{"person_id", "year_of_birth", "sex", "lsoa"}, tab.Columns)
	assert.Equal(t, []string{"P00001", "1971", "F", "E01007468"}, tab.Rows[0])
	assert.Len(t, tab.Rows, 3)
	assert.True(t, tab.Truncated)

	code, body = get("rita", "?path=clinic/visits.parquet")
	require.Equal(t, http.StatusOK, code, "%s", body)
	tab = preview.Table{}
	require.NoError(t, json.Unmarshal(body, &tab))
	assert.Equal(t, []string{"id", "name", "seen"}, tab.Columns)
	assert.Len(t, tab.Rows, preview.DefaultRows)
	assert.Equal(t, []string{"1", "", "2024-01-02T04:04:05Z"}, tab.Rows[1])

	for _, c := range []struct {
		query    string
		status   int
		contains string
	}{
		{"", 400, "path: missing"},
		{"?path=clinic/other.csv", 404, `path "clinic/other.csv": not one of request import-a-111111's files`},
		{"?path=../secrets.csv", 404, "not one of"},
		{"?path=notes.txt", 422, "previews are made of .csv, .tsv and .parquet files"},
		{"?path=clinic/patients.csv&rows=0", 400, `rows "0"`},
		{"?path=clinic/patients.csv&rows=many", 400, `rows "many"`},
		{"?path=clinic/patients.csv&columns=2", 400, "columns: unknown query parameter"},
	} {
		code, body := get("rita", c.query)
		assert.Equal(t, c.status, code, "%s: %s", c.query, body)
		assert.Contains(t, errorOf(t, body).Message, c.contains, c.query)
	}
	code, body = get("mallory", "?path=clinic/patients.csv")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, errorOf(t, body).Message, `no request "import-a-111111"`)

	// A recorded file that is gone from staging says so.
	require.NoError(t, e.staging.DeletePrefix(context.Background(), "import-a-111111/clinic"))
	code, body = get("rita", "?path=clinic/patients.csv")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, errorOf(t, body).Message, "no longer in staging")
}

// streamOnly hides a store reader's ReadAt, as object stores' readers are.
type streamOnly struct{ connectors.Store }

func (s streamOnly) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{rc, rc}, nil
}

// A Parquet file in a store that cannot read at offsets is previewed from a
// local copy.
func TestPreviewParquetFromAStreamingStore(t *testing.T) {
	e := newEnv(t)
	previewRequest(t, e, "import-a-111111", "rita")
	e.srv.staging = streamOnly{e.staging}
	code, _, body := e.call("rita", "GET", "/api/v1/requests/import-a-111111/preview?path=clinic/visits.parquet&rows=2", "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	var tab preview.Table
	require.NoError(t, json.Unmarshal(body, &tab))
	assert.Equal(t, [][]string{{"0", "name a", "2024-01-02T03:04:05Z"}, {"1", "", "2024-01-02T04:04:05Z"}}, tab.Rows)
	assert.True(t, tab.Truncated)
}

// A Parquet file larger than the copy limit is refused with a reason, not
// copied.
func TestPreviewSpoolLimit(t *testing.T) {
	e := newEnv(t)
	pq := writeParquet(t, 30)
	e.stage("import-a-111111", "v.parquet", pq)
	_, err := readPreview(context.Background(), streamOnly{e.staging}, "import-a-111111/v.parquet", "v.parquet", int64(len(pq)), 5, 100)
	var ae *apiError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, http.StatusUnprocessableEntity, ae.Status)
	assert.Contains(t, ae.Message, "too large to preview from this store")
	// A size recorded too small is caught while copying.
	_, err = readPreview(context.Background(), streamOnly{e.staging}, "import-a-111111/v.parquet", "v.parquet", 50, 5, 100)
	require.ErrorAs(t, err, &ae)
	tab, err := readPreview(context.Background(), streamOnly{e.staging}, "import-a-111111/v.parquet", "v.parquet", int64(len(pq)), 5, int64(len(pq)))
	require.NoError(t, err)
	assert.Len(t, tab.Rows, 5)
}
