package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// Names of the upload tests.
const (
	testUploadID         = "upload-clinic-notes-abc123"
	testUploadDataSource = "clinic-notes"
)

// uploadedFiles are what rita uploads, by path in the request.
var uploadedFiles = map[string]string{
	"visits.csv":        "clinic,visits\nnorth,120\nsouth,98\n",
	"data/patients.csv": "id,age_band,sex\n1,30-39,F\n2,60-69,M\n",
}

// newUploadHarness is the harness with the run's id an upload's.
func newUploadHarness(t *testing.T) *harness {
	h := newHarness(t)
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: testUploadID, TaskQueue: TaskQueue})
	return h
}

// testUploadDataSourceDoc is an Uploaded data source, as the upload front
// end makes one: a pvc connection, no objects.
func testUploadDataSourceDoc() model.DataSource {
	ds := testDataSourceDoc()
	ds.Metadata.Name = testUploadDataSource
	ds.Spec.Type = model.TypeUploaded
	ds.Spec.DisplayName = "Clinic notes"
	ds.Spec.Connections = []model.Connection{{Type: model.ConnPVC, Name: "pvc-clinic-notes"}}
	ds.Spec.Objects = nil
	return ds
}

func testUploadInput() UploadInput {
	return UploadInput{DataSource: testUploadDataSourceDoc(), Workspace: testWorkspace, Requester: testRequester, Via: "api",
		Limits: model.UploadLimits{MaxFiles: 10, MaxFileSize: 1 << 20, MaxRequestSize: 4 << 20}}
}

// runUpload executes the upload workflow to its end.
func (h *harness) runUpload(in UploadInput) {
	h.t.Helper()
	h.env.ExecuteWorkflow(UploadWorkflowName, in)
	require.True(h.t, h.env.IsWorkflowCompleted(), "the workflow did not complete")
}

func (h *harness) uploadResult() UploadResult {
	h.t.Helper()
	require.NoError(h.t, h.env.GetWorkflowError())
	var res UploadResult
	require.NoError(h.t, h.env.GetWorkflowResult(&res))
	return res
}

// upload commits a file into the request's staging area, as the uploads
// package does when a tus upload finishes.
func (h *harness) upload(p, content string) {
	h.t.Helper()
	w, err := h.staging.Create(context.Background(), path.Join(activities.StagingPrefix(testUploadID), p), nil)
	require.NoError(h.t, err)
	_, err = w.Write([]byte(content))
	require.NoError(h.t, err)
	require.NoError(h.t, w.Commit())
}

// uploadAll uploads every file of uploadedFiles, with the upload
// bookkeeping the uploads package keeps beside them.
func (h *harness) uploadAll() {
	for p, c := range uploadedFiles {
		h.upload(p, c)
	}
	h.upload(model.UploadStateFolder+"/"+testUploadID+".00112233aabbccdd.json", `{"offset":27}`)
}

// confirmationOf lists files (path -> content) as by confirms them.
func confirmationOf(by string, files map[string]string) model.UploadConfirmation {
	c := model.UploadConfirmation{By: by, Via: "api"}
	for _, p := range sortedKeys(files) {
		c.Files = append(c.Files, model.ExpectedFile{Path: p, Size: int64(len(files[p]))})
	}
	return c
}

// confirmAt sends c as the confirm-upload Update at time at.
func (h *harness) confirmAt(at time.Duration, c model.UploadConfirmation) *outcome {
	o := &outcome{}
	h.at(at, func() { h.update(UpdateConfirmUpload, c, o) })
	return o
}

func requireConfirmed(t *testing.T, o *outcome) {
	t.Helper()
	requireAccepted(t, o)
	var res ConfirmUploadResult
	o.decodeResult(t, &res)
	assert.Equal(t, model.StateChecking, res.State)
}

func expectedUploadRecords() map[string]model.FileRecord {
	out := map[string]model.FileRecord{}
	for p, c := range uploadedFiles {
		out[p] = model.FileRecord{Path: p, Size: int64(len(c)), SHA256: sha256Hex([]byte(c)), EncodingFormat: "text/csv"}
	}
	return out
}

// The upload's whole life: waiting for files, confirmed, checked, approved
// at both stages, released with a crate that records the upload and its
// checks.
func TestUploadHappyPath(t *testing.T) {
	h := newUploadHarness(t)
	h.at(30*time.Minute, func() {
		st := h.state()
		assert.Equal(t, model.KindUpload, st.Kind)
		assert.Equal(t, model.StateAwaitingUpload, st.State)
		assert.Equal(t, policyStandard+"@1", st.Policy, "the policy is chosen before anyone uploads")
		require.NotNil(t, st.ExpiresAt)
		assert.Equal(t, DefaultUploadExpiry, st.ExpiresAt.Sub(st.CreatedAt))
		assert.Empty(t, st.Files)
		d := Details(st)
		assert.Contains(t, d, "**Waiting on:** rita to upload the files")
		assert.Contains(t, d, "`confirm-upload` Update")
		assert.Contains(t, d, "by "+st.ExpiresAt.UTC().Format(time.RFC3339)+": unconfirmed, the request then expires and its uploaded files are removed")
	})
	h.at(time.Hour, h.uploadAll)
	confirm := h.confirmAt(2*time.Hour, confirmationOf(testRequester, uploadedFiles))
	h.at(2*time.Hour+time.Minute, func() {
		requireConfirmed(t, confirm)
		st := h.state()
		requireWaiting(t, st, 0)
		assert.Nil(t, st.ExpiresAt, "checked files no longer expire unconfirmed")
		assert.Empty(t, st.Error)
		assert.Equal(t, expectedUploadRecords(), filesByPath(st.Files))
		assert.Equal(t, model.ManifestDigest(st.Files), st.ManifestDigest)
		require.Len(t, st.Checks, 3)
		for _, c := range st.Checks {
			assert.True(t, c.Passed, "check %+v", c)
		}
		assert.True(t, strings.HasPrefix(st.Location, "file://"), "the staged crate's folder: %q", st.Location)
	})
	dana := h.decideAt(3*time.Hour, approve(stageEng, "dana"))
	ian := h.decideAt(4*time.Hour, approve(stageIG, "ian"))
	h.runUpload(testUploadInput())
	requireAccepted(t, dana)
	requireAccepted(t, ian)

	res := h.uploadResult()
	prefix := path.Join(testWorkspace, testUploadDataSource, testUploadID)
	assert.Equal(t, model.StateCompleted, res.State)
	assert.Empty(t, res.Error)
	assert.Equal(t, len(uploadedFiles), res.Files)
	assert.Equal(t, h.workspaces.URL(prefix), res.Location)
	st := h.state()
	assert.Equal(t, model.StateCompleted, st.State)
	assert.Equal(t, res.ManifestDigest, st.ManifestDigest)
	assert.Equal(t, 1, h.attempts("CheckUpload"))

	// The workspace holds the uploaded files (not the bookkeeping), the
	// binding and the crate.
	got := storeFiles(t, h.workspaces, prefix)
	assert.ElementsMatch(t, append(sortedKeys(uploadedFiles), activities.BindingFile, activities.CrateFile), sortedKeys(got))
	for p, c := range uploadedFiles {
		assert.Equal(t, c, string(got[p]))
	}
	var crate struct {
		Graph []map[string]any `json:"@graph"`
	}
	require.NoError(t, json.Unmarshal(got[activities.CrateFile], &crate))
	var creates, checks, decisions []map[string]any
	for _, e := range crate.Graph {
		switch e["@type"] {
		case "CreateAction":
			creates = append(creates, e)
		case "AssessAction":
			if strings.HasPrefix(e["@id"].(string), "#check-") {
				checks = append(checks, e)
			} else {
				decisions = append(decisions, e)
			}
		}
	}
	require.Len(t, creates, 1, "one CreateAction: the upload")
	assert.Equal(t, "#upload", creates[0]["@id"])
	assert.Equal(t, map[string]any{"@id": "#user-" + testRequester}, creates[0]["agent"])
	assert.Equal(t, st.CreatedAt.UTC().Format(time.RFC3339Nano), creates[0]["startTime"])
	assert.Len(t, creates[0]["result"], len(uploadedFiles))
	assert.Len(t, checks, 3, "an AssessAction per check")
	assert.Len(t, decisions, 2, "an AssessAction per decision")
	h.requireStagingClean()
}

// A check that fails sends the request back to AWAITING_UPLOAD saying
// what to fix, without moving its deadline; once fixed, a second
// confirmation passes.
func TestUploadFailedCheckThenPass(t *testing.T) {
	h := newUploadHarness(t)
	h.at(time.Hour, func() { h.upload("visits.csv", uploadedFiles["visits.csv"]) })
	first := h.confirmAt(2*time.Hour, confirmationOf(testRequester, uploadedFiles))
	var expires time.Time
	h.at(2*time.Hour+time.Minute, func() {
		requireConfirmed(t, first)
		st := h.state()
		assert.Equal(t, model.StateAwaitingUpload, st.State)
		assert.Contains(t, st.Error, "check files failed")
		assert.Contains(t, st.Error, "missing: data/patients.csv (upload them, or leave them out of the confirmation)")
		assert.Contains(t, st.Error, "then confirm again")
		require.Len(t, st.Checks, 2, "nothing is fingerprinted while the files are wrong")
		assert.False(t, st.Checks[0].Passed)
		assert.Empty(t, st.Files)
		assert.Empty(t, st.ManifestDigest)
		require.NotNil(t, st.ExpiresAt)
		expires = *st.ExpiresAt
		assert.Equal(t, DefaultUploadExpiry, expires.Sub(st.CreatedAt), "a failed check does not move the deadline")
		requirePending(t, st)
		d := Details(st)
		assert.Contains(t, d, "**Reason:** check files failed")
		assert.Contains(t, d, "- check `files`: FAILED: ")
	})
	h.at(3*time.Hour, func() { h.upload("data/patients.csv", uploadedFiles["data/patients.csv"]) })
	second := h.confirmAt(4*time.Hour, confirmationOf(testRequester, uploadedFiles))
	h.at(4*time.Hour+time.Minute, func() {
		requireConfirmed(t, second)
		st := h.state()
		requireWaiting(t, st, 0)
		assert.Empty(t, st.Error)
		require.Len(t, st.Checks, 3)
		assert.Equal(t, expectedUploadRecords(), filesByPath(st.Files))
	})
	h.decideAt(5*time.Hour, approve(stageEng, "dana"))
	h.decideAt(6*time.Hour, approve(stageIG, "ian"))
	h.runUpload(testUploadInput())
	assert.Equal(t, model.StateCompleted, h.uploadResult().State)
	assert.Equal(t, 2, h.attempts("CheckUpload"))
	h.requireStagingClean()
}

// requirePending checks that no stage has opened yet.
func requirePending(t *testing.T, st model.RequestStatus) {
	t.Helper()
	for _, s := range st.Stages {
		assert.Equal(t, model.StagePending, s.State, "stage %s", s.Name)
	}
}

// Never confirmed: at ExpiresAt the request expires and its files go.
func TestUploadExpiry(t *testing.T) {
	h := newUploadHarness(t)
	h.at(time.Hour, h.uploadAll)
	h.at(DefaultUploadExpiry-time.Minute, func() {
		assert.Equal(t, model.StateAwaitingUpload, h.state().State)
		assert.NotEmpty(t, storeFiles(t, h.staging, testUploadID), "the uploaded files are in staging until the request ends")
	})
	h.runUpload(testUploadInput())
	res := h.uploadResult()
	assert.Equal(t, model.StateExpired, res.State)
	st := h.state()
	assert.Equal(t, model.StateExpired, st.State)
	assert.Contains(t, st.Error, "the upload was not confirmed with files that pass their checks by "+st.ExpiresAt.UTC().Format(time.RFC3339))
	assert.Contains(t, st.Error, "its files were removed; start a new upload")
	require.NotNil(t, st.FinishedAt)
	assert.Equal(t, DefaultUploadExpiry, st.FinishedAt.Sub(st.CreatedAt))
	assert.Zero(t, h.attempts("CheckUpload"))
	assert.GreaterOrEqual(t, h.attempts("DeleteArea"), 1)
	h.requireStagingClean()
	requireStoreEmpty(t, h.workspaces, "workspace")
}

// A failed check does not buy time: the request still expires at the
// deadline set when it opened (here a shorter one), saying why the files
// were not accepted.
func TestUploadExpiresAfterFailedCheck(t *testing.T) {
	h := newUploadHarness(t)
	in := testUploadInput()
	in.ExpireAfter = 6 * time.Hour
	h.at(time.Hour, h.uploadAll)
	wrong := confirmationOf(testRequester, uploadedFiles)
	wrong.Files[0].Size++ // data/patients.csv
	h.confirmAt(5*time.Hour, wrong)
	h.runUpload(in)
	res := h.uploadResult()
	assert.Equal(t, model.StateExpired, res.State)
	st := h.state()
	require.NotNil(t, st.FinishedAt)
	assert.Equal(t, 6*time.Hour, st.FinishedAt.Sub(st.CreatedAt), "the deadline is where it was before the failed check")
	assert.Contains(t, st.Error, "(6h0m0s after the request opened)")
	assert.Contains(t, st.Error, "the last confirmation's check files failed")
	assert.Contains(t, st.Error, "wrong size: data/patients.csv")
	assert.Equal(t, 1, h.attempts("CheckUpload"))
	h.requireStagingClean()
}

// The requester, or a member of the policy's roles, may cancel while the
// request waits for its files; a stranger may not.
func TestUploadCancelWhileAwaitingUpload(t *testing.T) {
	for _, by := range []string{testRequester, "dana"} {
		t.Run(by, func(t *testing.T) {
			h := newUploadHarness(t)
			h.at(time.Hour, h.uploadAll)
			stranger := h.cancelAt(2*time.Hour, model.CancelRequest{By: "mallory"})
			h.at(2*time.Hour+time.Minute, func() {
				requireRefused(t, stranger, "mallory may not cancel request "+testUploadID)
				assert.Equal(t, model.StateAwaitingUpload, h.state().State)
			})
			cancel := h.cancelAt(3*time.Hour, model.CancelRequest{By: by, Reason: "wrong files"})
			h.runUpload(testUploadInput())
			requireAccepted(t, cancel)
			var cr CancelResult
			cancel.decodeResult(t, &cr)
			assert.Equal(t, model.StateCancelled, cr.State)
			assert.Equal(t, model.StateCancelled, h.uploadResult().State)
			st := h.state()
			assert.Equal(t, by, st.CancelledBy)
			assert.Equal(t, "wrong files", st.CancelReason)
			assert.Zero(t, h.attempts("CheckUpload"))
			assert.GreaterOrEqual(t, h.attempts("DeleteArea"), 1)
			h.requireStagingClean()
		})
	}
}

// Only the requester confirms, only while the request waits for files, and
// only a list of clean, distinct paths; a refusal changes nothing.
func TestUploadConfirmRefusals(t *testing.T) {
	h := newUploadHarness(t)
	h.at(time.Hour, h.uploadAll)
	dana := h.confirmAt(2*time.Hour, confirmationOf("dana", uploadedFiles))
	empty := h.confirmAt(2*time.Hour+time.Minute, model.UploadConfirmation{By: testRequester})
	escaping := h.confirmAt(2*time.Hour+2*time.Minute, model.UploadConfirmation{By: testRequester, Files: []model.ExpectedFile{{Path: "../visits.csv", Size: 1}}})
	bookkeeping := h.confirmAt(2*time.Hour+3*time.Minute, model.UploadConfirmation{By: testRequester, Files: []model.ExpectedFile{{Path: ".uploads/x.json", Size: 1}}})
	h.at(2*time.Hour+4*time.Minute, func() {
		requireRefused(t, dana, "dana may not confirm request "+testUploadID+": only its requester (rita)")
		requireRefused(t, empty, "files: empty")
		requireRefused(t, escaping, "files[0].path")
		requireRefused(t, bookkeeping, "upload bookkeeping")
		st := h.state()
		assert.Equal(t, model.StateAwaitingUpload, st.State)
		assert.Empty(t, st.Checks)
		assert.Zero(t, h.attempts("CheckUpload"))
	})
	ok := h.confirmAt(3*time.Hour, confirmationOf(testRequester, uploadedFiles))
	again := h.confirmAt(4*time.Hour, confirmationOf(testRequester, uploadedFiles))
	h.at(4*time.Hour+time.Minute, func() {
		requireConfirmed(t, ok)
		requireRefused(t, again, "is AWAITING_APPROVAL: an upload is confirmed only while it is AWAITING_UPLOAD")
	})
	h.decideAt(5*time.Hour, approve(stageEng, "dana"))
	h.decideAt(6*time.Hour, approve(stageIG, "ian"))
	h.runUpload(testUploadInput())
	assert.Equal(t, model.StateCompleted, h.uploadResult().State)
	assert.Equal(t, 1, h.attempts("CheckUpload"))
}

// Roles an entry point attests count only when the directory trusts them:
// zed and yan are in no roster, but their sign-in says they hold the
// stages' roles. A Signal's roles never count.
func TestUploadAttestedRoles(t *testing.T) {
	attested := func(d model.DecisionRequest, roles ...string) model.DecisionRequest {
		d.Roles = roles
		return d
	}
	t.Run("not trusted", func(t *testing.T) {
		h := newUploadHarness(t)
		h.at(time.Hour, h.uploadAll)
		h.confirmAt(2*time.Hour, confirmationOf(testRequester, uploadedFiles))
		zed := h.decideAt(3*time.Hour, attested(approve(stageEng, "zed"), roleEng))
		cancel := h.cancelAt(3*time.Hour+time.Minute, model.CancelRequest{By: "zed", Roles: []string{roleEng}})
		h.at(3*time.Hour+2*time.Minute, func() {
			requireRefused(t, zed, `zed is not a member of role data-engineer in the directory, so cannot decide stage "data-engineering"`)
			requireRefused(t, cancel, "zed may not cancel")
			requireWaiting(t, h.state(), 0)
			h.env.CancelWorkflow()
		})
		h.runUpload(testUploadInput())
	})
	t.Run("trusted", func(t *testing.T) {
		h := newUploadHarness(t)
		h.acts.Policies.AttestedRoles = true
		h.at(time.Hour, h.uploadAll)
		h.confirmAt(2*time.Hour, confirmationOf(testRequester, uploadedFiles))
		// A Signal carries no attested roles, whatever its payload says.
		h.signalAt(3*time.Hour, attested(approve(stageEng, "zed"), roleEng))
		h.at(3*time.Hour+time.Minute, func() {
			st := h.state()
			requireWaiting(t, st, 0)
			require.Len(t, st.Refused, 1)
			assert.Contains(t, st.Refused[0].Reason, "zed is not a member of role data-engineer in the directory nor among the roles their sign-in attests")
		})
		wrongRole := h.decideAt(4*time.Hour, attested(approve(stageEng, "zed"), roleIG))
		zed := h.decideAt(5*time.Hour, attested(approve(stageEng, "zed"), roleEng))
		yan := h.decideAt(6*time.Hour, attested(approve(stageIG, "yan"), roleIG))
		h.runUpload(testUploadInput())
		requireRefused(t, wrongRole, "nor among the roles their sign-in attests")
		requireAccepted(t, zed)
		requireAccepted(t, yan)
		assert.Equal(t, model.StateCompleted, h.uploadResult().State)
		st := h.state()
		assert.Equal(t, "zed", st.Stages[0].Decisions[0].By)
		assert.Equal(t, "yan", st.Stages[1].Decisions[0].By)
	})
}

// requireUploadFailed checks that the upload ended FAILED with an
// UploadFailed error whose message contains every want.
func requireUploadFailed(t *testing.T, h *harness, want ...string) model.RequestStatus {
	t.Helper()
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app), "got %v", err)
	assert.Equal(t, ErrTypeUploadFailed, app.Type())
	assert.True(t, app.NonRetryable())
	var res UploadResult
	require.NoError(t, app.Details(&res))
	assert.Equal(t, model.StateFailed, res.State)
	st := h.state()
	assert.Equal(t, model.StateFailed, st.State)
	for _, w := range want {
		assert.Contains(t, st.Error, w)
	}
	return st
}

// The input is checked inside the workflow, each problem named.
func TestUploadInputValidation(t *testing.T) {
	h := newUploadHarness(t)
	in := testUploadInput()
	in.DataSource.Spec.Type = model.TypeImport
	in.DataSource.Spec.Objects = []model.Object{{File: &model.FileObject{Path: "a.csv", Connection: "pvc-clinic-notes"}}}
	in.Workspace = "Not A Workspace"
	in.Requester = " "
	in.Limits.MaxFileSize = -1
	in.ExpireAfter = -time.Hour
	h.runUpload(in)
	requireUploadFailed(t, h,
		`spec.type: an upload needs a data source of type Uploaded, found "Import"`,
		"spec.objects: an Uploaded data source lists no objects (found 1)",
		`workspace: invalid workspace "Not A Workspace"`,
		"requester: missing: say who asks for the upload",
		"limits.max_file_size: -1 is negative",
		"expire_after: -1h0m0s is negative")
	assert.Zero(t, h.attempts("ResolvePolicy"))
	h.requireStagingClean()
}

// A policy the project may not use fails the upload before anyone uploads.
func TestUploadPolicyNotAllowed(t *testing.T) {
	h := newUploadHarness(t)
	in := testUploadInput()
	in.Policy = policyTwoPerson
	h.runUpload(in)
	requireUploadFailed(t, h, "choosing the approval policy failed", `policy "two-person" is not allowed for upload requests`)
	assert.Equal(t, 1, h.attempts("ResolvePolicy"))
}

// A cancel accepted while the files are being checked stops the check and
// ends the request CANCELLED, its files removed.
func TestUploadCancelWhileChecking(t *testing.T) {
	h := newUploadHarness(t)
	started, stalled := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stalled) })
	h.env.OnActivity(h.acts.CheckUpload, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.CheckUploadInput) (activities.CheckUploadResult, error) {
			close(started)
			// (The test environment resolves a cancelled activity's future
			// at once and never cancels its context: stall until the test
			// ends.)
			select {
			case <-ctx.Done():
			case <-stalled:
			}
			return activities.CheckUploadResult{}, temporal.NewCanceledError()
		})
	h.at(time.Hour, h.uploadAll)
	h.confirmAt(2*time.Hour, confirmationOf(testRequester, uploadedFiles))
	var cancel *outcome
	// While CheckUpload runs, the test clock moves with the wall clock.
	h.at(2*time.Hour+100*time.Millisecond, func() {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Error("CheckUpload did not start")
		}
		require.Equal(t, model.StateChecking, h.state().State)
		cancel = &outcome{}
		h.update(UpdateCancel, model.CancelRequest{By: testRequester, Reason: "uploaded the wrong folder"}, cancel)
	})
	h.runUpload(testUploadInput())
	require.NotNil(t, cancel)
	requireAccepted(t, cancel)
	assert.Equal(t, model.StateCancelled, h.uploadResult().State)
	st := h.state()
	assert.Equal(t, model.StateCancelled, st.State)
	assert.Empty(t, st.Files)
	h.requireStagingClean()
}
