package workflows

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/model"
)

// Names used throughout the tests.
const (
	testWorkflowID = "import-test-1"
	testDataSource = "clinic-extract"
	testProject    = "proj-alpha"
	testWorkspace  = "ws-alpha"
	testRequester  = "rita"

	stageEng = "data-engineering"
	stageIG  = "information-governance"
	roleEng  = "data-engineer"
	roleIG   = "information-governance"

	policyStandard  = "standard"
	policyTwoPerson = "two-person"
)

// currentDigest in a DecisionRequest's ManifestDigest is replaced, when the
// decision is sent, by the digest the state query shows at that moment.
const currentDigest = "<current>"

// wrongDigest is a well-formed digest that matches no request.
const wrongDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// sourceFiles is the source tree under <FileRoot>/src, keyed by the path each
// file gets in the crate. "reports/" is a prefix object, "patients.csv" a
// file object.
var sourceFiles = map[string]string{
	"reports/summary.csv":     "clinic,visits\nnorth,120\nsouth,98\n",
	"reports/2024/visits.csv": "id,clinic,date\n1,north,2024-01-02\n2,south,2024-01-03\n3,north,2024-02-11\n",
	"patients.csv":            "id,age_band,sex\n1,30-39,F\n2,60-69,M\n3,40-49,F\n",
}

// testPolicyBook is the worker's policy configuration: a standard two-stage
// policy (the default) and a two-person variant whose first stage needs two
// approvals.
func testPolicyBook() *model.PolicyBook {
	stage := func(name, role string, approvals int, deadline time.Duration) model.Stage {
		return model.Stage{Name: name, Role: role, Approvals: approvals, Deadline: model.Duration(deadline)}
	}
	return &model.PolicyBook{
		Policies: map[string]model.Policy{
			policyStandard: {Name: policyStandard, Version: "1", Stages: []model.Stage{
				stage(stageEng, roleEng, 1, 72*time.Hour),
				stage(stageIG, roleIG, 1, 168*time.Hour),
			}},
			policyTwoPerson: {Name: policyTwoPerson, Version: "1", Stages: []model.Stage{
				stage(stageEng, roleEng, 2, 72*time.Hour),
				stage(stageIG, roleIG, 1, 168*time.Hour),
			}},
		},
		Rules: []model.PolicyRule{
			{Project: "*", Kind: model.KindImport, Policies: []string{policyStandard, policyTwoPerson}},
			{Project: "*", Kind: model.KindUpload, Policies: []string{policyStandard}},
		},
		Roster: map[string][]string{
			"rita":  {"researcher"},
			"dana":  {roleEng},
			"dave":  {roleEng},
			"ian":   {roleIG},
			"olive": {roleEng, roleIG},
		},
	}
}

// testDataSourceDoc is an Import data source reading the test source tree
// through a file connection: a prefix object and a file object.
func testDataSourceDoc() model.DataSource {
	return model.DataSource{
		APIVersion: model.APIVersion,
		Kind:       model.KindDataSource,
		Metadata:   model.ObjectMeta{Name: testDataSource},
		Spec: model.DataSourceSpec{
			Type: model.TypeImport,
			Publisher: model.Publisher{
				Organisation: "Example NHS Trust",
				Contact:      model.Contact{Name: "Pat Publisher", Email: "pat@example.org"},
			},
			Project:     model.Project{ID: testProject},
			DisplayName: "Clinic extract",
			Description: "Visits per clinic.",
			License:     "For approved research only.",
			Connections: []model.Connection{{Type: model.ConnFile, Name: "src", URL: "file:///src"}},
			Objects: []model.Object{
				{Prefix: &model.FileObject{Path: "reports", Connection: "src"}},
				{File: &model.FileObject{Path: "patients.csv", Connection: "src"}},
			},
		},
	}
}

// harness is one TestWorkflowEnvironment with the real activities over
// temporary local stores and a temporary source tree.
type harness struct {
	t          *testing.T
	env        *testsuite.TestWorkflowEnvironment
	acts       *activities.Activities
	staging    *localstore.Store
	workspaces *localstore.Store
	srcDir     string // <FileRoot>/src

	mu      sync.Mutex
	started map[string]int // activity type -> attempts started
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	tmp := t.TempDir()
	fileRoot := filepath.Join(tmp, "files")
	srcDir := filepath.Join(fileRoot, "src")
	for rel, content := range sourceFiles {
		p := filepath.Join(srcDir, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o640))
	}
	staging, err := localstore.New(filepath.Join(tmp, "staging"))
	require.NoError(t, err)
	workspaces, err := localstore.New(filepath.Join(tmp, "workspaces"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = staging.Close(); _ = workspaces.Close() })
	book := testPolicyBook()
	require.NoError(t, book.Validate())

	acts := &activities.Activities{
		Staging:    staging,
		Workspaces: workspaces,
		Sources:    file.Factories(file.Config{FileRoot: fileRoot}),
		Policies:   book,
		// A small buffer so each file takes several reads.
		Transfer: activities.TransferConfig{BufferSize: 16},
	}

	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(ImportWorkflow, workflow.RegisterOptions{Name: ImportWorkflowName})
	env.RegisterWorkflowWithOptions(UploadWorkflow, workflow.RegisterOptions{Name: UploadWorkflowName})
	env.RegisterActivity(acts)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testWorkflowID, TaskQueue: TaskQueue})
	env.SetTestTimeout(15 * time.Second)

	h := &harness{t: t, env: env, acts: acts, staging: staging, workspaces: workspaces, srcDir: srcDir, started: map[string]int{}}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		h.mu.Lock()
		h.started[info.ActivityType.Name]++
		h.mu.Unlock()
	})
	return h
}

// attempts is how many attempts of the activity type started.
func (h *harness) attempts(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.started[name]
}

func testInput() ImportInput {
	return ImportInput{DataSource: testDataSourceDoc(), Workspace: testWorkspace, Requester: testRequester, Via: "cli"}
}

// run executes the workflow to its end.
func (h *harness) run(in ImportInput) {
	h.t.Helper()
	h.env.ExecuteWorkflow(ImportWorkflowName, in)
	require.True(h.t, h.env.IsWorkflowCompleted(), "the workflow did not complete")
}

// result returns the workflow's result; the workflow must have ended without error.
func (h *harness) result() ImportResult {
	h.t.Helper()
	require.NoError(h.t, h.env.GetWorkflowError())
	var res ImportResult
	require.NoError(h.t, h.env.GetWorkflowResult(&res))
	return res
}

// state queries the workflow's state.
func (h *harness) state() model.RequestStatus {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(QueryState)
	require.NoError(h.t, err)
	var st model.RequestStatus
	require.NoError(h.t, v.Get(&st))
	return st
}

// at runs fn when the workflow's clock has advanced by d since the start.
func (h *harness) at(d time.Duration, fn func()) { h.env.RegisterDelayedCallback(fn, d) }

// outcome records how an Update was answered.
type outcome struct {
	accepted, rejected, completed bool
	rejectErr, completeErr        error
	result                        any
}

// decodeResult converts the Update's result into out.
func (o *outcome) decodeResult(t *testing.T, out any) {
	t.Helper()
	require.True(t, o.completed, "the update did not complete")
	require.NoError(t, o.completeErr)
	if ev, ok := o.result.(converter.EncodedValue); ok {
		require.NoError(t, ev.Get(out))
		return
	}
	data, err := json.Marshal(o.result)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, out))
}

// update sends an Update now (from inside a delayed callback); its
// callbacks fill in o once the workflow answers.
func (h *harness) update(name string, arg any, o *outcome) {
	h.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnAccept:   func() { o.accepted = true },
		OnReject:   func(err error) { o.rejected, o.rejectErr = true, err },
		OnComplete: func(r any, err error) { o.completed, o.result, o.completeErr = true, r, err },
	}, arg)
}

// withDigest replaces currentDigest by the request's digest now.
func (h *harness) withDigest(d model.DecisionRequest) model.DecisionRequest {
	if d.ManifestDigest == currentDigest {
		st := h.state()
		require.NotEmpty(h.t, st.ManifestDigest, "no manifest digest yet (state %s)", st.State)
		d.ManifestDigest = st.ManifestDigest
	}
	return d
}

// decideAt sends d as a decide Update at time at. The returned record is
// filled in once the workflow answers.
func (h *harness) decideAt(at time.Duration, d model.DecisionRequest) *outcome {
	o := &outcome{}
	h.at(at, func() { h.update(UpdateDecide, h.withDigest(d), o) })
	return o
}

// cancelAt sends c as the cancel Update at time at.
func (h *harness) cancelAt(at time.Duration, c model.CancelRequest) *outcome {
	o := &outcome{}
	h.at(at, func() { h.update(UpdateCancel, c, o) })
	return o
}

// signalAt sends payload as the decide Signal at time at.
func (h *harness) signalAt(at time.Duration, payload any) {
	h.at(at, func() {
		if d, ok := payload.(model.DecisionRequest); ok {
			payload = h.withDigest(d)
		}
		h.env.SignalWorkflow(SignalDecide, payload)
	})
}

func approve(stage, by string) model.DecisionRequest {
	return model.DecisionRequest{Stage: stage, By: by, Decision: model.Approve, ManifestDigest: currentDigest, Via: "cli"}
}

// requireRefused checks that the Update was refused by its validator with a
// message containing want.
func requireRefused(t *testing.T, o *outcome, want string) {
	t.Helper()
	require.True(t, o.rejected, "the update was not refused (accepted=%v completed=%v err=%v)", o.accepted, o.completed, o.completeErr)
	require.False(t, o.accepted, "a refused update must not be accepted")
	require.Error(t, o.rejectErr)
	assert.Contains(t, o.rejectErr.Error(), want)
}

// requireAccepted checks that the Update was accepted and completed without error.
func requireAccepted(t *testing.T, o *outcome) {
	t.Helper()
	require.False(t, o.rejected, "the update was refused: %v", o.rejectErr)
	require.True(t, o.accepted, "the update was not accepted")
	require.True(t, o.completed, "the update did not complete")
	require.NoError(t, o.completeErr)
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// requireStagingClean checks that staging holds no file and no partial file.
func (h *harness) requireStagingClean() {
	h.t.Helper()
	requireStoreEmpty(h.t, h.staging, "staging")
}

func requireStoreEmpty(t *testing.T, s *localstore.Store, name string) {
	t.Helper()
	files, err := s.List(context.Background(), "")
	require.NoError(t, err)
	assert.Empty(t, files, "%s still holds files", name)
	partials, err := s.Partials()
	require.NoError(t, err)
	assert.Empty(t, partials, "%s still holds partial files", name)
}

// storeFiles reads every committed file of a store under prefix, keyed by
// the key relative to prefix.
func storeFiles(t *testing.T, s *localstore.Store, prefix string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	infos, err := s.List(ctx, prefix)
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, fi := range infos {
		rc, err := s.Open(ctx, fi.Key)
		require.NoError(t, err)
		data, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		out[strings.TrimPrefix(fi.Key, prefix+"/")] = data
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// requireWaiting checks that stage idx is open and holds exactly the
// decisions of the named people, and that nothing else changed.
func requireWaiting(t *testing.T, st model.RequestStatus, idx int, by ...string) {
	t.Helper()
	require.Equal(t, model.StateAwaitingApproval, st.State)
	require.Len(t, st.Stages, 2)
	assert.Equal(t, model.StageWaiting, st.Stages[idx].State, "stage %s", st.Stages[idx].Name)
	var got []string
	for _, d := range st.Stages[idx].Decisions {
		got = append(got, d.By)
	}
	assert.Equal(t, by, got, "decisions recorded at stage %s", st.Stages[idx].Name)
	for i := idx + 1; i < len(st.Stages); i++ {
		assert.Equal(t, model.StagePending, st.Stages[i].State)
		assert.Empty(t, st.Stages[i].Decisions)
	}
}

// removeFile deletes a file of the source tree.
func removeFile(srcDir, rel string) error {
	return os.Remove(filepath.Join(srcDir, filepath.FromSlash(rel)))
}
