package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/config"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/workflows"
)

// The egress side of the in-memory requests fake: it applies the model's
// egress rules (CheckReview, CheckResubmission, CheckWithdrawal,
// CheckRevocation) as the EgressWorkflow does, so refusals carry the
// workflow's reasons, and records what the routes sent.

// egressLog is what the egress routes sent to one fake.
type egressLog struct {
	starts      []requests.EgressStart
	reviews     []model.EgressReview
	resubmits   []model.Resubmission
	withdrawals []model.Withdrawal
	revocations []model.Revocation
	// inRound are each request's reviews of its open stage in this turn.
	inRound map[string][]model.EgressReviewRecord
}

var egressLogs sync.Map // *fakeRequests -> *egressLog

// egress returns the fake's egress log; call with f.mu held.
func (f *fakeRequests) egress() *egressLog {
	l, _ := egressLogs.LoadOrStore(f, &egressLog{inRound: map[string][]model.EgressReviewRecord{}})
	return l.(*egressLog)
}

// sent returns a copy of what the egress routes sent to the fake.
func (f *fakeRequests) sent() egressLog {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := *f.egress()
	l.inRound = nil
	return l
}

// egressCalls counts what reached the fake's egress operations.
func (f *fakeRequests) egressCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.egress()
	return len(l.starts) + len(l.reviews) + len(l.resubmits) + len(l.withdrawals) + len(l.revocations)
}

func (f *fakeRequests) StartEgress(ctx context.Context, in requests.EgressStart) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := requests.CheckEgressStart(in); err != nil {
		return "", err
	}
	f.egress().starts = append(f.egress().starts, in)
	id := in.ID
	if id == "" {
		id = requests.NewRequestID(model.KindEgress, in.Input.Workspace)
	}
	e := in.Input
	f.reqs[id] = &model.RequestStatus{
		ID: id, Kind: model.KindEgress, State: model.StateChecking, DisplayName: "Egress to " + e.Destination,
		Project: e.Project, Workspace: e.Workspace, Requester: in.Requester, Via: in.Via,
		Stages: []model.StageStatus{}, Files: []model.FileRecord{}, CreatedAt: f.tick(),
		Egress: &model.EgressStatus{Destination: e.Destination, Justification: e.Justification, Paths: e.Files,
			Files: []model.EgressFile{}, Turns: []model.EgressTurn{}, Reviews: []model.EgressReviewRecord{}},
	}
	return id, nil
}

func (f *fakeRequests) Review(ctx context.Context, id string, rv model.EgressReview) (workflows.ReviewResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.reqs[id]
	if !ok {
		return workflows.ReviewResult{}, requests.ErrNotFound
	}
	log := f.egress()
	log.reviews = append(log.reviews, rv)
	if err := st.CheckReview(rv, f.dir, log.inRound[id]); err != nil {
		return workflows.ReviewResult{}, &requests.RefusedError{Reason: err.Error()}
	}
	e := st.Egress
	cur := st.CurrentStage()
	stage := &st.Stages[cur]
	rec := model.EgressReviewRecord{Stage: stage.Name, By: rv.By, Turn: rv.Turn, At: f.tick(), Files: rv.Files,
		Comment: rv.Comment, ManifestDigest: rv.ManifestDigest, Via: rv.Via}
	log.inRound[id] = append(log.inRound[id], rec)
	round := log.inRound[id]
	e.ReviewsIn = len(round)
	res := workflows.ReviewResult{Turn: rv.Turn, ReviewsIn: e.ReviewsIn, ReviewsNeeded: e.ReviewsNeeded, State: st.State}
	if len(round) < stage.Required {
		return res, nil // independent: nothing is revealed yet
	}
	// The round is complete: reveal it and settle the open files.
	e.Reviews = append(e.Reviews, round...)
	delete(log.inRound, id)
	changes := false
	for _, p := range e.OpenFiles() {
		file, _ := e.File(p)
		file.Verdict = model.CombineVerdicts(round, p)
		changes = changes || file.Verdict == model.VerdictRequestChanges
	}
	if changes {
		stage.State, st.State = model.StageReturned, model.StateReturned
	} else {
		stage.State, st.State = model.StageApproved, model.StateReleasing
	}
	res.State, res.Files = st.State, append([]model.EgressFile(nil), e.Files...)
	return res, nil
}

func (f *fakeRequests) Resubmit(ctx context.Context, id string, r model.Resubmission) (workflows.ResubmitResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.reqs[id]
	if !ok {
		return workflows.ResubmitResult{}, requests.ErrNotFound
	}
	f.egress().resubmits = append(f.egress().resubmits, r)
	if err := st.CheckResubmission(r); err != nil {
		return workflows.ResubmitResult{}, &requests.RefusedError{Reason: err.Error()}
	}
	st.Egress.Turn++
	st.State = model.StateChecking
	return workflows.ResubmitResult{Turn: st.Egress.Turn, State: st.State}, nil
}

func (f *fakeRequests) Withdraw(ctx context.Context, id string, w model.Withdrawal) (workflows.WithdrawResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.reqs[id]
	if !ok {
		return workflows.WithdrawResult{}, requests.ErrNotFound
	}
	f.egress().withdrawals = append(f.egress().withdrawals, w)
	if err := st.CheckWithdrawal(w); err != nil {
		return workflows.WithdrawResult{}, &requests.RefusedError{Reason: err.Error()}
	}
	st.State, st.Egress.Withdrawn = model.StateWithdrawn, &w
	return workflows.WithdrawResult{State: st.State}, nil
}

func (f *fakeRequests) Revoke(ctx context.Context, id string, v model.Revocation) (workflows.RevokeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.reqs[id]
	if !ok {
		return workflows.RevokeResult{}, requests.ErrNotFound
	}
	f.egress().revocations = append(f.egress().revocations, v)
	if err := st.CheckRevocation(v, f.dir); err != nil {
		return workflows.RevokeResult{}, &requests.RefusedError{Reason: err.Error()}
	}
	rec := model.RevocationRecord{By: v.By, Reason: v.Reason, Via: v.Via, At: f.tick(), Removed: st.Egress.Release.Files + 3}
	st.State, st.Egress.Revocation = model.StateRevoked, &rec
	return workflows.RevokeResult{State: st.State, Revocation: rec}, nil
}

// The egress test directory adds two output checkers and a researcher who
// may ask for egress from project d4e6.
var (
	egressUsers = map[string][]string{"olga": {"output-checker"}, "oscar": {"output-checker"}}
	egressGrant = []auth.Grant{
		{Role: "researcher", Capabilities: []string{"egress:d4e6"}},
		{Role: "output-checker", Capabilities: []string{"approve:output-checker"}},
	}
	testDestinations = []egressDestination{
		{Name: "partner-outbox", Description: "The partner's SFTP outbox", Revocable: true},
		{Name: "journal-archive", Description: "Write-once archive for journals", Revocable: false},
	}
)

const signingKeyName = "airlock-egress-signing-key"

// newEgressEnv is newEnv with the egress directory and grants, the test
// destinations, and a signing key in a secrets folder.
func newEgressEnv(t *testing.T) (*env, ed25519.PublicKey) {
	t.Helper()
	users := maps.Clone(testUsers)
	maps.Copy(users, egressUsers)
	authn, err := auth.New(context.Background(), auth.Config{Mode: auth.ModeDev, Grants: append(append([]auth.Grant(nil), testGrants...), egressGrant...)},
		auth.Options{DevUsers: users, ListenAddr: "127.0.0.1:8080", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	e := newEnvWith(t, authn)
	e.fake.dir.Members["output-checker"] = []string{"olga", "oscar"}

	dir := t.TempDir()
	priv, _, err := releasemanifest.GenerateKey()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, signingKeyName), priv, 0o600))
	key, err := releasemanifest.ParsePrivateKey(priv)
	require.NoError(t, err)
	e.srv.egress = egressSettings{
		Destinations: testDestinations,
		PublicKey:    signingPublicKey(&secrets.Provider{Dir: dir, NoEnv: true}, signingKeyName),
	}
	return e, key.Public().(ed25519.PublicKey)
}

// awaitingReview is an egress by rita of two files, in turn 1, waiting on
// its output-checking stage (two independent checkers).
func awaitingReview(id string) model.RequestStatus {
	files := []model.FileRecord{
		{Path: "results/figure1.png", Size: 10, SHA256: strings.Repeat("d", 64)},
		{Path: "results/table1.csv", Size: 20, SHA256: strings.Repeat("e", 64)},
	}
	st := model.RequestStatus{
		ID: id, Kind: model.KindEgress, State: model.StateAwaitingApproval, DisplayName: "Egress to partner-outbox",
		Project: "d4e6", Workspace: "advanced-generic-workspace", Requester: "rita", Via: "cli", Policy: "egress-standard@1",
		Stages: model.NewStages(model.Policy{Stages: []model.Stage{{Name: "output-checking", Role: "output-checker", Approvals: 2, Independent: true}}}),
		Files:  files,
		Egress: &model.EgressStatus{Destination: "partner-outbox", Justification: "Tables for the paper",
			Paths: []string{"results/figure1.png", "results/table1.csv"}, Turn: 1, ReviewsNeeded: 2,
			Turns:   []model.EgressTurn{{Turn: 1, By: "rita", Changed: []string{"results/figure1.png", "results/table1.csv"}}},
			Reviews: []model.EgressReviewRecord{}},
	}
	for _, f := range files {
		st.Egress.Files = append(st.Egress.Files, model.EgressFile{FileRecord: f, Turn: 1, Verdict: model.VerdictPending})
	}
	st.Stages[0].State = model.StageWaiting
	st.ManifestDigest = model.ManifestDigest(files)
	return st
}

func TestEgressRoutesNeedSignIn(t *testing.T) {
	e, _ := newEgressEnv(t)
	e.fake.put(awaitingReview("egress-ws-111111"))
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/api/v1/egress", `{}`},
		{"GET", "/api/v1/egress/destinations", ""},
		{"GET", "/api/v1/egress/public-key", ""},
		{"POST", "/api/v1/requests/egress-ws-111111/reviews", `{}`},
		{"POST", "/api/v1/requests/egress-ws-111111/resubmit", `{}`},
		{"POST", "/api/v1/requests/egress-ws-111111/withdraw", `{}`},
		{"POST", "/api/v1/requests/egress-ws-111111/revoke", `{"reason":"x"}`},
	} {
		for _, user := range []string{"", "nobody"} {
			code, h, body := e.call(user, r.method, r.path, r.body)
			assert.Equal(t, http.StatusUnauthorized, code, "%s %s as %q", r.method, r.path, user)
			assert.Equal(t, `Bearer realm="airlock"`, h.Get("WWW-Authenticate"))
			assert.Contains(t, errorOf(t, body).Message, "Authorization: Bearer")
		}
	}
	assert.Zero(t, e.fake.egressCalls())
}

func TestCreateEgress(t *testing.T) {
	e, _ := newEgressEnv(t)
	good := map[string]any{
		"workspace": "advanced-generic-workspace", "project": "d4e6", "destination": "partner-outbox",
		"files": []string{"results/table1.csv", "results/figure1.png"}, "justification": "Aggregate tables for the paper",
	}
	with := func(k string, v any) string {
		m := maps.Clone(good)
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return mustJSON(t, m)
	}

	for _, c := range []struct {
		name, user, body string
		status           int
		contains         []string
	}{
		{"requester is the caller", "rita", with("requester", "rob"), 400, []string{"requester: unknown field", "workspace, project, destination, files, justification, policy, id"}},
		{"no workspace", "rita", with("workspace", nil), 400, []string{"workspace: missing"}},
		{"bad workspace", "rita", with("workspace", "WS 1"), 400, []string{"workspace", "invalid workspace"}},
		{"no project", "rita", with("project", nil), 400, []string{"project: missing"}},
		{"no destination", "rita", with("destination", nil), 400, []string{"destination: missing", "/api/v1/egress/destinations"}},
		{"no files", "rita", with("files", []string{}), 400, []string{"files: missing"}},
		{"files not a list", "rita", with("files", "a.csv"), 400, []string{"files: expected an array"}},
		{"escaping path", "rita", with("files", []string{"../secrets.txt"}), 400, []string{"files[0]", "escapes its root"}},
		{"unclean path", "rita", with("files", []string{"results//table1.csv"}), 400, []string{"files[0]", `send it as "results/table1.csv"`}},
		{"duplicate path", "rita", with("files", []string{"a.csv", "a.csv"}), 400, []string{"files[1]", "listed twice"}},
		{"reserved path", "rita", with("files", []string{model.CrateFileName}), 400, []string{"files[0]", "Airlock writes its own"}},
		{"no justification", "rita", with("justification", "  "), 400, []string{"justification: missing"}},
		{"bad policy", "rita", with("policy", "Two Checkers"), 400, []string{`policy "Two Checkers"`}},
		{"bad id", "rita", with("id", "Egress/1"), 400, []string{`id "Egress/1"`}},
		{"no capability", "rob", with("project", "x9"), 403, []string{"rob may not ask for egress from project x9", "egress:x9"}},
		{"approver without the capability", "olga", with("policy", nil), 403, []string{"egress:d4e6"}},
		{"unknown destination", "rita", with("destination", "my-laptop"), 400, []string{`destination "my-laptop"`, "partner-outbox, journal-archive"}},
	} {
		code, _, body := e.call(c.user, "POST", "/api/v1/egress", c.body)
		assert.Equal(t, c.status, code, "%s: %s", c.name, body)
		msg := errorOf(t, body).Message
		for _, s := range c.contains {
			assert.Contains(t, msg, s, c.name)
		}
	}
	assert.Zero(t, e.fake.egressCalls(), "no refused call reached the workflows")

	code, _, body := e.call("rita", "POST", "/api/v1/egress", with("policy", "egress-standard"))
	require.Equal(t, http.StatusCreated, code, "%s", body)
	var created map[string]string
	require.NoError(t, json.Unmarshal(body, &created))
	assert.Equal(t, "CHECKING", created["state"])
	assert.True(t, strings.HasPrefix(created["id"], "egress-advanced-generic-workspace-"), created["id"])
	start := e.fake.sent().starts[0]
	assert.Equal(t, "rita", start.Requester)
	assert.Equal(t, "api", start.Via)
	assert.Equal(t, "egress-standard", start.Policy)
	assert.Equal(t, []string{"results/table1.csv", "results/figure1.png"}, start.Input.Files)

	// The request is rita's to read, and the project's readers'.
	code, _, body = e.call("rita", "GET", "/api/v1/requests/"+created["id"], "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	var st model.RequestStatus
	require.NoError(t, json.Unmarshal(body, &st))
	assert.Equal(t, model.KindEgress, st.Kind)
	assert.Equal(t, "partner-outbox", st.Egress.Destination)

	// A caller-chosen id is used as it is.
	code, _, body = e.call("rita", "POST", "/api/v1/egress", with("id", "egress-paper-tables-1"))
	require.Equal(t, http.StatusCreated, code, "%s", body)
	assert.Contains(t, string(body), `"egress-paper-tables-1"`)
}

func TestEgressDestinationsAndPublicKey(t *testing.T) {
	e, pub := newEgressEnv(t)
	code, _, body := e.call("rob", "GET", "/api/v1/egress/destinations", "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.JSONEq(t, `{"destinations":[
		{"name":"partner-outbox","description":"The partner's SFTP outbox","revocable":true},
		{"name":"journal-archive","description":"Write-once archive for journals","revocable":false}]}`, string(body))
	code, _, body = e.call("rob", "GET", "/api/v1/egress/destinations?all=1", "")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, errorOf(t, body).Message, "all: unknown query parameter")

	code, h, body := e.call("mallory", "GET", "/api/v1/egress/public-key", "")
	require.Equal(t, http.StatusOK, code, "%s", body)
	assert.Equal(t, "application/x-pem-file", h.Get("Content-Type"))
	got, err := releasemanifest.ParsePublicKey(body)
	require.NoError(t, err, "%s", body)
	assert.True(t, pub.Equal(got), "the served key is the signing key's public half")
	assert.Equal(t, releasemanifest.KeyID(pub), h.Get(keyIDHeader))
	assert.NotContains(t, string(body), "PRIVATE")

	// A missing key answers 503 naming the secret, and no key at all 404.
	e.srv.egress.PublicKey = signingPublicKey(&secrets.Provider{Dir: t.TempDir(), NoEnv: true}, signingKeyName)
	code, _, body = e.call("rob", "GET", "/api/v1/egress/public-key", "")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, errorOf(t, body).Message, `egress.signingKey: secret "airlock-egress-signing-key" not found`)
	e.srv.egress.PublicKey = nil
	code, _, body = e.call("rob", "GET", "/api/v1/egress/public-key", "")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, errorOf(t, body).Message, "egress.signingKey")

	// Without destinations nothing can be asked for, and the list is empty.
	e.srv.egress.Destinations = nil
	code, _, body = e.call("rob", "GET", "/api/v1/egress/destinations", "")
	require.Equal(t, http.StatusOK, code)
	assert.JSONEq(t, `{"destinations":[]}`, string(body))
	code, _, body = e.call("rita", "POST", "/api/v1/egress", mustJSON(t, map[string]any{
		"workspace": "ws", "project": "d4e6", "destination": "partner-outbox", "files": []string{"a.csv"}, "justification": "j"}))
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, errorOf(t, body).Message, "agrees no egress destinations (egress.destinations)")
}

func TestReview(t *testing.T) {
	e, _ := newEgressEnv(t)
	st := awaitingReview("egress-ws-111111")
	e.fake.put(st)
	e.fake.put(awaiting("import-a-111111", "rob"))
	url := "/api/v1/requests/egress-ws-111111/reviews"
	review := func(files ...model.FileReview) string {
		return mustJSON(t, map[string]any{"turn": 1, "manifest_digest": st.ManifestDigest, "files": files})
	}
	approve := func(p string) model.FileReview { return model.FileReview{Path: p, Verdict: model.VerdictApprove} }
	both := review(approve("results/figure1.png"), approve("results/table1.csv"))

	for _, c := range []struct {
		name, user, path, body string
		status                 int
		contains               []string
	}{
		{"by is the caller", "olga", url, `{"by":"oscar","turn":1}`, 400, []string{"by: unknown field", "signed-in caller"}},
		{"unknown file field", "olga", url, `{"turn":1,"files":[{"path":"a","verdict":"approve","score":5}]}`, 400, []string{"score: unknown field"}},
		{"cannot read it", "mallory", url, both, 404, []string{`no request "egress-ws-111111"`}},
		{"reader without the capability", "petra", url, both, 403, []string{"approve:output-checker"}},
		{"the requester", "rita", url, both, 403, []string{"approve:output-checker"}},
		{"unknown stage", "olga", url, `{"stage":"governance","turn":1}`, 400, []string{`stage "governance": unknown stage`, "output-checking"}},
		{"an import", "dana", "/api/v1/requests/import-a-111111/reviews", both, 409, []string{"is an import, not an egress", "/decisions"}},
		{"no turn", "olga", url, mustJSON(t, map[string]any{"manifest_digest": st.ManifestDigest, "files": []model.FileReview{approve("a")}}), 400, []string{"turn"}},
		{"no verdicts", "olga", url, review(), 400, []string{"files: missing"}},
		{"a bad verdict", "olga", url, review(model.FileReview{Path: "results/table1.csv", Verdict: "maybe"}), 400, []string{`files[0].verdict "maybe"`, "approve, request-changes, reject"}},
		{"changes without a comment", "olga", url, review(model.FileReview{Path: "results/table1.csv", Verdict: model.VerdictRequestChanges}), 400, []string{"files[0].comment: missing"}},
	} {
		code, _, body := e.call(c.user, "POST", c.path, c.body)
		assert.Equal(t, c.status, code, "%s: %s", c.name, body)
		msg := errorOf(t, body).Message
		for _, s := range c.contains {
			assert.Contains(t, msg, s, c.name)
		}
	}
	assert.Zero(t, e.fake.egressCalls(), "no refused call reached the workflow")

	t.Run("the workflow's refusals pass through as 409", func(t *testing.T) {
		for _, c := range []struct{ body, want string }{
			{review(approve("results/figure1.png")), "no verdict for results/table1.csv"},
			{review(approve("results/figure1.png"), approve("results/table1.csv"), approve("other.csv")), `"other.csv" is not a file of this request`},
			{mustJSON(t, map[string]any{"turn": 2, "manifest_digest": st.ManifestDigest, "files": []model.FileReview{approve("results/figure1.png")}}), "this review is of turn 2 but the request is in turn 1"},
			{mustJSON(t, map[string]any{"turn": 1, "manifest_digest": "sha256:00", "files": []model.FileReview{approve("results/figure1.png")}}), "does not match this request's files"},
		} {
			code, _, body := e.call("olga", "POST", url, c.body)
			assert.Equal(t, http.StatusConflict, code, "%s", body)
			assert.Contains(t, errorOf(t, body).Message, c.want)
		}
	})

	t.Run("independent reviews reveal nothing until both are in", func(t *testing.T) {
		code, _, body := e.call("olga", "POST", url, both)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var res workflows.ReviewResult
		require.NoError(t, json.Unmarshal(body, &res))
		assert.Equal(t, workflows.ReviewResult{Turn: 1, ReviewsIn: 1, ReviewsNeeded: 2, State: model.StateAwaitingApproval}, res)
		got := e.fake.sent().reviews
		last := got[len(got)-1]
		assert.Equal(t, "olga", last.By)
		assert.Equal(t, "api", last.Via)
		assert.Equal(t, "output-checking", last.Stage, "the open stage when none is named")
		assert.Equal(t, []string{"output-checker"}, last.Roles)

		code, _, body = e.call("olga", "POST", url, both)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, errorOf(t, body).Message, "olga has already reviewed turn 1")

		changes := review(approve("results/figure1.png"), model.FileReview{Path: "results/table1.csv", Verdict: model.VerdictRequestChanges, Comment: "suppress counts under 10"})
		code, _, body = e.call("oscar", "POST", url, changes)
		require.Equal(t, http.StatusOK, code, "%s", body)
		require.NoError(t, json.Unmarshal(body, &res))
		assert.Equal(t, model.StateReturned, res.State)
		require.Len(t, res.Files, 2)
		assert.Equal(t, model.VerdictApprove, res.Files[0].Verdict)
		assert.Equal(t, model.VerdictRequestChanges, res.Files[1].Verdict)
	})
}

func TestResubmitWithdrawRevoke(t *testing.T) {
	e, _ := newEgressEnv(t)
	returned := awaitingReview("egress-ws-222222")
	returned.State = model.StateReturned
	returned.Stages[0].State = model.StageReturned
	e.fake.put(returned)
	e.fake.put(awaitingReview("egress-ws-333333"))
	released := awaitingReview("egress-ws-444444")
	released.State = model.StateReleased
	released.Egress.Release = &model.EgressRelease{Location: "file:///outbox/egress-ws-444444", Files: 2}
	e.fake.put(released)

	t.Run("resubmit", func(t *testing.T) {
		url := "/api/v1/requests/egress-ws-222222/resubmit"
		code, _, body := e.call("olga", "POST", url, `{}`)
		assert.Equal(t, http.StatusForbidden, code)
		assert.Contains(t, errorOf(t, body).Message, "only its requester (rita)")
		code, _, body = e.call("rita", "POST", url, `{"files":["/etc/passwd"]}`)
		assert.Equal(t, http.StatusBadRequest, code)
		assert.Contains(t, errorOf(t, body).Message, "files[0]")
		code, _, body = e.call("rita", "POST", "/api/v1/requests/egress-ws-333333/resubmit", `{}`)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, errorOf(t, body).Message, "can be resubmitted only while it is RETURNED")

		code, _, body = e.call("rita", "POST", url, `{"comment":"counts suppressed"}`)
		require.Equal(t, http.StatusOK, code, "%s", body)
		assert.JSONEq(t, `{"turn":2,"state":"CHECKING"}`, string(body))
		got := e.fake.sent().resubmits
		assert.Equal(t, model.Resubmission{By: "rita", Comment: "counts suppressed", Via: "api"}, got[len(got)-1])
	})

	t.Run("withdraw", func(t *testing.T) {
		url := "/api/v1/requests/egress-ws-333333/withdraw"
		code, _, body := e.call("olga", "POST", url, `{}`)
		assert.Equal(t, http.StatusForbidden, code)
		assert.Contains(t, errorOf(t, body).Message, "/cancel")
		code, _, body = e.call("rita", "POST", "/api/v1/requests/egress-ws-444444/withdraw", `{}`)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, errorOf(t, body).Message, "revoke it instead")

		code, _, body = e.call("rita", "POST", url, "")
		require.Equal(t, http.StatusOK, code, "%s", body)
		assert.JSONEq(t, `{"state":"WITHDRAWN"}`, string(body))
	})

	t.Run("revoke", func(t *testing.T) {
		url := "/api/v1/requests/egress-ws-444444/revoke"
		code, _, body := e.call("petra", "POST", url, `{"reason":"no"}`)
		assert.Equal(t, http.StatusForbidden, code)
		assert.Contains(t, errorOf(t, body).Message, "approve:output-checker")
		code, _, body = e.call("rita", "POST", url, `{}`)
		assert.Equal(t, http.StatusBadRequest, code)
		assert.Contains(t, errorOf(t, body).Message, "reason: missing")
		code, _, body = e.call("rita", "POST", "/api/v1/requests/egress-ws-222222/revoke", `{"reason":"r"}`)
		assert.Equal(t, http.StatusConflict, code)
		assert.Contains(t, errorOf(t, body).Message, "only a RELEASED egress can be revoked")

		// A checker of the request may revoke it.
		code, _, body = e.call("oscar", "POST", url, `{"reason":"agreement ended"}`)
		require.Equal(t, http.StatusOK, code, "%s", body)
		var res workflows.RevokeResult
		require.NoError(t, json.Unmarshal(body, &res))
		assert.Equal(t, model.StateRevoked, res.State)
		assert.Equal(t, "oscar", res.Revocation.By)
		assert.Equal(t, "api", res.Revocation.Via)
		got := e.fake.sent().revocations
		assert.Equal(t, []string{"output-checker"}, got[len(got)-1].Roles)
	})
}

// The API reads the destinations and the signing key from the config file
// the worker shares.
func TestEgressSettingsFromConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "airlock.yaml")
	require.NoError(t, os.WriteFile(p, []byte(`stores:
  staging: {path: staging}
  workspaces: {path: workspaces}
secrets: {dir: secrets, env: false}
egress:
  signingKey: `+signingKeyName+`
  destinations:
  - name: partner-outbox
    description: the partner's drop
    path: outbox
  - name: archive
    description: write-once archive
    path: archive
    revocable: false
`), 0o644))
	cfg, _, err := config.Load(p)
	require.NoError(t, err)
	es := egressSettingsFrom(cfg)
	assert.Equal(t, []egressDestination{
		{Name: "partner-outbox", Description: "the partner's drop", Revocable: true},
		{Name: "archive", Description: "write-once archive", Revocable: false},
	}, es.Destinations)
	require.NotNil(t, es.PublicKey)

	_, _, err = es.PublicKey(context.Background())
	require.Error(t, err, "no key in the secrets folder yet")
	assert.Contains(t, err.Error(), `egress.signingKey: secret "`+signingKeyName+`" not found`)

	privPEM, pubPEM, err := releasemanifest.GenerateKey()
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "secrets"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secrets", signingKeyName), privPEM, 0o600))
	got, keyID, err := es.PublicKey(context.Background())
	require.NoError(t, err)
	assert.Equal(t, string(pubPEM), string(got))
	pub, err := releasemanifest.ParsePublicKey(pubPEM)
	require.NoError(t, err)
	assert.Equal(t, releasemanifest.KeyID(pub), keyID)

	// A secret that is not a private key is refused without its value.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secrets", signingKeyName), []byte("hunter2-not-a-key"), 0o600))
	_, _, err = es.PublicKey(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not hold an Ed25519 private key")
	assert.NotContains(t, err.Error(), "hunter2")

	cfg.Egress = config.EgressConfig{}
	assert.Equal(t, egressSettings{}, egressSettingsFrom(cfg), "no egress block: no destinations, no key")
}
