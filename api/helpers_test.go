package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/model"
)

// The test directory: who holds which role (dev mode users), and the grants
// that turn roles into capabilities.
var (
	testUsers = map[string][]string{
		"rita":    {"researcher"},
		"rob":     {"researcher"},
		"dana":    {"data-engineer"},
		"dave":    {"data-engineer"},
		"ian":     {"information-governance"},
		"petra":   {"project-reader"},
		"mallory": {"outsider"},
	}
	testGrants = []auth.Grant{
		{Role: "researcher", Capabilities: []string{"import:d4e6", "upload:d4e6", "read:own"}},
		{Role: "data-engineer", Capabilities: []string{"approve:data-engineer", "read:own"}},
		{Role: "information-governance", Capabilities: []string{"approve:information-governance"}},
		{Role: "project-reader", Capabilities: []string{"read:d4e6"}},
		{Role: "outsider", Capabilities: []string{"read:own"}},
	}
	testLimits = model.UploadLimits{MaxFileSize: 1 << 20, MaxRequestSize: 4 << 20, MaxFiles: 5}
)

const testTemporalUI = "http://temporal-ui.test:8233"

// env is a running API server: dev-mode sign-in, real local stores in
// temporary folders, the real tus handler and the in-memory requests fake.
type env struct {
	t          *testing.T
	fake       *fakeRequests
	staging    connectors.Store
	workspaces connectors.Store
	srv        *server
	ts         *httptest.Server
	ready      error
}

func newEnv(t *testing.T) *env {
	t.Helper()
	authn, err := auth.New(context.Background(), auth.Config{Mode: auth.ModeDev, Grants: testGrants},
		auth.Options{DevUsers: testUsers, ListenAddr: "127.0.0.1:8080", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return newEnvWith(t, authn)
}

// newEnvWith is newEnv with another sign-in (OIDC, for bearer tokens).
func newEnvWith(t *testing.T, authn *auth.Authenticator) *env {
	t.Helper()
	staging, err := localstore.New(t.TempDir())
	require.NoError(t, err)
	workspaces, err := localstore.New(t.TempDir())
	require.NoError(t, err)
	logger := slog.New(slog.DiscardHandler)
	e := &env{t: t, fake: newFakeRequests(testUsers), staging: staging, workspaces: workspaces}
	e.srv, err = newServer(serverConfig{
		Requests: e.fake, Auth: authn, Staging: staging, Workspaces: workspaces,
		Limits: testLimits, ExpireAfter: 6 * time.Hour,
		PublicURL: "http://airlock.test", TemporalUI: testTemporalUI, Namespace: "airlock-ns",
		Ready:  func(context.Context) error { return e.ready },
		Logger: logger,
	})
	require.NoError(t, err)
	e.ts = httptest.NewServer(e.srv.routes())
	t.Cleanup(func() {
		e.ts.Close()
		if c, ok := e.srv.uploads.(io.Closer); ok {
			c.Close()
		}
	})
	return e
}

// call sends a request as user ("" for anonymous, with the dev header
// otherwise) and returns the status, headers and body.
func (e *env) call(user, method, p string, body string, headers ...string) (int, http.Header, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.ts.URL+p, rd)
	require.NoError(e.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set(auth.DevUserHeader, user)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return res.StatusCode, res.Header, data
}

// errorOf decodes an API error body, failing the test when the body is
// not one.
func errorOf(t *testing.T, body []byte) apiError {
	t.Helper()
	var b struct {
		Error *apiError `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &b), "error body: %s", body)
	require.NotNil(t, b.Error, "error body: %s", body)
	return *b.Error
}

// mustJSON encodes v.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// Stages of the test policy: review (data-engineer), then governance
// (information-governance), one approval each.
func testStages() []model.StageStatus {
	return model.NewStages(model.Policy{Stages: []model.Stage{
		{Name: "review", Role: "data-engineer", Approvals: 1},
		{Name: "governance", Role: "information-governance", Approvals: 1},
	}})
}

var testFiles = []model.FileRecord{
	{Path: "clinic/patients.csv", Size: 0, SHA256: strings.Repeat("a", 64), EncodingFormat: "text/csv"},
	{Path: "clinic/visits.parquet", Size: 0, SHA256: strings.Repeat("b", 64), EncodingFormat: "application/vnd.apache.parquet"},
	{Path: "notes.txt", Size: 5, SHA256: strings.Repeat("c", 64), EncodingFormat: "text/plain"},
}

// awaiting is an import by requester in project d4e6 waiting on its first
// stage (review, data-engineer).
func awaiting(id, requester string) model.RequestStatus {
	st := model.RequestStatus{
		ID: id, Kind: model.KindImport, State: model.StateAwaitingApproval, DataSource: "sample-clinic",
		DisplayName: "Sample clinic extract", Project: "d4e6", Workspace: "advanced-generic-workspace",
		Requester: requester, Via: "cli", Policy: "two-stage@1", Stages: testStages(),
		Files: append([]model.FileRecord(nil), testFiles...),
	}
	st.Stages[0].State = model.StageWaiting
	st.ManifestDigest = model.ManifestDigest(st.Files)
	return st
}

// stage writes a file into a request's staging area.
func (e *env) stage(id, file string, data []byte) {
	e.t.Helper()
	putFile(e.t, e.staging, path.Join(activities.StagingPrefix(id), file), data)
}

func putFile(t *testing.T, store connectors.Store, key string, data []byte) {
	t.Helper()
	w, err := store.Create(context.Background(), key, nil)
	require.NoError(t, err)
	_, err = w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Commit())
}

// browser is a cookie-holding client signed in through the dev sign-in.
type browser struct {
	e      *env
	client *http.Client
}

func (e *env) signIn(user string) *browser {
	e.t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(e.t, err)
	b := &browser{e: e, client: &http.Client{Jar: jar}}
	res, err := b.client.PostForm(e.ts.URL+"/auth/dev", url.Values{"user": {user}, "next": {"/"}})
	require.NoError(e.t, err)
	res.Body.Close()
	require.Equal(e.t, http.StatusOK, res.StatusCode, "dev sign-in as %s", user)
	return b
}

// get fetches a page; the client follows redirects.
func (b *browser) get(p string) (int, string, string) {
	b.e.t.Helper()
	res, err := b.client.Get(b.e.ts.URL + p)
	require.NoError(b.e.t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(b.e.t, err)
	return res.StatusCode, res.Request.URL.Path, string(data)
}

// post submits a form and follows the redirect.
func (b *browser) post(p string, form url.Values) (int, string, string) {
	b.e.t.Helper()
	res, err := b.client.PostForm(b.e.ts.URL+p, form)
	require.NoError(b.e.t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(b.e.t, err)
	return res.StatusCode, res.Request.URL.Path, string(data)
}

// do sends a request with the session cookie and the given headers.
func (b *browser) do(method, p, body string, headers ...string) (int, []byte) {
	b.e.t.Helper()
	req, err := http.NewRequest(method, b.e.ts.URL+p, bytes.NewReader([]byte(body)))
	require.NoError(b.e.t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := b.client.Do(req)
	require.NoError(b.e.t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(b.e.t, err)
	return res.StatusCode, data
}

var csrfRE = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// csrf reads the page's CSRF token.
func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	require.NotNil(t, m, "the page has no csrf-token meta tag")
	return m[1]
}
