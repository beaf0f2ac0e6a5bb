package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/uploads"
)

var newUpload = map[string]any{
	"project": "d4e6", "workspace": "advanced-generic-workspace", "display_name": "My survey",
	"description": "Answers to the 2024 survey.", "license": "Demo use only",
	"publisher": map[string]any{"organisation": "Some Organisation", "contact": map[string]string{"name": "Research Engineer One", "role": "Research Engineer"}},
}

// startUpload creates an upload request as user and returns its id.
func (e *env) startUpload(user string) string {
	e.t.Helper()
	code, _, body := e.call(user, "POST", "/api/v1/uploads", mustJSON(e.t, newUpload))
	require.Equal(e.t, http.StatusCreated, code, "%s", body)
	var res uploadCreated
	require.NoError(e.t, json.Unmarshal(body, &res))
	return res.ID
}

func TestCreateUpload(t *testing.T) {
	e := newEnv(t)
	code, _, body := e.call("rita", "POST", "/api/v1/uploads", mustJSON(t, newUpload))
	require.Equal(t, http.StatusCreated, code, "%s", body)
	var res uploadCreated
	require.NoError(t, json.Unmarshal(body, &res))
	assert.Equal(t, model.StateAwaitingUpload, res.State)
	assert.Equal(t, "http://airlock.test/api/v1/files/", res.FilesURL)
	assert.Equal(t, "http://airlock.test/api/v1/requests/"+res.ID, res.StatusURL)
	assert.Equal(t, "http://airlock.test/api/v1/uploads/"+res.ID+"/confirm", res.ConfirmURL)
	assert.Equal(t, "http://airlock.test/uploads/"+res.ID, res.PageURL)

	require.Len(t, e.fake.uploads, 1)
	in := e.fake.uploads[0]
	assert.Equal(t, "rita", in.Requester)
	assert.Equal(t, "api", in.Via)
	assert.Equal(t, "advanced-generic-workspace", in.Workspace)
	assert.Equal(t, testLimits, in.Limits)
	assert.Equal(t, 6*time.Hour, in.ExpireAfter)

	// The data source is shaped as the platform's upload front end writes
	// one (shared/fixtures/datasources/uploaded-pvc.yaml).
	ds := in.DataSource
	assert.Regexp(t, `^ds-[0-9a-f]{32}$`, ds.Metadata.Name)
	assert.Equal(t, map[string]string{"xlscsde.nhs.uk/type": "uploaded"}, ds.Metadata.Labels)
	assert.Equal(t, model.TypeUploaded, ds.Spec.Type)
	assert.Equal(t, []model.Connection{{Type: "pvc", Name: "pvc-" + strings.TrimPrefix(ds.Metadata.Name, "ds-")}}, ds.Spec.Connections)
	assert.Empty(t, ds.Spec.Objects)
	assert.Equal(t, "d4e6", ds.Spec.Project.ID)
	assert.Equal(t, "My survey", ds.Spec.DisplayName)
	assert.Equal(t, "Demo use only", ds.Spec.License)
	assert.Equal(t, model.Publisher{Organisation: "Some Organisation", Contact: model.Contact{Name: "Research Engineer One", Role: "Research Engineer"}}, ds.Spec.Publisher)
	assert.True(t, strings.HasPrefix(res.ID, "upload-"+ds.Metadata.Name+"-"), res.ID)
	// Written out as YAML, the document parses as any other.
	y, err := yaml.Marshal(ds)
	require.NoError(t, err)
	docs, err := model.ParseDocuments("upload", y)
	require.NoError(t, err, "%s", y)
	assert.Equal(t, ds.Metadata.Name, docs.DataSources[0].Metadata.Name)
	if fixture, err := os.ReadFile("/work/shared/fixtures/datasources/uploaded-pvc.yaml"); err == nil {
		fx, err := model.ParseDocuments("uploaded-pvc.yaml", fixture)
		require.NoError(t, err)
		want := fx.DataSources[0]
		assert.Equal(t, want.Metadata.Labels, ds.Metadata.Labels)
		assert.Equal(t, want.Spec.Type, ds.Spec.Type)
		assert.Equal(t, want.Spec.Connections[0].Type, ds.Spec.Connections[0].Type)
		assert.Regexp(t, regexp.MustCompile(`^ds-[0-9a-f]{32}$`), want.Metadata.Name, "the fixture's naming")
	}

	// Without a contact, the uploader is the contact.
	noContact := map[string]any{}
	for k, v := range newUpload {
		noContact[k] = v
	}
	noContact["publisher"] = map[string]any{"organisation": "Org"}
	code, _, body = e.call("rob", "POST", "/api/v1/uploads", mustJSON(t, noContact))
	require.Equal(t, http.StatusCreated, code, "%s", body)
	assert.Equal(t, "rob", e.fake.uploads[1].DataSource.Spec.Publisher.Contact.Name)

	for _, c := range []struct {
		name, user, body string
		status           int
		contains         []string
	}{
		{"everything missing", "rita", `{}`, 400, []string{"project: missing", "workspace: missing", "display_name: missing", "publisher.organisation: missing"}},
		{"bad names", "rita", `{"project":"D4 E6","workspace":"w_1","display_name":"x","publisher":{"organisation":"o"},"policy":"Any Policy"}`, 400, []string{`project "D4 E6"`, `workspace "w_1"`, `policy "Any Policy"`}},
		{"unknown field", "rita", `{"project":"d4e6","requester":"rob"}`, 400, []string{"requester: unknown field"}},
		{"unknown nested field", "rita", `{"project":"d4e6","publisher":{"organisation":"o","url":"x"}}`, 400, []string{"url: unknown field"}},
		{"wrong type", "rita", `{"project":"d4e6","publisher":"Some Organisation"}`, 400, []string{"publisher: expected an object, found string"}},
		{"no upload capability", "mallory", mustJSON(t, newUpload), 403, []string{"upload:d4e6"}},
		{"approver is not uploader", "dana", mustJSON(t, newUpload), 403, []string{"upload:d4e6"}},
	} {
		code, _, body := e.call(c.user, "POST", "/api/v1/uploads", c.body)
		assert.Equal(t, c.status, code, "%s: %s", c.name, body)
		for _, s := range c.contains {
			assert.Contains(t, errorOf(t, body).Message, s, c.name)
		}
	}
	assert.Len(t, e.fake.uploads, 2, "no refused upload was started")
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// tusCreate creates a tus upload as user and returns the answer.
func (e *env) tusCreate(user, requestID, filename string, size int) (int, string, []byte) {
	e.t.Helper()
	code, h, body := e.call(user, "POST", "/api/v1/files/", "",
		"Tus-Resumable", "1.0.0", "Upload-Length", strconv.Itoa(size),
		"Upload-Metadata", "request "+b64(requestID)+",filename "+b64(filename))
	return code, h.Get("Location"), body
}

// tusPatch appends data at offset to the upload at location.
func (e *env) tusPatch(user, location string, offset int, data string) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest("PATCH", location, strings.NewReader(data))
	require.NoError(e.t, err)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", strconv.Itoa(offset))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	if user != "" {
		req.Header.Set("X-Airlock-Dev-User", user)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, body
}

func (e *env) uploadFile(user, requestID, name, data string) string {
	e.t.Helper()
	code, loc, body := e.tusCreate(user, requestID, name, len(data))
	require.Equal(e.t, http.StatusCreated, code, "%s", body)
	code, _, body = e.tusPatch(user, loc, 0, data)
	require.Equal(e.t, http.StatusNoContent, code, "%s", body)
	return loc
}

func TestUploadAndConfirm(t *testing.T) {
	e := newEnv(t)
	id := e.startUpload("rita")

	// Only the requester uploads; others are refused as the API refuses.
	for _, c := range []struct {
		user   string
		status int
		msg    string
	}{
		{"", 401, "not signed in"},
		{"rob", 404, `no request "` + id + `"`},
		{"dana", 404, `no request "` + id + `"`},
		{"petra", 403, "only its requester (rita) uploads"},
	} {
		code, _, body := e.tusCreate(c.user, id, "a.csv", 3)
		assert.Equal(t, c.status, code, "%s: %s", c.user, body)
		assert.Contains(t, errorOf(t, body).Message, c.msg)
	}
	code, _, body := e.tusCreate("rita", "upload-nothing-abc123", "a.csv", 3)
	assert.Equal(t, http.StatusNotFound, code, "%s", body)

	// The files go into staging, in two PATCHes for one of them.
	loc := e.uploadFile("rita", id, "survey/answers.csv", "q,a\n1,yes\n")
	assert.True(t, strings.HasPrefix(loc, e.ts.URL+"/api/v1/files/"+id+"."), loc)
	code, loc2, body := e.tusCreate("rita", id, "notes.txt", 10)
	require.Equal(t, http.StatusCreated, code, "%s", body)
	code, _, body = e.tusPatch("rita", loc2, 0, "hello")
	require.Equal(t, http.StatusNoContent, code, "%s", body)
	// A PATCH by someone else is refused before it reaches the upload.
	code, _, body = e.tusPatch("petra", loc2, 5, "world")
	assert.Equal(t, http.StatusForbidden, code, "%s", body)

	code, _, body = e.call("rita", "GET", "/api/v1/uploads/"+id+"/files", "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	var listed struct {
		Files  []uploads.File     `json:"files"`
		State  model.State        `json:"state"`
		Limits model.UploadLimits `json:"limits"`
	}
	require.NoError(t, json.Unmarshal(body, &listed))
	require.Len(t, listed.Files, 2)
	assert.Equal(t, "notes.txt", listed.Files[0].Path)
	assert.False(t, listed.Files[0].Done)
	assert.Equal(t, int64(5), listed.Files[0].Offset)
	assert.Equal(t, "survey/answers.csv", listed.Files[1].Path)
	assert.True(t, listed.Files[1].Done)
	assert.Equal(t, testLimits, listed.Limits)

	// Confirming with an unfinished file names it.
	code, _, body = e.call("rita", "POST", "/api/v1/uploads/"+id+"/confirm", "")
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, errorOf(t, body).Message, "notes.txt is 50% uploaded")
	_, _, confirms := e.fake.counts()
	assert.Zero(t, confirms)

	code, _, body = e.tusPatch("rita", loc2, 5, "world")
	require.Equal(t, http.StatusNoContent, code, "%s", body)

	for _, c := range []struct {
		user, body string
		status     int
		msg        string
	}{
		{"rita", `{"by":"rob"}`, 400, "by: unknown field"},
		{"rita", `{"files":[]}`, 400, "files: unknown field"},
		{"petra", `{}`, 403, "only its requester (rita), who uploads the files, confirms them"},
		{"mallory", `{}`, 404, `no request "` + id + `"`},
	} {
		code, _, body := e.call(c.user, "POST", "/api/v1/uploads/"+id+"/confirm", c.body)
		assert.Equal(t, c.status, code, "%s %s: %s", c.user, c.body, body)
		assert.Contains(t, errorOf(t, body).Message, c.msg)
	}

	code, _, body = e.call("rita", "POST", "/api/v1/uploads/"+id+"/confirm", `{}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.JSONEq(t, `{"state":"CHECKING"}`, string(body))
	c := e.fake.confirms[len(e.fake.confirms)-1]
	assert.Equal(t, model.UploadConfirmation{By: "rita", Via: "api", Files: []model.ExpectedFile{
		{Path: "notes.txt", Size: 10}, {Path: "survey/answers.csv", Size: 10},
	}}, c)

	// The bytes are in staging under the request's folder.
	rc, err := e.staging.Open(context.Background(), id+"/survey/answers.csv")
	require.NoError(t, err)
	got, _ := io.ReadAll(rc)
	rc.Close()
	assert.Equal(t, "q,a\n1,yes\n", string(got))

	// CHECKING takes no more files and no second confirmation.
	code, _, body = e.tusCreate("rita", id, "late.csv", 1)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, errorOf(t, body).Message, "files are accepted only while it is AWAITING_UPLOAD")
	code, _, body = e.call("rita", "POST", "/api/v1/uploads/"+id+"/confirm", `{}`)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, errorOf(t, body).Message, "is CHECKING")
}

func TestConfirmRefusals(t *testing.T) {
	e := newEnv(t)
	id := e.startUpload("rita")
	code, _, body := e.call("rita", "POST", "/api/v1/uploads/"+id+"/confirm", `{}`)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, errorOf(t, body).Message, "has no uploaded files")

	// An import is not an upload.
	e.fake.put(awaiting("import-a-111111", "rita"))
	code, _, body = e.call("rita", "POST", "/api/v1/uploads/import-a-111111/confirm", `{}`)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, errorOf(t, body).Message, "not an upload")
	code, _, body = e.call("rita", "GET", "/api/v1/uploads/import-a-111111/files", "")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, errorOf(t, body).Message, "not an upload")
	code, _, body = e.tusCreate("rita", "import-a-111111", "a.csv", 1)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, errorOf(t, body).Message, "not an upload")

	// The tus endpoint's own refusals (limits, names) come back as JSON.
	code, _, body = e.tusCreate("rita", id, "big.bin", int(testLimits.MaxFileSize)+1)
	assert.Equal(t, http.StatusRequestEntityTooLarge, code, "%s", body)
	code, _, body = e.tusCreate("rita", id, "../escape.csv", 1)
	assert.Equal(t, http.StatusBadRequest, code, "%s", body)
	assert.Contains(t, errorOf(t, body).Message, "escape.csv")
}

// A browser session must send the CSRF token with API and tus requests
// that change something; bearer and dev-header callers need not.
func TestSessionsNeedTheCSRFToken(t *testing.T) {
	e := newEnv(t)
	e.fake.put(awaiting("import-a-111111", "rita"))
	b := e.signIn("rita")
	code, body := b.do("POST", "/api/v1/requests/import-a-111111/cancel", `{}`, "Content-Type", "application/json")
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, errorOf(t, body).Message, "X-CSRF-Token")
	code, body = b.do("POST", "/api/v1/files/", "", "Tus-Resumable", "1.0.0", "Upload-Length", "1")
	assert.Equal(t, http.StatusForbidden, code, "%s", body)
	_, c, _ := e.fake.counts()
	assert.Zero(t, c)

	_, _, page := b.get("/requests/import-a-111111")
	token := csrf(t, page)
	code, body = b.do("GET", "/api/v1/requests/import-a-111111", "")
	assert.Equal(t, http.StatusOK, code, "reading needs no token: %s", body)
	code, body = b.do("POST", "/api/v1/requests/import-a-111111/cancel", `{}`, "Content-Type", "application/json", "X-CSRF-Token", token)
	assert.Equal(t, http.StatusOK, code, "%s", body)
}
