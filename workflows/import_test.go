package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// expectedFiles is what the source tree should become in the manifest.
func expectedFiles() map[string]model.FileRecord {
	out := map[string]model.FileRecord{}
	for p, content := range sourceFiles {
		out[p] = model.FileRecord{Path: p, Size: int64(len(content)), SHA256: sha256Hex([]byte(content)), EncodingFormat: "text/csv"}
	}
	return out
}

func expectedDigest() string {
	var files []model.FileRecord
	for _, f := range expectedFiles() {
		files = append(files, f)
	}
	return model.ManifestDigest(files)
}

func filesByPath(files []model.FileRecord) map[string]model.FileRecord {
	out := map[string]model.FileRecord{}
	for _, f := range files {
		out[f.Path] = f
	}
	return out
}

// happyPath runs an import through both stages: dana approves the first
// (with a comment, through the CLI), ian the second (no comment, no via).
// It returns the harness and the state the query showed while waiting on
// the second stage.
func happyPath(t *testing.T) (*harness, model.RequestStatus) {
	h := newHarness(t)
	var waiting model.RequestStatus
	dana := h.decideAt(time.Hour, model.DecisionRequest{Stage: stageEng, By: "dana", Decision: model.Approve,
		Comment: "schema and row counts checked", ManifestDigest: currentDigest, Via: "cli"})
	h.at(time.Hour+time.Minute, func() {
		requireAccepted(t, dana)
		var res DecisionResult
		dana.decodeResult(t, &res)
		assert.Equal(t, DecisionResult{Stage: stageEng, StageState: model.StageApproved, Approvals: 1, Required: 1, State: model.StateAwaitingApproval}, res)
		waiting = h.state()
		require.Equal(t, model.StateAwaitingApproval, waiting.State)
		assert.Equal(t, model.StageApproved, waiting.Stages[0].State)
		requireWaiting(t, waiting, 1)
	})
	ian := h.decideAt(2*time.Hour, model.DecisionRequest{Stage: stageIG, By: "ian", Decision: model.Approve, ManifestDigest: currentDigest})
	h.run(testInput())
	requireAccepted(t, ian)
	return h, waiting
}

// 1. Both stages approved: the exact files, their crate and binding reach
// the workspace, and staging is emptied.
func TestImportHappyPath(t *testing.T) {
	h, _ := happyPath(t)
	ctx := context.Background()

	res := h.result()
	prefix := path.Join(testWorkspace, testDataSource, testWorkflowID)
	assert.Equal(t, model.StateCompleted, res.State)
	assert.Empty(t, res.Error)
	assert.Equal(t, expectedDigest(), res.ManifestDigest)
	assert.Equal(t, len(sourceFiles), res.Files)
	var total int64
	for _, c := range sourceFiles {
		total += int64(len(c))
	}
	assert.Equal(t, total, res.Bytes)
	assert.Equal(t, h.workspaces.URL(prefix), res.Location)

	st := h.state()
	assert.Equal(t, testWorkflowID, st.ID)
	assert.Equal(t, model.StateCompleted, st.State)
	assert.Equal(t, policyStandard+"@1", st.Policy)
	assert.Equal(t, expectedFiles(), filesByPath(st.Files), "the manifest's sizes and SHA-256 must be the source files'")
	assert.Equal(t, expectedDigest(), st.ManifestDigest)
	assert.Equal(t, res.Location, st.Location)
	require.Len(t, st.Stages, 2)
	for i, want := range []struct{ by, via string }{{"dana", "cli"}, {"ian", "update"}} {
		s := st.Stages[i]
		assert.Equal(t, model.StageApproved, s.State, "stage %s", s.Name)
		require.Len(t, s.Decisions, 1, "stage %s", s.Name)
		assert.Equal(t, want.by, s.Decisions[0].By)
		assert.Equal(t, want.via, s.Decisions[0].Via)
		assert.Equal(t, st.ManifestDigest, s.Decisions[0].ManifestDigest)
	}
	assert.NotNil(t, st.FinishedAt)
	assert.Empty(t, st.Refused)

	// The workspace holds exactly the approved files, the binding and the crate.
	got := storeFiles(t, h.workspaces, prefix)
	all, err := h.workspaces.List(ctx, "")
	require.NoError(t, err)
	assert.Len(t, all, len(got), "the workspace store holds files outside %s", prefix)
	wantKeys := append(sortedKeys(sourceFiles), activities.BindingFile, activities.CrateFile)
	assert.ElementsMatch(t, wantKeys, sortedKeys(got))
	for p, content := range sourceFiles {
		assert.Equal(t, sha256Hex([]byte(content)), sha256Hex(got[p]), "released %s", p)
	}
	partials, err := h.workspaces.Partials()
	require.NoError(t, err)
	assert.Empty(t, partials)

	// The crate: a File per file with its SHA-256, an AssessAction per decision.
	var crate struct {
		Context string           `json:"@context"`
		Graph   []map[string]any `json:"@graph"`
	}
	require.NoError(t, json.Unmarshal(got[activities.CrateFile], &crate))
	assert.Equal(t, activities.ROCrateContext, crate.Context)
	crateFiles := map[string]string{}
	var assess []map[string]any
	for _, e := range crate.Graph {
		switch e["@type"] {
		case "File":
			if e["@id"] == activities.BindingFile {
				continue
			}
			sum, _ := e["sha256"].(string)
			crateFiles[e["@id"].(string)] = sum
		case "AssessAction":
			assess = append(assess, e)
		}
	}
	wantSums := map[string]string{}
	for p, f := range expectedFiles() {
		wantSums[p] = f.SHA256
	}
	assert.Equal(t, wantSums, crateFiles, "the crate's File entities")
	require.Len(t, assess, 2, "one AssessAction per decision")
	for i, by := range []string{"dana", "ian"} {
		a := assess[i]
		assert.Equal(t, map[string]any{"@id": "#user-" + by}, a["agent"], "AssessAction %v", a["@id"])
		result, _ := a["result"].(map[string]any)
		assert.Equal(t, st.ManifestDigest, result["value"], "the digest %s approved", by)
		assert.Contains(t, a["name"], "approve by "+by)
	}
	assert.Contains(t, assess[0]["description"], "schema and row counts checked")

	// The binding.
	var binding model.DataBinding
	require.NoError(t, yaml.Unmarshal(got[activities.BindingFile], &binding))
	assert.Equal(t, model.KindDataBinding, binding.Kind)
	assert.Equal(t, "dsb-"+testDataSource, binding.Metadata.Name)
	assert.Equal(t, testWorkspace, binding.Spec.Workspace)
	assert.Equal(t, testDataSource, binding.Spec.DataSource)
	assert.Equal(t, testWorkflowID, binding.Metadata.Labels["airlock.xlscsde.nhs.uk/request"])

	h.requireStagingClean()
}

// 2. Every approval rule, refused through the decide Update: the caller
// hears why, and the request is as it was.
func TestDecideUpdateRefusals(t *testing.T) {
	cases := []struct {
		name string
		d    model.DecisionRequest
		want string
	}{
		{"requester approves own request", approve(stageEng, "rita"),
			"rita requested this import and cannot decide on it"},
		{"non-member decides", approve(stageEng, "ian"),
			`ian is not a member of role data-engineer in the directory, so cannot decide stage "data-engineering"`},
		{"wrong manifest digest", model.DecisionRequest{Stage: stageEng, By: "dana", Decision: model.Approve, ManifestDigest: wrongDigest},
			"manifest_digest " + wrongDigest + " does not match this request's files"},
		{"missing manifest digest", model.DecisionRequest{Stage: stageEng, By: "dana", Decision: model.Approve},
			"manifest_digest: missing"},
		{"rejection without comment", model.DecisionRequest{Stage: stageEng, By: "dana", Decision: model.Reject, ManifestDigest: currentDigest},
			"a rejection needs a comment saying why"},
		{"rejection with a blank comment", model.DecisionRequest{Stage: stageEng, By: "dana", Decision: model.Reject, Comment: "  ", ManifestDigest: currentDigest},
			"a rejection needs a comment saying why"},
		{"stage not yet open", approve(stageIG, "ian"),
			`stage "information-governance" is pending: the request is waiting on stage "data-engineering" (role data-engineer)`},
		{"unknown stage", approve("legal", "dana"),
			`stage: unknown stage "legal"`},
		{"not a decision", model.DecisionRequest{Stage: stageEng, By: "dana", Decision: "maybe", ManifestDigest: currentDigest},
			`decision: "maybe" is not a decision`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			refused := h.decideAt(time.Hour, tc.d)
			h.at(time.Hour+time.Minute, func() {
				requireRefused(t, refused, tc.want)
				st := h.state()
				requireWaiting(t, st, 0)
				assert.Empty(t, st.Refused, "a refused Update leaves no trace in the workflow")
			})
			// The request still moves on afterwards.
			ok1 := h.decideAt(2*time.Hour, approve(stageEng, "dana"))
			ok2 := h.decideAt(3*time.Hour, approve(stageIG, "ian"))
			h.run(testInput())
			requireAccepted(t, ok1)
			requireAccepted(t, ok2)
			assert.Equal(t, model.StateCompleted, h.result().State)
		})
	}
}

// 2. One person approves at most one stage of a request.
func TestDecideOnePersonOneStage(t *testing.T) {
	h := newHarness(t)
	first := h.decideAt(time.Hour, approve(stageEng, "olive"))
	second := h.decideAt(2*time.Hour, approve(stageIG, "olive"))
	h.at(2*time.Hour+time.Minute, func() {
		requireAccepted(t, first)
		requireRefused(t, second, `olive already approved stage "data-engineering"; one person approves at most one stage of a request`)
		st := h.state()
		assert.Equal(t, model.StageApproved, st.Stages[0].State)
		requireWaiting(t, st, 1)
	})
	ian := h.decideAt(3*time.Hour, approve(stageIG, "ian"))
	h.run(testInput())
	requireAccepted(t, ian)
	assert.Equal(t, model.StateCompleted, h.result().State)
	st := h.state()
	assert.Equal(t, "olive", st.Stages[0].Decisions[0].By)
	assert.Equal(t, "ian", st.Stages[1].Decisions[0].By)
}

// 2. A two-approval stage needs two distinct people: the same person twice
// is refused, and the stage completes only after dave and dana.
func TestDecideTwoPersonStage(t *testing.T) {
	h := newHarness(t)
	dave := h.decideAt(time.Hour, approve(stageEng, "dave"))
	h.at(time.Hour+time.Minute, func() {
		requireAccepted(t, dave)
		var res DecisionResult
		dave.decodeResult(t, &res)
		assert.Equal(t, DecisionResult{Stage: stageEng, StageState: model.StageWaiting, Approvals: 1, Required: 2, State: model.StateAwaitingApproval}, res)
		requireWaiting(t, h.state(), 0, "dave")
	})
	daveAgain := h.decideAt(2*time.Hour, approve(stageEng, "dave"))
	// The second stage is not open until the first has both approvals.
	igEarly := h.decideAt(2*time.Hour+time.Minute, approve(stageIG, "ian"))
	h.at(2*time.Hour+2*time.Minute, func() {
		requireRefused(t, daveAgain, `dave has already decided stage "data-engineering"; it needs 2 distinct approvers`)
		requireRefused(t, igEarly, `stage "information-governance" is pending`)
		st := h.state()
		requireWaiting(t, st, 0, "dave")
		assert.Equal(t, 2, st.Stages[0].Required)
	})
	dana := h.decideAt(3*time.Hour, approve(stageEng, "dana"))
	h.at(3*time.Hour+time.Minute, func() {
		requireAccepted(t, dana)
		var res DecisionResult
		dana.decodeResult(t, &res)
		assert.Equal(t, model.StageApproved, res.StageState)
		assert.Equal(t, 2, res.Approvals)
		st := h.state()
		assert.Equal(t, model.StageApproved, st.Stages[0].State)
		requireWaiting(t, st, 1)
	})
	ian := h.decideAt(4*time.Hour, approve(stageIG, "ian"))
	in := testInput()
	in.Policy = policyTwoPerson
	h.run(in)
	requireAccepted(t, ian)
	assert.Equal(t, model.StateCompleted, h.result().State)
	st := h.state()
	assert.Equal(t, policyTwoPerson+"@1", st.Policy)
	var by []string
	for _, d := range st.Stages[0].Decisions {
		by = append(by, d.By)
	}
	assert.Equal(t, []string{"dave", "dana"}, by)
}

// 2. Decisions sent as the Signal: a refused one is recorded with its reason
// and changes nothing; a valid one is applied and recorded as via signal.
func TestDecideSignal(t *testing.T) {
	h := newHarness(t)
	h.signalAt(time.Hour, approve(stageEng, "rita"))
	h.at(time.Hour+time.Minute, func() {
		st := h.state()
		requireWaiting(t, st, 0)
		require.Len(t, st.Refused, 1)
		r := st.Refused[0]
		assert.Equal(t, "rita", r.By)
		assert.Equal(t, stageEng, r.Stage)
		assert.Equal(t, "signal", r.Via)
		assert.Contains(t, r.Reason, "rita requested this import and cannot decide on it")
		assert.False(t, r.At.IsZero())
	})
	// A payload that is not a decision is refused too.
	h.signalAt(2*time.Hour, map[string]string{"stage": stageEng, "approver": "dana"})
	h.at(2*time.Hour+time.Minute, func() {
		st := h.state()
		requireWaiting(t, st, 0)
		require.Len(t, st.Refused, 2)
		assert.Contains(t, st.Refused[1].Reason, "is not a decision")
	})
	h.signalAt(3*time.Hour, approve(stageEng, "dana")) // says via cli: a signal is recorded as via signal
	h.at(3*time.Hour+time.Minute, func() {
		st := h.state()
		assert.Equal(t, model.StageApproved, st.Stages[0].State)
		require.Len(t, st.Stages[0].Decisions, 1)
		d := st.Stages[0].Decisions[0]
		assert.Equal(t, "dana", d.By)
		assert.Equal(t, "signal", d.Via)
		assert.Equal(t, st.ManifestDigest, d.ManifestDigest)
		requireWaiting(t, st, 1)
		assert.Len(t, st.Refused, 2)
	})
	h.signalAt(4*time.Hour, approve(stageIG, "ian"))
	h.run(testInput())
	assert.Equal(t, model.StateCompleted, h.result().State)
	st := h.state()
	assert.Equal(t, "signal", st.Stages[1].Decisions[0].Via)
	assert.Len(t, st.Refused, 2)
	h.requireStagingClean()
}

// 3. A rejection with a comment ends the request REJECTED.
func TestRejectWithComment(t *testing.T) {
	h := newHarness(t)
	const why = "contains direct identifiers in patients.csv"
	rej := h.decideAt(time.Hour, model.DecisionRequest{Stage: stageEng, By: "dana", Decision: model.Reject, Comment: why, ManifestDigest: currentDigest})
	h.run(testInput())
	requireAccepted(t, rej)
	var dr DecisionResult
	rej.decodeResult(t, &dr)
	assert.Equal(t, model.StageRejected, dr.StageState)

	res := h.result()
	assert.Equal(t, model.StateRejected, res.State)
	assert.Contains(t, res.Error, why)
	assert.Empty(t, res.Location)
	st := h.state()
	assert.Equal(t, model.StateRejected, st.State)
	assert.Contains(t, st.Error, why)
	assert.Contains(t, st.Error, "rejected at stage data-engineering by dana")
	assert.Equal(t, model.StageRejected, st.Stages[0].State)
	assert.Equal(t, model.StagePending, st.Stages[1].State)
	assert.Empty(t, st.Location, "a rejected request has no location")
	assert.Zero(t, h.attempts("Release"))
	h.requireStagingClean()
	requireStoreEmpty(t, h.workspaces, "workspace")
}

// 4. The requester cancels through the cancel Update; a stranger may not.
func TestCancelUpdate(t *testing.T) {
	h := newHarness(t)
	stranger := h.cancelAt(time.Hour, model.CancelRequest{By: "mallory"})
	h.at(time.Hour+time.Minute, func() {
		requireRefused(t, stranger, "mallory may not cancel request import-test-1")
		st := h.state()
		requireWaiting(t, st, 0)
		assert.Empty(t, st.CancelledBy)
	})
	rita := h.cancelAt(2*time.Hour, model.CancelRequest{By: "rita", Reason: "wrong extract"})
	h.run(testInput())
	requireAccepted(t, rita)
	var cr CancelResult
	rita.decodeResult(t, &cr)
	assert.Equal(t, model.StateCancelled, cr.State)

	assert.Equal(t, model.StateCancelled, h.result().State)
	st := h.state()
	assert.Equal(t, model.StateCancelled, st.State)
	assert.Equal(t, "rita", st.CancelledBy)
	assert.Empty(t, st.Stages[0].Decisions)
	assert.Empty(t, st.Location)
	h.requireStagingClean()
	requireStoreEmpty(t, h.workspaces, "workspace")
}

// 4. Cancelling the workflow through Temporal also ends it CANCELLED and
// cleans staging.
func TestCancelWorkflow(t *testing.T) {
	h := newHarness(t)
	h.at(time.Hour, func() {
		require.Equal(t, model.StateAwaitingApproval, h.state().State)
		h.env.CancelWorkflow()
	})
	h.run(testInput())
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.True(t, temporal.IsCanceledError(err), "got %v", err)
	st := h.state()
	assert.Equal(t, model.StateCancelled, st.State)
	assert.Equal(t, "temporal-cancel", st.CancelledBy)
	assert.Empty(t, st.Location)
	assert.GreaterOrEqual(t, h.attempts("DeleteArea"), 1)
	h.requireStagingClean()
	requireStoreEmpty(t, h.workspaces, "workspace")
}

// 5. Nobody decides: the first stage's 72h deadline passes and the request
// expires.
func TestDeadlineExpiry(t *testing.T) {
	h := newHarness(t)
	h.at(71*time.Hour, func() {
		requireWaiting(t, h.state(), 0)
	})
	h.run(testInput())
	res := h.result()
	assert.Equal(t, model.StateExpired, res.State)
	st := h.state()
	assert.Equal(t, model.StateExpired, st.State)
	assert.Equal(t, model.StageExpired, st.Stages[0].State)
	assert.Equal(t, model.StagePending, st.Stages[1].State)
	assert.Contains(t, st.Error, "deadline of 72h0m0s")
	require.NotNil(t, st.Stages[0].OpenedAt)
	require.NotNil(t, st.Stages[0].DeadlineAt)
	require.NotNil(t, st.FinishedAt)
	assert.Equal(t, 72*time.Hour, st.Stages[0].DeadlineAt.Sub(*st.Stages[0].OpenedAt))
	assert.Equal(t, 72*time.Hour, st.FinishedAt.Sub(*st.Stages[0].OpenedAt))
	assert.Empty(t, st.Location)
	h.requireStagingClean()
	requireStoreEmpty(t, h.workspaces, "workspace")
}

// 6. A transient failure of ExtractObject is retried and the import
// completes.
func TestExtractRetriedAfterTransientFailure(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	calls := map[int]int{} // object index -> calls
	h.env.OnActivity(h.acts.ExtractObject, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.ExtractObjectInput) (activities.ExtractObjectResult, error) {
			mu.Lock()
			calls[in.Index]++
			n := calls[in.Index]
			mu.Unlock()
			if n == 1 {
				return activities.ExtractObjectResult{}, temporal.NewApplicationError("source briefly unavailable", "Transient")
			}
			return h.acts.ExtractObject(ctx, in)
		})
	h.decideAt(time.Hour, approve(stageEng, "dana"))
	h.decideAt(2*time.Hour, approve(stageIG, "ian"))
	h.run(testInput())
	res := h.result()
	assert.Equal(t, model.StateCompleted, res.State)
	assert.Equal(t, map[int]int{0: 2, 1: 2}, calls, "each object failed once, then succeeded on its retry")
	assert.Equal(t, 4, h.attempts("ExtractObject"))
	st := h.state()
	assert.Equal(t, expectedFiles(), filesByPath(st.Files))
	got := storeFiles(t, h.workspaces, path.Join(testWorkspace, testDataSource, testWorkflowID))
	for p, content := range sourceFiles {
		assert.Equal(t, content, string(got[p]))
	}
	h.requireStagingClean()
}

// requireFailed checks that the workflow ended FAILED with an ImportFailed
// error whose message contains every want, and returns the final state.
func requireFailed(t *testing.T, h *harness, want ...string) model.RequestStatus {
	t.Helper()
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app), "got %v", err)
	assert.Equal(t, ErrTypeImportFailed, app.Type())
	assert.True(t, app.NonRetryable())
	var res ImportResult
	require.NoError(t, app.Details(&res))
	assert.Equal(t, model.StateFailed, res.State)
	st := h.state()
	assert.Equal(t, model.StateFailed, st.State)
	assert.Equal(t, res.Error, st.Error)
	for _, w := range want {
		assert.Contains(t, app.Message(), w)
		assert.Contains(t, st.Error, w)
	}
	assert.Empty(t, st.Location)
	return st
}

// 6. A file object naming a missing file is bad input: FAILED at once,
// naming the file, without retries.
func TestMissingFileFailsWithoutRetry(t *testing.T) {
	h := newHarness(t)
	in := testInput()
	in.DataSource.Spec.Objects = append(in.DataSource.Spec.Objects,
		model.Object{File: &model.FileObject{Path: "missing/visits-2023.csv", Connection: "src"}})
	h.run(in)
	st := requireFailed(t, h, "missing/visits-2023.csv", "not found", "spec.objects[2]")
	assert.Equal(t, 1, h.attempts("PlanImport"), "bad input must not be retried")
	assert.Zero(t, h.attempts("ExtractObject"))
	assert.Empty(t, st.Files)
	h.requireStagingClean()
	requireStoreEmpty(t, h.workspaces, "workspace")
}

// 6. A file that disappears between planning and copying is bad input too:
// ExtractObject fails at once, naming it, and staging is cleaned.
func TestFileVanishedDuringExtractFailsWithoutRetry(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	attempts := map[int]int{}
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		if info.ActivityType.Name != "ExtractObject" {
			return
		}
		var in activities.ExtractObjectInput
		require.NoError(t, args.Get(&in))
		mu.Lock()
		attempts[in.Index]++
		mu.Unlock()
		if in.Index == 1 {
			require.NoError(t, removeFile(h.srcDir, "patients.csv"))
		}
	})
	// One object at a time: the test environment resolves a cancelled
	// activity at once (it ignores WaitForCancellation) while the activity
	// goes on writing, so a sibling copy cancelled by the failure could
	// still be writing to staging after the cleanup.
	in := testInput()
	in.Parallelism = 1
	h.run(in)
	requireFailed(t, h, "extracting failed", "patients.csv", "not found")
	assert.Equal(t, 1, attempts[0], "the prefix object was copied before the file object failed")
	assert.Equal(t, 1, attempts[1], "bad input must not be retried")
	h.requireStagingClean()
	requireStoreEmpty(t, h.workspaces, "workspace")
}

// 7. --policy naming a policy the project may not use: FAILED at once, the
// message listing the allowed policies.
func TestPolicyNotAllowed(t *testing.T) {
	h := newHarness(t)
	in := testInput()
	in.Policy = "fast-track"
	h.run(in)
	st := requireFailed(t, h, `policy "fast-track" is not allowed`, "allowed: standard, two-person", "choosing the approval policy failed")
	assert.Equal(t, 1, h.attempts("ResolvePolicy"), "a policy that is not allowed is bad input: it must not be retried")
	assert.Zero(t, h.attempts("PlanImport"))
	assert.Empty(t, st.Stages)
	h.requireStagingClean()

	// 8. A request that failed before it had stages, files or a location
	// still shows every field.
	doc := statusDoc(t, st)
	requireStatusKeys(t, doc)
	assert.Equal(t, "", doc["location"])
	assert.Equal(t, "", doc["manifest_digest"])
	assert.Equal(t, string(model.StateFailed), doc["state"])
	assert.Contains(t, doc["error"], "allowed: standard, two-person")
}

// 7. The requester may choose any allowed policy; without --policy the
// first listed is used.
func TestPolicySelectionDefault(t *testing.T) {
	h := newHarness(t)
	h.at(time.Hour, func() {
		st := h.state()
		assert.Equal(t, policyStandard+"@1", st.Policy)
		assert.Equal(t, 1, st.Stages[0].Required)
		h.env.CancelWorkflow()
	})
	h.run(testInput())
}

// 8. The state query carries every field `airlock status -o json` promises.
func TestStateQueryJSON(t *testing.T) {
	h, waiting := happyPath(t)
	final := h.state()
	for name, st := range map[string]model.RequestStatus{"awaiting approval": waiting, "completed": final} {
		t.Run(name, func(t *testing.T) {
			data, err := json.Marshal(st)
			require.NoError(t, err)
			var doc map[string]any
			require.NoError(t, json.Unmarshal(data, &doc))
			requireStatusKeys(t, doc)
			assert.Equal(t, testWorkflowID, doc["id"])
			assert.Equal(t, "import", doc["kind"])
			assert.Equal(t, testDataSource, doc["datasource"])
			assert.Equal(t, testProject, doc["project"])
			assert.Equal(t, testWorkspace, doc["workspace"])
			assert.Equal(t, testRequester, doc["requester"])
			assert.Equal(t, expectedDigest(), doc["manifest_digest"])
			assert.Equal(t, "", doc["error"])

			stages, ok := doc["stages"].([]any)
			require.True(t, ok, "stages is a list")
			require.Len(t, stages, 2)
			for _, s := range stages {
				requireKeys(t, s.(map[string]any), "name", "role", "required", "state", "decisions")
			}
			s0 := stages[0].(map[string]any)
			assert.Equal(t, stageEng, s0["name"])
			assert.Equal(t, roleEng, s0["role"])
			assert.Equal(t, float64(1), s0["required"])
			assert.Equal(t, model.StageApproved, s0["state"])
			decisions := s0["decisions"].([]any)
			require.Len(t, decisions, 1)
			d := decisions[0].(map[string]any)
			requireKeys(t, d, "by", "decision", "comment", "at")
			assert.Equal(t, "dana", d["by"])
			assert.Equal(t, model.Approve, d["decision"])
			assert.Equal(t, "schema and row counts checked", d["comment"])
			_, err = time.Parse(time.RFC3339Nano, d["at"].(string))
			assert.NoError(t, err)

			files, ok := doc["files"].([]any)
			require.True(t, ok, "files is a list")
			require.Len(t, files, len(sourceFiles))
			for _, f := range files {
				fm := f.(map[string]any)
				requireKeys(t, fm, "path", "size", "sha256")
				want := expectedFiles()[fm["path"].(string)]
				assert.Equal(t, float64(want.Size), fm["size"])
				assert.Equal(t, want.SHA256, fm["sha256"])
			}
		})
	}
	assert.Equal(t, string(model.StateAwaitingApproval), mustJSONField(t, waiting, "state"))
	assert.Equal(t, string(model.StateCompleted), mustJSONField(t, final, "state"))
	assert.True(t, strings.HasPrefix(mustJSONField(t, final, "location"), "file://"), "a completed import has a location")
}

// statusKeys are the top-level fields `airlock status -o json` promises.
var statusKeys = []string{"id", "kind", "state", "datasource", "project", "workspace", "requester",
	"manifest_digest", "stages", "files", "location", "error"}

// requireStatusKeys checks that every promised field is there, and that
// stages and files are lists (never null), whatever the request's state.
func requireStatusKeys(t *testing.T, doc map[string]any) {
	t.Helper()
	requireKeys(t, doc, statusKeys...)
	_, ok := doc["stages"].([]any)
	assert.True(t, ok, "stages must be a list, got %#v", doc["stages"])
	_, ok = doc["files"].([]any)
	assert.True(t, ok, "files must be a list, got %#v", doc["files"])
}

func statusDoc(t *testing.T, st model.RequestStatus) map[string]any {
	t.Helper()
	data, err := json.Marshal(st)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	return doc
}

func requireKeys(t *testing.T, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		_, ok := m[k]
		assert.True(t, ok, "key %q missing from %v", k, sortedKeys(m))
	}
}

func mustJSONField(t *testing.T, st model.RequestStatus, key string) string {
	t.Helper()
	data, err := json.Marshal(st)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(data, &doc))
	s, _ := doc[key].(string)
	return s
}

// 4. Cancelling the workflow through Temporal while the approved files are
// being copied into the workspace leaves no partial release behind: what
// was copied is removed, as after a failed release.
func TestCancelWorkflowDuringRelease(t *testing.T) {
	h := newHarness(t)
	copied, stalled := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stalled) })
	h.env.OnActivity(h.acts.Release, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.ReleaseInput) (activities.ReleaseResult, error) {
			// Copy for real, then stall before reporting, as a worker
			// does while the cancellation arrives.
			_, err := h.acts.Release(ctx, in)
			close(copied)
			if err != nil {
				return activities.ReleaseResult{}, err
			}
			// (The test environment resolves a cancelled activity's future
			// at once and never cancels its context: stall until the test
			// ends.)
			select {
			case <-ctx.Done():
			case <-stalled:
			}
			return activities.ReleaseResult{}, temporal.NewCanceledError()
		})
	h.decideAt(time.Hour, approve(stageEng, "dana"))
	h.decideAt(2*time.Hour, approve(stageIG, "ian"))
	// While Release runs, the test clock moves with the wall clock.
	h.at(2*time.Hour+200*time.Millisecond, func() {
		select {
		case <-copied:
		case <-time.After(5 * time.Second):
			t.Error("Release did not copy the files")
		}
		require.Equal(t, model.StateReleasing, h.state().State)
		files, err := h.workspaces.List(context.Background(), "")
		require.NoError(t, err)
		require.NotEmpty(t, files, "the release should have copied files by now")
		h.env.CancelWorkflow()
	})
	h.run(testInput())
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.True(t, temporal.IsCanceledError(err), "got %v", err)
	st := h.state()
	assert.Equal(t, model.StateCancelled, st.State)
	assert.Empty(t, st.Location)
	h.requireStagingClean()
	requireStoreEmpty(t, h.workspaces, "workspace")
}
