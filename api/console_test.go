package main

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
)

func TestSignIn(t *testing.T) {
	e := newEnv(t)
	// An anonymous visitor is sent to sign in, and back afterwards.
	res, err := http.Get(e.ts.URL + "/requests/import-a-111111")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, "/signin", res.Request.URL.Path)
	assert.Equal(t, "/requests/import-a-111111", res.Request.URL.Query().Get("next"))

	b := e.signIn("rita")
	code, at, page := b.get("/signin?next=/queue")
	assert.Equal(t, "/queue", at, "a signed-in visitor goes straight on")
	code, at, page = b.get("/")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "/", at)
	assert.Contains(t, page, `<span id="user" data-testid="user"`)
	assert.Contains(t, page, ">rita</span>")

	// The sign-in page goes through the auth handler.
	res, err = http.Get(e.ts.URL + "/signin?next=/queue")
	require.NoError(t, err)
	defer res.Body.Close()
	body := readAll(t, res)
	assert.Contains(t, body, `id="signin" href="/auth/login?next=%2Fqueue"`)
	assert.Contains(t, body, "development sign-in mode")
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(data)
}

func TestListPages(t *testing.T) {
	e := newEnv(t)
	e.fake.put(awaiting("import-a-111111", "rita"))
	e.fake.put(awaiting("import-b-222222", "rob"))
	gov := awaiting("import-c-333333", "rob")
	gov.Stages[0].State, gov.Stages[1].State = model.StageApproved, model.StageWaiting
	e.fake.put(gov)

	_, _, page := e.signIn("rita").get("/")
	assert.Contains(t, page, `<table id="requests"`)
	assert.Contains(t, page, `href="/requests/import-a-111111"`)
	assert.NotContains(t, page, "import-b-222222", "only rita's own requests")
	assert.Contains(t, page, `data-state="AWAITING_APPROVAL"`)
	assert.NotContains(t, page, `href="/queue"`, "rita approves nothing")
	assert.Contains(t, page, `href="/uploads/new"`)

	_, _, page = e.signIn("dana").get("/queue")
	assert.Contains(t, page, "import-a-111111")
	assert.Contains(t, page, "import-b-222222")
	assert.NotContains(t, page, "import-c-333333", "waiting on information-governance")
	assert.Contains(t, page, `href="/queue"`)
	assert.NotContains(t, page, `href="/uploads/new"`, "dana uploads nothing")

	_, _, page = e.signIn("ian").get("/queue")
	assert.Contains(t, page, "import-c-333333")
	assert.NotContains(t, page, "import-a-111111")

	_, _, page = e.signIn("rita").get("/queue")
	assert.Contains(t, page, "grants no approval role")
	assert.Contains(t, page, `id="empty"`)
}

func TestRequestPage(t *testing.T) {
	e := newEnv(t)
	st := previewRequest(t, e, "import-a-111111", "rita")
	st.Refused = []model.RefusedDecision{{DecisionRequest: model.DecisionRequest{Stage: "review", By: "dave", Decision: "approve"}, Reason: "manifest_digest sha256:old does not match"}}
	e.fake.put(st)
	crate, err := activities.BuildCrate(activities.CrateInput{Request: st, DataSource: sampleDataSource(t), Extractions: []activities.Extraction{{
		Index: 0, Object: "prefix clinic/", Source: "file:///sample-data", Files: []string{"clinic/patients.csv", "clinic/visits.parquet"},
		Instrument: activitiesInstrument(),
	}}})
	require.NoError(t, err)
	e.stage(st.ID, activities.CrateFile, crate)

	code, _, page := e.signIn("dana").get("/requests/import-a-111111")
	require.Equal(t, http.StatusOK, code, page)
	for _, want := range []string{
		`id="state"`, `data-state="AWAITING_APPROVAL"`,
		`<form id="decide"`, `id="approve"`, `id="reject"`, `id="comment"`,
		`<code id="manifest-digest" data-testid="manifest-digest">` + st.ManifestDigest + `</code>`,
		`<input type="hidden" name="manifest_digest" value="` + st.ManifestDigest + `">`,
		`<table id="files"`, strings.Repeat("a", 64), `data-path="clinic/visits.parquet"`,
		`href="` + testTemporalUI + `/namespaces/airlock-ns/workflows/import-a-111111"`,
		// From the crate: what the data is, who publishes it, the licence.
		"Two small synthetic tables", "NHS Greater Manchester ICB", "Data Engineer One (AWMS Developer)",
		"may ONLY be used for demonstrating Airlock",
		// Provenance: the extraction.
		"Extract prefix clinic/ into quarantine", "file:///sample-data",
		// Review history, with the refused decision and its reason.
		`data-stage="review"`, `data-stage="governance"`, `id="refused-history"`, "manifest_digest sha256:old does not match",
		// Previews of the CSV and Parquet files, not of the text file.
		`class="preview" data-path="clinic/patients.csv"`, "<th>person_id</th>", "<td>P00001</td>",
		`class="preview" data-path="clinic/visits.parquet"`, "<td>2024-01-02T03:04:05Z</td>",
	} {
		assert.Contains(t, page, want)
	}
	assert.NotContains(t, page, `data-path="notes.txt"><h3>`)
	assert.NotContains(t, page, `http-equiv="refresh"`, "a request waiting on people does not reload")

	// A reader who may not approve sees no decision form; the requester
	// neither, but may cancel.
	_, _, page = e.signIn("petra").get("/requests/import-a-111111")
	assert.NotContains(t, page, `<form id="decide"`)
	assert.NotContains(t, page, `id="cancel-form"`)
	_, _, page = e.signIn("rita").get("/requests/import-a-111111")
	assert.NotContains(t, page, `<form id="decide"`)
	assert.Contains(t, page, `id="cancel-form"`)
	_, _, page = e.signIn("ian").get("/requests/import-a-111111")
	assert.NotContains(t, page, `<form id="decide"`, "ian's stage is not open yet")

	code, _, page = e.signIn("mallory").get("/requests/import-a-111111")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, page, `no request &#34;import-a-111111&#34;`)

	moving := awaiting("import-m-777777", "rita")
	moving.State = model.StateExtracting
	e.fake.put(moving)
	_, _, page = e.signIn("rita").get("/requests/import-m-777777")
	assert.Contains(t, page, `http-equiv="refresh"`)
	assert.Contains(t, page, "written once its files are in staging")
}

func activitiesInstrument() connectors.Instrument {
	return connectors.Instrument{Name: "airlock-file", Version: "test"}
}

var digestField = regexp.MustCompile(`name="manifest_digest" value="([^"]+)"`)

func TestDecideForm(t *testing.T) {
	e := newEnv(t)
	st := awaiting("import-a-111111", "rita")
	e.fake.put(st)
	b := e.signIn("dana")
	_, _, page := b.get("/requests/import-a-111111")
	token := csrf(t, page)
	digest := digestField.FindStringSubmatch(page)[1]

	// Without the CSRF token nothing is sent.
	code, _, page := b.post("/requests/import-a-111111/decide", url.Values{"stage": {"review"}, "decision": {"approve"}, "manifest_digest": {digest}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, page, "csrf_token")
	d, _, _ := e.fake.counts()
	assert.Zero(t, d)

	// A refused decision shows the page again with the reason.
	code, _, page = b.post("/requests/import-a-111111/decide", url.Values{"csrf_token": {token}, "stage": {"review"}, "decision": {"reject"}, "manifest_digest": {digest}})
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, page, `id="refused"`)
	assert.Contains(t, page, html.EscapeString("a rejection needs a comment"))
	assert.Contains(t, page, `<form id="decide"`, "the form is there to try again")

	code, at, page := b.post("/requests/import-a-111111/decide", url.Values{"csrf_token": {token}, "stage": {"review"}, "decision": {"approve"}, "manifest_digest": {digest}, "comment": {"looks right"}})
	require.Equal(t, http.StatusOK, code, page)
	assert.Equal(t, "/requests/import-a-111111", at)
	got := e.fake.lastDecision()
	assert.Equal(t, model.DecisionRequest{Stage: "review", By: "dana", Decision: "approve", Comment: "looks right", ManifestDigest: st.ManifestDigest, Via: "api", Roles: []string{"data-engineer"}}, got)
	assert.Contains(t, page, `data-decision="approve" data-by="dana"`)
	assert.Contains(t, page, "looks right")
	assert.NotContains(t, page, `<form id="decide"`, "dana has decided; the next stage is another role's")

	// ian now decides the governance stage.
	bi := e.signIn("ian")
	_, _, page = bi.get("/requests/import-a-111111")
	require.Contains(t, page, `<form id="decide"`)
	code, _, _ = bi.post("/requests/import-a-111111/decide", url.Values{"csrf_token": {csrf(t, page)}, "stage": {"governance"}, "decision": {"approve"}, "manifest_digest": {digest}})
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, model.StateCompleted, e.fake.get(st.ID).State)
}

func TestCancelForm(t *testing.T) {
	e := newEnv(t)
	e.fake.put(awaiting("import-a-111111", "rita"))
	b := e.signIn("rita")
	_, _, page := b.get("/requests/import-a-111111")
	code, _, page := b.post("/requests/import-a-111111/cancel", url.Values{"csrf_token": {csrf(t, page)}, "reason": {"wrong files"}})
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, page, `data-state="CANCELLED"`)
	assert.Contains(t, page, "wrong files")
	assert.NotContains(t, page, `id="cancel-form"`)
}

func TestUploadPages(t *testing.T) {
	e := newEnv(t)
	b := e.signIn("rita")
	code, _, page := b.get("/uploads/new")
	require.Equal(t, http.StatusOK, code)
	for _, id := range []string{`id="new-upload"`, `<input type="text" id="project" name="project" value="d4e6"`, `<datalist id="projects"><option value="d4e6"></datalist>`, `id="workspace"`, `id="display_name"`, `id="publisher_organisation"`, `id="create"`} {
		assert.Contains(t, page, id)
	}
	token := csrf(t, page)

	// A refused form comes back with the values and the reason.
	code, _, page = b.post("/uploads/new", url.Values{"csrf_token": {token}, "project": {"d4e6"}, "workspace": {"ws-one"}, "display_name": {"Survey"}})
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, page, "publisher.organisation: missing")
	assert.Contains(t, page, `value="ws-one"`)

	code, at, page := b.post("/uploads/new", url.Values{"csrf_token": {token}, "project": {"d4e6"}, "workspace": {"ws-one"},
		"display_name": {"Survey"}, "publisher_organisation": {"Org"}, "license": {"CC-BY"}})
	require.Equal(t, http.StatusOK, code, page)
	require.True(t, strings.HasPrefix(at, "/uploads/upload-ds-"), at)
	id := strings.TrimPrefix(at, "/uploads/")
	for _, want := range []string{
		`id="uploader"`, `data-request="` + id + `"`, `data-endpoint="/api/v1/files/"`,
		`data-confirm="/api/v1/uploads/` + id + `/confirm"`, `id="file-input"`, `id="confirm"`,
		`<script src="/static/upload.js" defer></script>`, `data-state="AWAITING_UPLOAD"`, "At most 1.0 MiB a file.",
	} {
		assert.Contains(t, page, want)
	}
	assert.Equal(t, "Org", e.fake.uploads[0].DataSource.Spec.Publisher.Organisation)
	assert.Equal(t, "rita", e.fake.uploads[0].DataSource.Spec.Publisher.Contact.Name)

	// A file uploaded shows on the page with its progress bar.
	e.uploadFile("rita", id, "a.csv", "x,y\n")
	_, _, page = b.get(at)
	assert.Contains(t, page, `data-path="a.csv"`)
	assert.Contains(t, page, `<progress class="progress" max="4" value="4">`)

	// The request page links to the upload page while files are awaited.
	_, _, page = b.get("/requests/" + id)
	assert.Contains(t, page, `id="upload-link" href="/uploads/`+id+`"`)
	assert.Contains(t, page, "Uploaded by <strong>rita</strong>")

	code, _, _ = e.signIn("rob").get(at)
	assert.Equal(t, http.StatusNotFound, code, "rob cannot see rita's upload")
	code, _, page = e.signIn("petra").get(at)
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, page, "Only the requester")
	code, _, page = e.signIn("mallory").get("/uploads/new")
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, page, "grants no upload capability")
	assert.NotContains(t, page, `id="new-upload"`)
}

func TestStaticAndNotFound(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ path, ctype, contains string }{
		{"/static/upload.js", "text/javascript", "Tus-Resumable"},
		{"/static/style.css", "text/css", ".badge"},
	} {
		res, err := http.Get(e.ts.URL + c.path)
		require.NoError(t, err)
		body := readAll(t, res)
		res.Body.Close()
		assert.Equal(t, http.StatusOK, res.StatusCode)
		assert.Contains(t, res.Header.Get("Content-Type"), c.ctype)
		assert.Contains(t, body, c.contains)
	}
	code, _, page := e.signIn("rita").get("/no/such/page")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, page, "There is no page at /no/such/page.")

	res, err := http.Get(e.ts.URL + "/signin")
	require.NoError(t, err)
	res.Body.Close()
	assert.Contains(t, res.Header.Get("Content-Security-Policy"), "script-src 'self'")
	assert.Equal(t, "DENY", res.Header.Get("X-Frame-Options"))
}
