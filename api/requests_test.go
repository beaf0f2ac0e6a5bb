package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/workflows"
)

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t)
	code, _, body := e.call("", "GET", "/healthz", "")
	assert.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"status":"ok"}`, string(body))

	code, _, body = e.call("", "GET", "/readyz", "")
	assert.Equal(t, http.StatusOK, code, "%s", body)
	assert.Contains(t, string(body), `"ready"`)

	e.ready = errors.New("connection refused")
	code, _, body = e.call("", "GET", "/readyz", "")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, string(body), "connection refused")
	assert.Contains(t, string(body), "TEMPORAL_ADDRESS")
}

// Every route answers an anonymous caller 401 with a Bearer challenge, and
// so does a caller naming a user who is not in the directory.
func TestAnonymousIs401(t *testing.T) {
	e := newEnv(t)
	e.fake.put(awaiting("import-a-111111", "rita"))
	routes := []struct{ method, path, body string }{
		{"GET", "/api/v1/requests", ""},
		{"GET", "/api/v1/requests/import-a-111111", ""},
		{"POST", "/api/v1/requests/import-a-111111/decisions", `{"stage":"review","decision":"approve"}`},
		{"POST", "/api/v1/requests/import-a-111111/cancel", `{}`},
		{"GET", "/api/v1/requests/import-a-111111/crate", ""},
		{"GET", "/api/v1/requests/import-a-111111/preview?path=a.csv", ""},
		{"POST", "/api/v1/imports", `{"document":"x"}`},
		{"POST", "/api/v1/uploads", `{}`},
		{"GET", "/api/v1/uploads/import-a-111111/files", ""},
		{"POST", "/api/v1/uploads/import-a-111111/confirm", `{}`},
		{"GET", "/api/v1/me", ""},
	}
	for _, user := range []string{"", "nobody"} {
		for _, r := range routes {
			code, h, body := e.call(user, r.method, r.path, r.body)
			assert.Equal(t, http.StatusUnauthorized, code, "%s %s as %q", r.method, r.path, user)
			assert.Equal(t, `Bearer realm="airlock"`, h.Get("WWW-Authenticate"))
			assert.Equal(t, 401, errorOf(t, body).Status)
			assert.Contains(t, errorOf(t, body).Message, "Authorization: Bearer")
		}
	}
	d, c, _ := e.fake.counts()
	assert.Zero(t, d+c, "nothing reached the workflows")
}

func TestGetRequest(t *testing.T) {
	e := newEnv(t)
	st := awaiting("import-a-111111", "rita")
	e.fake.put(st)

	for _, user := range []string{"rita", "petra", "dana", "ian"} {
		code, _, body := e.call(user, "GET", "/api/v1/requests/import-a-111111", "")
		require.Equal(t, http.StatusOK, code, "%s: %s", user, body)
		var got model.RequestStatus
		require.NoError(t, json.Unmarshal(body, &got))
		assert.Equal(t, st.ID, got.ID)
		assert.Equal(t, st.ManifestDigest, got.ManifestDigest)
		assert.Len(t, got.Files, len(st.Files))
	}

	// Someone who may not read it gets exactly what a missing request gives.
	for _, user := range []string{"mallory", "rob"} {
		code, h1, hidden := e.call(user, "GET", "/api/v1/requests/import-a-111111", "")
		assert.Equal(t, http.StatusNotFound, code)
		code2, h2, missing := e.call(user, "GET", "/api/v1/requests/import-b-222222", "")
		assert.Equal(t, http.StatusNotFound, code2)
		assert.Equal(t, strings.ReplaceAll(string(missing), "import-b-222222", "import-a-111111"), string(hidden))
		assert.Equal(t, h2.Get("Content-Type"), h1.Get("Content-Type"))
		assert.Contains(t, errorOf(t, hidden).Message, `no request "import-a-111111"`)
	}

	code, _, body := e.call("rita", "GET", "/api/v1/requests/import-a-111111?verbose=1", "")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, errorOf(t, body).Message, "verbose: unknown query parameter")
}

func TestListRequests(t *testing.T) {
	e := newEnv(t)
	e.fake.put(awaiting("import-a-111111", "rita"))
	e.fake.put(awaiting("import-b-222222", "rob"))
	other := awaiting("import-c-333333", "rob")
	other.Project = "x9"
	e.fake.put(other)
	done := awaiting("import-d-444444", "rita")
	done.State = model.StateCompleted
	done.Stages[0].State = model.StageApproved
	e.fake.put(done)

	ids := func(user, query string) []string {
		t.Helper()
		code, _, body := e.call(user, "GET", "/api/v1/requests"+query, "")
		require.Equal(t, http.StatusOK, code, "%s", body)
		var page requests.Page
		require.NoError(t, json.Unmarshal(body, &page))
		require.NotNil(t, page.Requests, "requests is [] rather than null: %s", body)
		var out []string
		for _, r := range page.Requests {
			out = append(out, r.ID)
		}
		return out
	}
	// Own requests only: listed by requester, so pages are not emptied.
	assert.ElementsMatch(t, []string{"import-a-111111", "import-d-444444"}, ids("rita", ""))
	assert.Equal(t, "rita", e.fake.lists[len(e.fake.lists)-1].Requester)
	// A project reader sees the project's requests; an approver those
	// waiting on their role, whatever the project.
	assert.ElementsMatch(t, []string{"import-a-111111", "import-b-222222", "import-d-444444"}, ids("petra", ""))
	assert.ElementsMatch(t, []string{"import-a-111111", "import-b-222222", "import-c-333333"}, ids("dana", ""))
	assert.Empty(t, ids("ian", ""), "nothing waits on information-governance yet")
	assert.Empty(t, ids("mallory", ""))

	assert.ElementsMatch(t, []string{"import-d-444444"}, ids("petra", "?state=completed"))
	assert.ElementsMatch(t, []string{"import-b-222222"}, ids("rob", "?mine=true&project=d4e6"))
	assert.ElementsMatch(t, []string{"import-a-111111", "import-b-222222", "import-c-333333"}, ids("dana", "?awaiting_role=data-engineer&kind=import&page_size=10"))

	for _, c := range []struct{ query, field string }{
		{"?state=WAITING", `state "WAITING": unknown state`},
		{"?kind=export", `kind "export": unknown kind`},
		{"?mine=sure", `mine "sure": expected true or false`},
		{"?page_size=lots", `page_size "lots"`},
		{"?page_size=5000", `page_size "5000"`},
		{"?awaiting_role=a'b", `awaiting_role "a'b"`},
		{"?sort=asc", "sort: unknown query parameter"},
	} {
		code, _, body := e.call("petra", "GET", "/api/v1/requests"+c.query, "")
		assert.Equal(t, http.StatusBadRequest, code, c.query)
		assert.Contains(t, errorOf(t, body).Message, c.field, c.query)
	}
}

func TestDecide(t *testing.T) {
	e := newEnv(t)
	st := awaiting("import-a-111111", "rita")
	e.fake.put(st)
	url := "/api/v1/requests/import-a-111111/decisions"
	approve := mustJSON(t, map[string]string{"stage": "review", "decision": "approve", "comment": "checked", "manifest_digest": st.ManifestDigest})

	t.Run("refusals before the workflow", func(t *testing.T) {
		for _, c := range []struct {
			name, user, body, ct string
			status               int
			contains             []string
		}{
			{"by is refused", "dana", `{"stage":"review","decision":"approve","by":"ian","manifest_digest":"x"}`, "", 400, []string{"by: unknown field", "signed-in caller"}},
			{"unknown field", "dana", `{"stage":"review","verdict":"yes"}`, "", 400, []string{"verdict: unknown field", "stage, decision, comment, manifest_digest"}},
			{"wrong type", "dana", `{"stage":5}`, "", 400, []string{"stage: expected a string, found number"}},
			{"not JSON", "dana", `{"stage":`, "", 400, []string{"body:"}},
			{"two objects", "dana", `{"stage":"review"}{}`, "", 400, []string{"one JSON object"}},
			{"empty", "dana", ``, "application/json", 400, []string{"body: empty"}},
			{"not an object", "dana", `["approve"]`, "", 400, []string{"expected a JSON object"}},
			{"form body", "dana", `stage=review`, "application/x-www-form-urlencoded", 415, []string{"application/json"}},
			{"missing stage", "dana", `{"decision":"approve","manifest_digest":"x"}`, "", 400, []string{"stage: missing", "review, governance"}},
			{"cannot read it", "mallory", approve, "", 404, []string{`no request "import-a-111111"`}},
			{"reader without the capability", "petra", approve, "", 403, []string{"approve:data-engineer"}},
			{"requester without the capability", "rita", approve, "", 403, []string{"approve:data-engineer"}},
		} {
			headers := []string{}
			if c.ct != "" {
				headers = []string{"Content-Type", c.ct}
			}
			code, _, body := e.call(c.user, "POST", url, c.body, headers...)
			assert.Equal(t, c.status, code, "%s: %s", c.name, body)
			msg := errorOf(t, body).Message
			for _, s := range c.contains {
				assert.Contains(t, msg, s, c.name)
			}
		}
		d, _, _ := e.fake.counts()
		assert.Zero(t, d, "no refused call reached the workflow")
	})

	t.Run("the workflow's refusal passes through as 409", func(t *testing.T) {
		wrong := mustJSON(t, map[string]string{"stage": "review", "decision": "approve", "manifest_digest": "sha256:0000"})
		code, _, body := e.call("dana", "POST", url, wrong)
		assert.Equal(t, http.StatusConflict, code)
		want := e.fake.get(st.ID)
		reason := want.CheckDecision(model.DecisionRequest{Stage: "review", By: "dana", Decision: "approve", ManifestDigest: "sha256:0000"}, e.fake.dir).Error()
		assert.Equal(t, reason, errorOf(t, body).Message)
		assert.Contains(t, reason, "does not match this request's files")

		rejectNoComment := mustJSON(t, map[string]string{"stage": "review", "decision": "reject", "manifest_digest": st.ManifestDigest})
		code, _, body = e.call("dana", "POST", url, rejectNoComment)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, errorOf(t, body).Message, "a rejection needs a comment")

		early := mustJSON(t, map[string]string{"stage": "governance", "decision": "approve", "manifest_digest": st.ManifestDigest})
		code, _, body = e.call("ian", "POST", url, early)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, errorOf(t, body).Message, `waiting on stage "review"`)

		own := awaiting("import-e-555555", "dave")
		e.fake.put(own)
		code, _, body = e.call("dave", "POST", "/api/v1/requests/import-e-555555/decisions", approve)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, errorOf(t, body).Message, "requester never approves")
	})

	t.Run("an accepted decision is the caller's", func(t *testing.T) {
		code, _, body := e.call("dana", "POST", url, approve)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var res workflows.DecisionResult
		require.NoError(t, json.Unmarshal(body, &res))
		assert.Equal(t, workflows.DecisionResult{Stage: "review", StageState: model.StageApproved, Approvals: 1, Required: 1, State: model.StateAwaitingApproval}, res)
		d := e.fake.lastDecision()
		assert.Equal(t, "dana", d.By)
		assert.Equal(t, "api", d.Via)
		assert.Equal(t, []string{"data-engineer"}, d.Roles)
		assert.Equal(t, "checked", d.Comment)
		assert.Equal(t, model.StageWaiting, e.fake.get(st.ID).Stages[1].State)

		// dana already decided: the workflow says so.
		code, _, body = e.call("dana", "POST", url, approve)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, errorOf(t, body).Message, "is approved")
	})

	code, _, body := e.call("dana", "POST", "/api/v1/requests/import-zz-999999/decisions", approve)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, errorOf(t, body).Message, `no request "import-zz-999999"`)
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	e.fake.put(awaiting("import-a-111111", "rita"))
	e.fake.put(awaiting("import-b-222222", "rob"))
	url := "/api/v1/requests/import-a-111111/cancel"

	code, _, body := e.call("mallory", "POST", url, `{}`)
	assert.Equal(t, http.StatusNotFound, code)
	code, _, body = e.call("petra", "POST", url, `{"reason":"no"}`)
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, errorOf(t, body).Message, "only its requester (rita)")
	code, _, body = e.call("rita", "POST", url, `{"reason":"x","by":"rob"}`)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, errorOf(t, body).Message, "by: unknown field")
	_, c, _ := e.fake.counts()
	assert.Zero(t, c)

	// An approver of one of its stages may cancel someone else's request.
	code, _, body = e.call("ian", "POST", "/api/v1/requests/import-b-222222/cancel", `{"reason":"wrong project"}`)
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Equal(t, "ian", e.fake.get("import-b-222222").CancelledBy)

	// No body at all is a cancellation without a reason.
	code, _, body = e.call("rita", "POST", url, "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.JSONEq(t, `{"state":"CANCELLED"}`, string(body))
	got := e.fake.cancels[len(e.fake.cancels)-1]
	assert.Equal(t, model.CancelRequest{By: "rita", Via: "api", Roles: nil}, got)

	code, _, body = e.call("rita", "POST", url, `{"reason":"again"}`)
	assert.Equal(t, http.StatusConflict, code)
	assert.Contains(t, errorOf(t, body).Message, "has already ended CANCELLED")
}

func TestMethodAndRouteErrorsAreJSON(t *testing.T) {
	e := newEnv(t)
	code, h, body := e.call("rita", "DELETE", "/api/v1/requests/import-a-111111", "")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Equal(t, "GET", h.Get("Allow"))
	assert.Contains(t, errorOf(t, body).Message, "this route takes GET")

	code, _, body = e.call("rita", "GET", "/api/v1/requests/import-a-111111/decisions", "")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
	assert.Contains(t, errorOf(t, body).Message, "POST")

	code, _, body = e.call("rita", "GET", "/api/v1/nothing-here", "")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, errorOf(t, body).Message, "no API route GET /api/v1/nothing-here")
}

func TestMe(t *testing.T) {
	e := newEnv(t)
	code, _, body := e.call("dana", "GET", "/api/v1/me", "")
	require.Equal(t, http.StatusOK, code)
	var me struct {
		Username     string   `json:"username"`
		Capabilities []string `json:"capabilities"`
	}
	require.NoError(t, json.Unmarshal(body, &me))
	assert.Equal(t, "dana", me.Username)
	assert.Equal(t, []string{"approve:data-engineer", "read:own"}, me.Capabilities)
}
