package fakedatabricks

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// These tests hold the fake to the API's rules: a fake that accepts what
// the real service refuses would let connector bugs through.

const token = "dapi-test"

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	opts.Token = token
	opts.ClientID, opts.ClientSecret = "client", "se cret/+"
	if opts.WarehouseID == "" {
		opts.WarehouseID = "wh1"
	}
	if opts.Tables == nil {
		opts.Tables = map[string]*Table{"main.default.t": {
			Columns: []Column{{Name: "id", Type: "BIGINT"}, {Name: "amount", Type: "DECIMAL(8,2)"}, {Name: "at", Type: "TIMESTAMP"}},
			Rows:    25,
			Value: func(row int64, col int) any {
				switch col {
				case 0:
					return row
				case 1:
					return "12.50"
				}
				return time.Unix(row, 0)
			},
		}}
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// call sends a request with the test token and returns status and body.
func call(t *testing.T, method, u string, body any, hdr map[string]string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func good() map[string]any {
	return map[string]any{"warehouse_id": "wh1", "statement": "SELECT * FROM t", "disposition": "EXTERNAL_LINKS", "format": "ARROW_STREAM", "wait_timeout": "10s"}
}

func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range m {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func TestExecuteRequestValidation(t *testing.T) {
	s := start(t, Options{})
	u := s.URL + "/api/2.0/sql/statements"
	for _, c := range []struct {
		body   map[string]any
		status int
	}{
		{with(good(), "warehouse_id", nil), 400},
		{with(good(), "statement", nil), 400},
		{with(good(), "disposition", "INLINE"), 400},                   // ARROW_STREAM needs EXTERNAL_LINKS
		{with(good(), "format", nil), 501},                             // JSON_ARRAY is valid, the fake does not serve it
		{with(with(good(), "format", "CSV"), "disposition", nil), 400}, // default INLINE + CSV
		{with(good(), "disposition", "STREAM"), 400},
		{with(good(), "format", "PARQUET"), 400},
		{with(good(), "wait_timeout", "3s"), 400},
		{with(good(), "wait_timeout", "51s"), 400},
		{with(good(), "wait_timeout", "10"), 400},
		{with(good(), "on_wait_timeout", "WAIT"), 400},
		{with(good(), "bogus_field", 1), 400},
		{with(good(), "warehouse_id", "other"), 404},
		{good(), 200},
		{with(good(), "wait_timeout", "0s"), 200},
	} {
		st, body, _ := call(t, "POST", u, c.body, nil)
		if st != c.status {
			t.Errorf("%v: status %d (%s), want %d", c.body, st, body, c.status)
		}
	}
	if st, _, _ := call(t, "POST", u, good(), map[string]string{"Authorization": ""}); st != 401 {
		t.Errorf("no credentials: %d", st)
	}
	if st, _, _ := call(t, "POST", u, good(), map[string]string{"Authorization": "Bearer wrong"}); st != 401 {
		t.Errorf("wrong token: %d", st)
	}
}

func TestStatementResponseShapeAndLinks(t *testing.T) {
	s := start(t, Options{ChunkRows: 10})
	st, body, _ := call(t, "POST", s.URL+"/api/2.0/sql/statements", good(), nil)
	if st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	var resp struct {
		StatementID string `json:"statement_id"`
		Status      struct {
			State string `json:"state"`
		} `json:"status"`
		Manifest struct {
			Format string `json:"format"`
			Schema struct {
				ColumnCount int              `json:"column_count"`
				Columns     []map[string]any `json:"columns"`
			} `json:"schema"`
			TotalChunkCount int              `json:"total_chunk_count"`
			Chunks          []map[string]any `json:"chunks"`
			TotalRowCount   int              `json:"total_row_count"`
		} `json:"manifest"`
		Result struct {
			ExternalLinks []map[string]any `json:"external_links"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	m := resp.Manifest
	if resp.Status.State != "SUCCEEDED" || m.Format != "ARROW_STREAM" || m.TotalChunkCount != 3 || len(m.Chunks) != 3 || m.TotalRowCount != 25 || m.Schema.ColumnCount != 3 {
		t.Fatalf("response %s", body)
	}
	amount := m.Schema.Columns[1]
	if amount["name"] != "amount" || amount["type_name"] != "DECIMAL" || amount["type_text"] != "DECIMAL(8,2)" || amount["position"] != 1.0 || amount["type_precision"] != 8.0 || amount["type_scale"] != 2.0 {
		t.Errorf("column %v", amount)
	}
	if m.Chunks[2]["row_offset"] != 20.0 || m.Chunks[2]["row_count"] != 5.0 {
		t.Errorf("chunk %v", m.Chunks[2])
	}
	if len(resp.Result.ExternalLinks) != 1 {
		t.Fatalf("links %v", resp.Result.ExternalLinks)
	}
	l := resp.Result.ExternalLinks[0]
	for _, k := range []string{"chunk_index", "row_offset", "row_count", "byte_count", "external_link", "expiration", "http_headers", "next_chunk_index", "next_chunk_internal_link"} {
		if _, ok := l[k]; !ok {
			t.Errorf("link has no %s: %v", k, l)
		}
	}
	if _, err := time.Parse(time.RFC3339, l["expiration"].(string)); err != nil {
		t.Errorf("expiration: %v", err)
	}
	link := l["external_link"].(string)
	if !strings.HasPrefix(link, s.StorageURL+"/") {
		t.Errorf("link %s is not on the storage host", link)
	}
	headers := map[string]string{}
	for k, v := range l["http_headers"].(map[string]any) {
		headers[k] = v.(string)
	}

	fetch := func(h map[string]string) (int, []byte) {
		req, _ := http.NewRequest("GET", link, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if st, _ := fetch(nil); st != 400 {
		t.Errorf("link without its http_headers: %d, want 400", st)
	}
	withAuth := map[string]string{"Authorization": "Bearer " + token}
	for k, v := range headers {
		withAuth[k] = v
	}
	if st, _ := fetch(withAuth); st != 400 {
		t.Errorf("link with an Authorization header: %d, want 400", st)
	}
	st, data := fetch(headers)
	if st != 200 {
		t.Fatalf("link: %d %s", st, data)
	}
	rd, err := ipc.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	rows := int64(0)
	for rd.Next() {
		rows += rd.RecordBatch().NumRows()
	}
	if rows != 10 || rd.Schema().Field(2).Type.String() != "timestamp[us, tz=Etc/UTC]" {
		t.Errorf("chunk 0: %d rows, schema %s", rows, rd.Schema())
	}
	bad, _ := url.Parse(link)
	q := bad.Query()
	q.Set("X-Amz-Signature", "forged")
	bad.RawQuery = q.Encode()
	link = bad.String()
	if st, _ := fetch(headers); st != 403 {
		t.Errorf("forged signature: %d, want 403", st)
	}

	chunk := func(i string) int {
		st, _, _ := call(t, "GET", s.URL+"/api/2.0/sql/statements/"+resp.StatementID+"/result/chunks/"+i, nil, nil)
		return st
	}
	if chunk("2") != 200 || chunk("3") != 400 || chunk("-1") != 400 || chunk("x") != 400 {
		t.Errorf("chunk index range not enforced")
	}
}

func TestStatesCancelAndAsync(t *testing.T) {
	s := start(t, Options{PendingPolls: 1, RunningPolls: 1})
	_, body, _ := call(t, "POST", s.URL+"/api/2.0/sql/statements", good(), nil)
	var r statementResponse
	_ = json.Unmarshal(body, &r)
	if r.Status.State != "PENDING" || r.Manifest != nil {
		t.Fatalf("execute: %s", body)
	}
	get := func() statementResponse {
		_, body, _ := call(t, "GET", s.URL+"/api/2.0/sql/statements/"+r.StatementID, nil, nil)
		var out statementResponse
		_ = json.Unmarshal(body, &out)
		return out
	}
	if st, _, _ := call(t, "GET", s.URL+"/api/2.0/sql/statements/"+r.StatementID+"/result/chunks/0", nil, nil); st != 400 {
		t.Errorf("chunk of an unfinished statement: %d", st)
	}
	if got := get().Status.State; got != "RUNNING" {
		t.Errorf("poll 1: %s", got)
	}
	if got := get(); got.Status.State != "SUCCEEDED" || got.Manifest == nil {
		t.Errorf("poll 2: %+v", got)
	}

	_, body, _ = call(t, "POST", s.URL+"/api/2.0/sql/statements", good(), nil)
	_ = json.Unmarshal(body, &r)
	if st, _, _ := call(t, "POST", s.URL+"/api/2.0/sql/statements/"+r.StatementID+"/cancel", nil, nil); st != 200 {
		t.Fatal("cancel failed")
	}
	if got := get().Status.State; got != "CANCELED" {
		t.Errorf("after cancel: %s", got)
	}

	_, body, _ = call(t, "POST", s.URL+"/api/2.0/sql/statements", with(good(), "on_wait_timeout", "CANCEL"), nil)
	_ = json.Unmarshal(body, &r)
	if r.Status.State != "CANCELED" {
		t.Errorf("on_wait_timeout CANCEL: %s", body)
	}

	fast := start(t, Options{})
	_, body, _ = call(t, "POST", fast.URL+"/api/2.0/sql/statements", with(good(), "wait_timeout", "0s"), nil)
	_ = json.Unmarshal(body, &r)
	if r.Status.State != "PENDING" {
		t.Errorf("wait_timeout 0s answered %s, want PENDING", r.Status.State)
	}
	_, body, _ = call(t, "POST", fast.URL+"/api/2.0/sql/statements", with(good(), "row_limit", 5), nil)
	_ = json.Unmarshal(body, &r)
	if !r.Manifest.Truncated || r.Manifest.TotalRowCount != 5 {
		t.Errorf("row_limit 5: %s", body)
	}
}

func TestOAuthM2M(t *testing.T) {
	s := start(t, Options{})
	st, body, _ := call(t, "GET", s.URL+"/oidc/.well-known/oauth-authorization-server", nil, map[string]string{"Authorization": ""})
	var meta map[string]any
	_ = json.Unmarshal(body, &meta)
	if st != 200 || meta["token_endpoint"] != s.URL+"/oidc/v1/token" {
		t.Fatalf("metadata: %d %s", st, body)
	}
	token := func(id, secret, scope string) (int, map[string]any) {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
		req, _ := http.NewRequest("POST", s.URL+"/oidc/v1/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if st, _ := token("client", "wrong", "all-apis"); st != 401 {
		t.Errorf("wrong secret: %d", st)
	}
	if st, _ := token("client", "se cret/+", "sql"); st != 400 {
		t.Errorf("scope without all-apis: %d", st)
	}
	st, tok := token("client", "se cret/+", "all-apis")
	if st != 200 || tok["token_type"] != "Bearer" || tok["expires_in"] == nil {
		t.Fatalf("token: %d %v", st, tok)
	}
	if st, _, _ := call(t, "POST", s.URL+"/api/2.0/sql/statements", good(), map[string]string{"Authorization": "Bearer " + tok["access_token"].(string)}); st != 200 {
		t.Errorf("API call with the issued token: %d", st)
	}
}

func TestFilesAPI(t *testing.T) {
	files := map[string][]byte{}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		files["/Volumes/c/s/v/dir/"+n+".txt"] = []byte("content " + n)
	}
	s := start(t, Options{Files: files, ListPageSize: 2})
	u := s.URL + "/api/2.0/fs/directories/Volumes/c/s/v/dir"
	st, body, _ := call(t, "GET", u, nil, nil)
	var page listJSON
	_ = json.Unmarshal(body, &page)
	if st != 200 || len(page.Contents) != 2 || page.NextPageToken == "" || *page.Contents[0].FileSize != 9 {
		t.Fatalf("page 1: %d %s", st, body)
	}
	if st, _, _ := call(t, "GET", u+"?page_size=3&page_token="+page.NextPageToken, nil, nil); st != 400 {
		t.Errorf("page_token with another page_size: %d, want 400", st)
	}
	if st, _, _ := call(t, "GET", s.URL+"/api/2.0/fs/directories/Volumes/c/s/v?page_token="+page.NextPageToken, nil, nil); st != 400 {
		t.Errorf("page_token for another directory: %d, want 400", st)
	}
	if st, _, _ := call(t, "GET", s.URL+"/api/2.0/fs/directories/Volumes/c/s/v/missing", nil, nil); st != 404 {
		t.Errorf("missing directory: %d", st)
	}
	if st, _, _ := call(t, "GET", s.URL+"/api/2.0/fs/directories/tmp/x", nil, nil); st != 400 {
		t.Errorf("path outside /Volumes: %d", st)
	}

	f := s.URL + "/api/2.0/fs/files/Volumes/c/s/v/dir/c.txt"
	st, body, h := call(t, "GET", f, nil, map[string]string{"Range": "bytes=3-"})
	if st != 206 || string(body) != "tent c" || h.Get("Content-Range") != "bytes 3-8/9" {
		t.Errorf("ranged GET: %d %q %v", st, body, h)
	}
	if st, _, _ := call(t, "GET", f, nil, map[string]string{"Range": "bytes=20-"}); st != 416 {
		t.Errorf("range past the end: %d", st)
	}
	if st, _, _ := call(t, "GET", f, nil, map[string]string{"If-Unmodified-Since": time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}); st != 412 {
		t.Errorf("If-Unmodified-Since before the modification: %d", st)
	}
	st, _, h = call(t, "HEAD", f, nil, nil)
	if st != 200 || h.Get("Content-Length") != "9" || h.Get("Last-Modified") == "" {
		t.Errorf("HEAD: %d %v", st, h)
	}
	if st, _, _ := call(t, "GET", f, nil, map[string]string{"Authorization": ""}); st != 401 {
		t.Errorf("download without credentials: %d", st)
	}
}

func TestFaultInjection(t *testing.T) {
	s := start(t, Options{})
	s.FailNextAPI(1, 429, "2")
	st, _, h := call(t, "GET", s.URL+"/api/2.0/sql/statements/nope", nil, nil)
	if st != 429 || h.Get("Retry-After") != "2" {
		t.Errorf("injected 429: %d %v", st, h)
	}
	if st, _, _ := call(t, "GET", s.URL+"/api/2.0/sql/statements/nope", nil, nil); st != 404 {
		t.Errorf("after the fault: %d", st)
	}
}

func TestRefusesUnknownTypes(t *testing.T) {
	_, err := New(Options{Tables: map[string]*Table{"a.b.c": {Columns: []Column{{Name: "x", Type: "WIDGET"}}}}})
	if err == nil || !strings.Contains(err.Error(), `unknown column type "WIDGET"`) {
		t.Errorf("err = %v", err)
	}
}
