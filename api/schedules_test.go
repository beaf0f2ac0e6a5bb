package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/testservers"
	"github.com/airlockhq/airlock/workflows"
)

// newScheduleEnv is newEnv whose server manages schedules through the real
// requests service on a Temporal dev server (no worker: a schedule lives
// in the server; its runs are tested in the requests package).
func newScheduleEnv(t *testing.T) *env {
	t.Helper()
	bin, err := testservers.Tool("temporal")
	if err != nil {
		testservers.Unavailable(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin, LogLevel: "error", ExtraArgs: workflows.DevServerSearchAttributeArgs(),
		ClientOptions: &client.Options{Namespace: "default", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))},
		Stdout:        io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		testservers.Unavailable(t, fmt.Errorf("starting the Temporal dev server: %w", err))
	}
	t.Cleanup(func() { _ = srv.Stop() })
	e := newEnv(t)
	e.srv.schedules = &requests.Service{Client: srv.Client(), TaskQueue: "api-test"}
	e.ts.Close()
	e.ts = httptest.NewServer(e.srv.routes())
	t.Cleanup(e.ts.Close)
	return e
}

// schedulesOf lists the ids of the schedules user sees.
func (e *env) schedulesOf(user string) []requests.ScheduleSummary {
	e.t.Helper()
	status, _, body := e.call(user, http.MethodGet, "/api/v1/schedules", "")
	require.Equal(e.t, http.StatusOK, status, "%s", body)
	var res struct {
		Schedules []requests.ScheduleSummary `json:"schedules"`
	}
	require.NoError(e.t, json.Unmarshal(body, &res))
	require.NotNil(e.t, res.Schedules, "the list is [] when empty: %s", body)
	return res.Schedules
}

func TestScheduleEndpoints(t *testing.T) {
	e := newScheduleEnv(t)
	doc := string(repoFile(t, "examples/datasources/sample-file.yaml"))
	const id = "import-sample-clinic-extract"
	const path = "/api/v1/schedules/" + id

	// Refusals before anything is created.
	for _, tc := range []struct {
		user, body string
		status     int
		want       string
	}{
		{"", mustJSON(t, map[string]string{"document": doc, "cron": "@daily"}), http.StatusUnauthorized, "not signed in"},
		{"mallory", mustJSON(t, map[string]string{"document": doc, "cron": "@daily"}), http.StatusForbidden, "mallory may not schedule imports for project d4e6: it needs the capability import:d4e6"},
		{"rita", mustJSON(t, map[string]string{"document": doc}), http.StatusBadRequest, "cron: missing"},
		{"rita", mustJSON(t, map[string]string{"document": doc, "cron": "0 2 *"}), http.StatusBadRequest, `cron "0 2 *": 3 fields`},
		{"rita", mustJSON(t, map[string]string{"document": doc, "cron": "0 25 * * *"}), http.StatusBadRequest, "not a schedule Temporal accepts"},
		{"rita", mustJSON(t, map[string]string{"document": doc, "cron": "@daily", "id": "Nightly"}), http.StatusBadRequest, `id "Nightly": not a schedule id`},
		{"rita", mustJSON(t, map[string]string{"cron": "@daily"}), http.StatusBadRequest, "document: missing"},
		{"rita", `{"document": "x", "cron": "@daily", "by": "ian"}`, http.StatusBadRequest, "by: unknown field"},
	} {
		status, _, body := e.call(tc.user, http.MethodPost, "/api/v1/schedules", tc.body)
		assert.Equal(t, tc.status, status, "%s", body)
		assert.Contains(t, errorOf(t, body).Message, tc.want)
	}

	status, _, body := e.call("rita", http.MethodPost, "/api/v1/schedules", mustJSON(t, map[string]string{"document": doc, "cron": "0 2 * * *", "note": "nightly extract"}))
	require.Equal(t, http.StatusCreated, status, "%s", body)
	assert.JSONEq(t, `{"id":"`+id+`"}`, string(body))
	status, _, body = e.call("rob", http.MethodPost, "/api/v1/schedules", mustJSON(t, map[string]string{"document": doc, "cron": "@daily"}))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, errorOf(t, body).Message, `id "`+id+`": a schedule with this id exists`)

	// Listing reads the visibility store: wait for the schedule.
	var listed []requests.ScheduleSummary
	deadline := time.Now().Add(20 * time.Second)
	for len(listed) == 0 && time.Now().Before(deadline) {
		listed = e.schedulesOf("rita")
		time.Sleep(100 * time.Millisecond)
	}
	require.Len(t, listed, 1)
	sc := listed[0]
	assert.Equal(t, id, sc.ID)
	assert.Equal(t, "0 2 * * *", sc.Cron)
	assert.Equal(t, "rita", sc.Requester, "the signed-in caller asks for the imports")
	assert.Equal(t, "api", sc.CreatedVia)
	assert.Equal(t, "d4e6", sc.Project)
	assert.Equal(t, "advanced-generic-workspace", sc.Workspace, "the binding in the document names the workspace")
	assert.Equal(t, "nightly extract", sc.Note)
	assert.NotEmpty(t, sc.NextRuns)
	assert.Len(t, e.schedulesOf("petra"), 1, "read:d4e6 sees the project's schedules")
	assert.Empty(t, e.schedulesOf("dana"), "no capability for d4e6: no schedules")
	status, _, _ = e.call("", http.MethodGet, "/api/v1/schedules", "")
	assert.Equal(t, http.StatusUnauthorized, status)

	status, _, body = e.call("rob", http.MethodGet, path, "")
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.NoError(t, json.Unmarshal(body, &sc))
	assert.Equal(t, id, sc.ID)
	status, _, body = e.call("dana", http.MethodGet, path, "")
	assert.Equal(t, http.StatusNotFound, status, "a schedule dana may not see is missing to her")
	assert.Equal(t, `no import schedule "`+id+`": check the id (GET /api/v1/schedules lists the schedules you can see)`, errorOf(t, body).Message)

	// Pause and unpause: import:d4e6 manages, read:d4e6 only sees.
	status, _, body = e.call("petra", http.MethodPost, path+"/pause", "")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, errorOf(t, body).Message, "petra may not pause schedule "+id+": it needs the capability import:d4e6")
	status, _, _ = e.call("dana", http.MethodPost, path+"/pause", "")
	assert.Equal(t, http.StatusNotFound, status)
	status, _, body = e.call("rob", http.MethodPost, path+"/pause", `{"note": "source under maintenance"}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	assert.JSONEq(t, `{"id":"`+id+`","paused":true}`, string(body))
	status, _, body = e.call("rita", http.MethodPost, path+"/pause", "")
	assert.Equal(t, http.StatusConflict, status)
	assert.Equal(t, "schedule "+id+" is already paused (paused by rob: source under maintenance)", errorOf(t, body).Message)
	status, _, body = e.call("rob", http.MethodGet, path, "")
	require.Equal(t, http.StatusOK, status)
	require.NoError(t, json.Unmarshal(body, &sc))
	assert.True(t, sc.Paused)
	assert.Equal(t, "paused by rob: source under maintenance", sc.Note)
	assert.Empty(t, sc.NextRuns)
	status, _, body = e.call("rita", http.MethodPost, path+"/unpause", "")
	require.Equal(t, http.StatusOK, status, "%s", body)
	status, _, body = e.call("rita", http.MethodPost, path+"/unpause", "")
	assert.Equal(t, http.StatusConflict, status)
	assert.Equal(t, "schedule "+id+" is not paused", errorOf(t, body).Message)
	status, _, body = e.call("rita", http.MethodPost, path+"/pause", `{"reason": "x"}`)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, errorOf(t, body).Message, "reason: unknown field (this endpoint takes note)")

	status, _, body = e.call("rita", http.MethodPut, path, "")
	assert.Equal(t, http.StatusMethodNotAllowed, status, "%s", body)

	// Delete.
	status, _, _ = e.call("petra", http.MethodDelete, path, "")
	assert.Equal(t, http.StatusForbidden, status)
	status, _, body = e.call("rita", http.MethodDelete, path, "")
	require.Equal(t, http.StatusOK, status, "%s", body)
	assert.JSONEq(t, `{"id":"`+id+`","deleted":true}`, string(body))
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		status, _, _ = e.call("rita", m, path, "")
		assert.Equal(t, http.StatusNotFound, status, "%s after delete", m)
	}
	status, _, _ = e.call("rita", http.MethodPost, path+"/pause", "")
	assert.Equal(t, http.StatusNotFound, status)
}

// A server without a schedule service has no schedule routes.
func TestNoScheduleRoutesWithoutTheService(t *testing.T) {
	e := newEnv(t)
	status, _, body := e.call("rita", http.MethodGet, "/api/v1/schedules", "")
	assert.Equal(t, http.StatusNotFound, status)
	assert.Contains(t, errorOf(t, body).Message, "no API route GET /api/v1/schedules")
}
