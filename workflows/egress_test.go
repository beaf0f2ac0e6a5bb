package workflows

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/secrets"
)

const (
	egressID          = "egress-test-1"
	egressPolicy      = "egress-two-checkers"
	egressStage       = "output-checking"
	roleChecker       = "output-checker"
	egressDestination = "outbox"
	signingKeyName    = "egress-signing-key"
)

// egressFiles are the workspace's outputs, under ws-alpha/.
var egressFiles = map[string]string{
	"outputs/table1.csv": "clinic,visits\nnorth,120\nsouth,98\n",
	"outputs/figure.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>\n",
}

type egressHarness struct {
	*harness
	dest *localstore.Store
	pub  ed25519.PublicKey
}

// twoCheckerPolicy is the default egress policy: two independent checkers.
func twoCheckerPolicy() model.Policy {
	return model.Policy{Name: egressPolicy, Version: "1", Stages: []model.Stage{
		{Name: egressStage, Role: roleChecker, Approvals: 2, Independent: true, Deadline: model.Duration(120 * time.Hour)},
	}}
}

// newEgressHarness is a harness whose workspace holds egressFiles, with an
// egress destination (a local folder), a signing key, output checkers
// carol and chris, and pol as the egress policy.
func newEgressHarness(t *testing.T, pol model.Policy) *egressHarness {
	h := newHarness(t)
	tmp := t.TempDir()
	dest, err := localstore.New(filepath.Join(tmp, "outbox"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = dest.Close() })
	priv, pubPEM, err := releasemanifest.GenerateKey()
	require.NoError(t, err)
	pub, err := releasemanifest.ParsePublicKey(pubPEM)
	require.NoError(t, err)
	secretDir := filepath.Join(tmp, "secrets")
	require.NoError(t, os.MkdirAll(secretDir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(secretDir, signingKeyName), priv, 0o600))

	book := h.acts.Policies
	book.Policies[pol.Name] = pol
	book.Rules = append(book.Rules, model.PolicyRule{Project: "*", Kind: model.KindEgress, Policies: []string{pol.Name}})
	book.Roster["carol"] = []string{roleChecker}
	book.Roster["chris"] = []string{roleChecker}
	book.Roster["cody"] = []string{roleChecker}
	require.NoError(t, book.Validate())
	h.acts.Destinations = map[string]activities.EgressDestination{egressDestination: {Store: dest, Description: "test outbox", Revocable: true}}
	h.acts.SigningKey = signingKeyName
	h.acts.Secrets = &secrets.Provider{Dir: secretDir, NoEnv: true}
	h.env.RegisterWorkflowWithOptions(EgressWorkflow, workflow.RegisterOptions{Name: EgressWorkflowName})
	h.env.RegisterWorkflowWithOptions(RetentionWorkflow, workflow.RegisterOptions{Name: RetentionWorkflowName})
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: egressID, TaskQueue: TaskQueue})
	eh := &egressHarness{harness: h, dest: dest, pub: pub}
	for rel, content := range egressFiles {
		eh.putWorkspaceFile(rel, content)
	}
	return eh
}

// putWorkspaceFile writes (or replaces) a file of workspace ws-alpha.
func (h *egressHarness) putWorkspaceFile(rel, content string) {
	w, err := h.workspaces.Create(context.Background(), testWorkspace+"/"+rel, nil)
	require.NoError(h.t, err)
	_, err = w.Write([]byte(content))
	require.NoError(h.t, err)
	require.NoError(h.t, w.Commit())
}

func egressInput(files ...string) EgressInput {
	if len(files) == 0 {
		files = []string{"outputs/figure.svg", "outputs/table1.csv"}
	}
	return EgressInput{Requester: testRequester, Via: "cli", Request: model.EgressRequestInput{
		Workspace: testWorkspace, Project: testProject, Destination: egressDestination, Files: files,
		Justification: "Figures for the paper."}}
}

func (h *egressHarness) runEgress(in EgressInput) EgressResult {
	h.t.Helper()
	h.env.ExecuteWorkflow(EgressWorkflowName, in)
	require.True(h.t, h.env.IsWorkflowCompleted(), "the workflow did not complete")
	require.NoError(h.t, h.env.GetWorkflowError())
	var res EgressResult
	require.NoError(h.t, h.env.GetWorkflowResult(&res))
	return res
}

// verdicts builds a review of every open file from path -> verdict ("" for
// approve); the turn and digest are read from the state when it is sent.
type verdicts map[string]string

func (h *egressHarness) reviewAt(at time.Duration, by string, v verdicts) *outcome {
	o := &outcome{}
	h.at(at, func() { h.update(UpdateReview, h.review(by, v), o) })
	return o
}

func (h *egressHarness) review(by string, v verdicts) model.EgressReview {
	st := h.state()
	rv := model.EgressReview{Stage: egressStage, By: by, Turn: st.Egress.Turn, ManifestDigest: st.ManifestDigest, Via: "cli"}
	paths := st.Egress.OpenFiles()
	if len(v) > 0 {
		paths = sortedKeys(v)
	}
	for _, p := range paths {
		verdict := v[p]
		if verdict == "" {
			verdict = model.VerdictApprove
		}
		fr := model.FileReview{Path: p, Verdict: verdict}
		if verdict != model.VerdictApprove {
			fr.Comment = "rows with fewer than ten people"
		}
		rv.Files = append(rv.Files, fr)
	}
	return rv
}

func (h *egressHarness) revokeAt(at time.Duration, by, reason string) *outcome {
	o := &outcome{}
	h.at(at, func() { h.update(UpdateRevoke, model.Revocation{By: by, Reason: reason, Via: "cli"}, o) })
	return o
}

func TestEgressTwoIndependentCheckersReleaseSignedManifestThenRevoke(t *testing.T) {
	h := newEgressHarness(t, twoCheckerPolicy())
	var beforeSecond, released model.RequestStatus
	var first, second ReviewResult
	var got map[string][]byte
	c1 := h.reviewAt(time.Minute, "carol", nil)
	h.at(2*time.Minute, func() {
		beforeSecond = h.state()
		first = ReviewResult{}
		c1.decodeResult(t, &first)
	})
	selfReview := &outcome{}
	h.at(3*time.Minute, func() { h.update(UpdateReview, h.review(testRequester, nil), selfReview) })
	again := h.reviewAt(3*time.Minute, "carol", nil)
	c2 := h.reviewAt(4*time.Minute, "chris", nil)
	h.at(10*time.Minute, func() {
		released = h.state()
		got = storeFiles(t, h.dest, egressID)
		c2.decodeResult(t, &second)
	})
	outsider := h.revokeAt(11*time.Minute, "ian", "not theirs")
	rv := h.revokeAt(12*time.Minute, "carol", "a figure shows a small count")
	res := h.runEgress(egressInput())

	// Independence: after carol's review, the request shows that one review
	// is in and nothing of what it says.
	assert.Equal(t, 1, first.ReviewsIn)
	assert.Empty(t, first.Files, "the first reviewer's answer reveals no verdict")
	require.Equal(t, model.StateAwaitingApproval, beforeSecond.State)
	assert.Equal(t, 1, beforeSecond.Egress.ReviewsIn)
	assert.Equal(t, 2, beforeSecond.Egress.ReviewsNeeded)
	assert.Empty(t, beforeSecond.Egress.Reviews, "a checker querying before deciding sees no other review")
	for _, f := range beforeSecond.Egress.Files {
		assert.Equal(t, model.VerdictPending, f.Verdict, f.Path)
	}
	assert.NotContains(t, Details(beforeSecond), "carol", "the Temporal UI's details reveal no reviewer")
	requireRefused(t, selfReview, "checkers may not be the requester")
	requireRefused(t, again, "already reviewed turn 1")
	// The second review completes the round and reveals the verdicts.
	require.Len(t, second.Files, 2)
	for _, f := range second.Files {
		assert.Equal(t, model.VerdictApprove, f.Verdict)
	}

	require.Equal(t, model.StateReleased, released.State)
	require.Len(t, released.Egress.Reviews, 2)
	rel := released.Egress.Release
	require.NotNil(t, rel)
	assert.Equal(t, 2, rel.Files)
	// The destination holds exactly the approved bytes, a signed manifest
	// that verifies with the public key, and the crate.
	for rel, content := range egressFiles {
		assert.Equal(t, content, string(got[rel]), rel)
	}
	require.Contains(t, got, releasemanifest.FileName)
	require.Contains(t, got, releasemanifest.SignatureFileName)
	require.Contains(t, got, model.CrateFileName)
	m, err := releasemanifest.Verify(got[releasemanifest.FileName], got[releasemanifest.SignatureFileName], h.pub)
	require.NoError(t, err)
	assert.Equal(t, egressID, m.Request)
	assert.Equal(t, released.ManifestDigest, m.ManifestDigest)
	require.Len(t, m.Files, 2)
	for _, f := range m.Files {
		var by []string
		for _, a := range f.ApprovedBy {
			by = append(by, a.By)
		}
		assert.ElementsMatch(t, []string{"carol", "chris"}, by, f.Path)
	}
	assert.Equal(t, releasemanifest.KeyID(h.pub), rel.KeyID)
	h.requireStagingClean()

	requireRefused(t, outsider, "may not revoke")
	requireAccepted(t, rv)
	var revoked RevokeResult
	rv.decodeResult(t, &revoked)
	assert.Equal(t, model.StateRevoked, revoked.State)
	assert.Equal(t, "carol", revoked.Revocation.By)
	assert.GreaterOrEqual(t, revoked.Revocation.Removed, 2)
	assert.Equal(t, model.StateRevoked, res.State)
	requireStoreEmpty(t, h.dest, "the destination after revocation")
	final := h.state()
	require.NotNil(t, final.Egress.Revocation)
	assert.Equal(t, "a figure shows a small count", final.Egress.Revocation.Reason)
}

func TestEgressChangesRequestedThenResubmittedTurn(t *testing.T) {
	pol := twoCheckerPolicy()
	pol.Retention.Released = model.Duration(30 * 24 * time.Hour)
	h := newEgressHarness(t, pol)
	h.reviewAt(time.Minute, "carol", nil)
	h.reviewAt(2*time.Minute, "chris", verdicts{"outputs/figure.svg": "", "outputs/table1.csv": model.VerdictRequestChanges})
	var returned, turn2 model.RequestStatus
	early := &outcome{}
	h.at(3*time.Minute, func() {
		returned = h.state()
		h.update(UpdateReview, h.review("cody", nil), early)
	})
	resub := &outcome{}
	h.at(4*time.Hour, func() {
		h.putWorkspaceFile("outputs/table1.csv", "clinic,visits\nall,218\n")
		h.update(UpdateResubmit, model.Resubmission{By: testRequester, Comment: "merged the clinics", Via: "cli"}, resub)
	})
	stale := &outcome{}
	h.at(5*time.Hour, func() {
		turn2 = h.state()
		rv := h.review("cody", verdicts{"outputs/figure.svg": "", "outputs/table1.csv": ""})
		h.update(UpdateReview, rv, stale)
	})
	h.reviewAt(6*time.Hour, "carol", nil)
	h.reviewAt(7*time.Hour, "cody", nil)
	var got map[string][]byte
	var final model.RequestStatus
	h.at(8*time.Hour, func() {
		got = storeFiles(t, h.dest, egressID)
		final = h.state()
	})
	res := h.runEgress(egressInput())

	require.Equal(t, model.StateReturned, returned.State)
	assert.Contains(t, returned.Error, "outputs/table1.csv")
	assert.Len(t, returned.Egress.Reviews, 2, "the reviews are revealed once both are in")
	requireRefused(t, early, "only while it is AWAITING_APPROVAL")
	requireAccepted(t, resub)

	require.Equal(t, 2, turn2.Egress.Turn)
	byPath := map[string]model.EgressFile{}
	for _, f := range turn2.Egress.Files {
		byPath[f.Path] = f
	}
	assert.Equal(t, model.VerdictApprove, byPath["outputs/figure.svg"].Verdict, "an unchanged approved file keeps its approval")
	assert.Equal(t, 1, byPath["outputs/figure.svg"].Turn)
	assert.Equal(t, model.VerdictPending, byPath["outputs/table1.csv"].Verdict, "the changed file is reviewed again")
	assert.Equal(t, []string{"outputs/table1.csv"}, turn2.Egress.Turns[1].Changed)
	requireRefused(t, stale, "outputs/figure.svg is not open in turn 2")

	// Released (carol and cody approved the new table), and the workflow
	// ended when the released copy's retention ran out.
	assert.Equal(t, model.StateReleased, res.State)
	assert.Equal(t, 2, res.Files)
	require.Equal(t, model.StateReleased, final.State)
	assert.Equal(t, "clinic,visits\nall,218\n", string(got["outputs/table1.csv"]), "the resubmitted bytes are released")
	require.Len(t, final.Deletions, 1)
	d := final.Deletions[0]
	assert.Equal(t, activities.ZoneDestination, d.Zone)
	assert.Equal(t, egressDestination, d.Destination)
	assert.Equal(t, final.Egress.Release.At.Add(30*24*time.Hour), d.DueAt)
	m, err := releasemanifest.Verify(got[releasemanifest.FileName], got[releasemanifest.SignatureFileName], h.pub)
	require.NoError(t, err)
	// The retention deletion ran when it was due.
	requireStoreEmpty(t, h.dest, "the destination after its retention")
	for _, f := range m.Files {
		if f.Path == "outputs/table1.csv" {
			require.Len(t, f.ApprovedBy, 2)
			assert.Equal(t, 2, f.ApprovedBy[0].Turn)
		}
	}
}

func TestEgressPartialRejectionReleasesOnlyApprovedFiles(t *testing.T) {
	h := newEgressHarness(t, twoCheckerPolicy())
	h.reviewAt(time.Minute, "carol", verdicts{"outputs/figure.svg": "", "outputs/table1.csv": model.VerdictReject})
	h.reviewAt(2*time.Minute, "chris", nil)
	h.revokeAt(time.Hour, testRequester, "wrong figure")
	var released model.RequestStatus
	var got map[string][]byte
	h.at(30*time.Minute, func() { released, got = h.state(), storeFiles(t, h.dest, egressID) })
	h.runEgress(egressInput())

	require.Equal(t, model.StateReleased, released.State)
	_, leaked := got["outputs/table1.csv"]
	assert.False(t, leaked, "a rejected file never reaches the destination")
	m, err := releasemanifest.Verify(got[releasemanifest.FileName], got[releasemanifest.SignatureFileName], h.pub)
	require.NoError(t, err)
	require.Len(t, m.Files, 1)
	assert.Equal(t, "outputs/figure.svg", m.Files[0].Path)
	require.Len(t, m.Withheld, 1)
	assert.Equal(t, "outputs/table1.csv", m.Withheld[0].Path)
	assert.Equal(t, model.VerdictReject, m.Withheld[0].Verdict)
}

func TestEgressEveryFileRejectedKeepsStagingForItsGracePeriod(t *testing.T) {
	pol := twoCheckerPolicy()
	pol.Retention.StagingGrace = model.Duration(48 * time.Hour)
	h := newEgressHarness(t, pol)
	all := verdicts{"outputs/figure.svg": model.VerdictReject, "outputs/table1.csv": model.VerdictReject}
	h.reviewAt(time.Minute, "carol", all)
	h.reviewAt(2*time.Minute, "chris", all)
	var during map[string][]byte
	h.at(47*time.Hour, func() { during = storeFiles(t, h.staging, egressID) })
	res := h.runEgress(egressInput())

	assert.Equal(t, model.StateRejected, res.State)
	assert.Contains(t, res.Error, "every file was rejected")
	st := h.state()
	require.Len(t, st.Deletions, 1)
	d := st.Deletions[0]
	assert.Equal(t, activities.ZoneStaging, d.Zone)
	assert.Equal(t, st.FinishedAt.Add(48*time.Hour), d.DueAt)
	assert.Equal(t, egressID+"-delete-staging", d.WorkflowID)
	assert.Len(t, during, 2, "staging is kept until its grace period ends")
	h.requireStagingClean()
	requireStoreEmpty(t, h.dest, "the destination")
}

func TestEgressBlockingCheckReturnsAndFlagsAreShown(t *testing.T) {
	pol := twoCheckerPolicy()
	pol.Checks = &model.OutputChecks{
		Types: &model.OutputTypes{Allowed: []string{".csv", ".svg"}, OnFail: model.OnFailBlock},
		Rules: []model.OutputRule{{Name: "small-counts", Kind: model.RuleMinCellCount, Threshold: 10, OnFail: model.OnFailFlag}},
	}
	h := newEgressHarness(t, pol)
	h.putWorkspaceFile("outputs/notes.docx", "binary-ish")
	h.putWorkspaceFile("outputs/table1.csv", "clinic,visits\nnorth,7\nsouth,98\n")
	var blocked, flagged model.RequestStatus
	h.at(time.Minute, func() { blocked = h.state() })
	resub := &outcome{}
	h.at(2*time.Minute, func() {
		h.update(UpdateResubmit, model.Resubmission{By: testRequester, Files: []string{"outputs/table1.csv"}}, resub)
	})
	h.at(3*time.Minute, func() { flagged = h.state() })
	wd := &outcome{}
	byChecker := &outcome{}
	h.at(4*time.Minute, func() {
		h.update(UpdateWithdraw, model.Withdrawal{By: "carol"}, byChecker)
		h.update(UpdateWithdraw, model.Withdrawal{By: testRequester, Reason: "will aggregate further"}, wd)
	})
	res := h.runEgress(egressInput("outputs/notes.docx", "outputs/table1.csv"))

	require.Equal(t, model.StateReturned, blocked.State)
	assert.Contains(t, blocked.Error, "check types failed")
	assert.Contains(t, blocked.Error, "outputs/notes.docx")
	requireAccepted(t, resub)
	require.Equal(t, model.StateAwaitingApproval, flagged.State)
	require.Len(t, flagged.Egress.Files, 1)
	assert.Equal(t, []string{"small-counts"}, flagged.Egress.Files[0].Flags)
	requireRefused(t, byChecker, "only its requester")
	requireAccepted(t, wd)
	assert.Equal(t, model.StateWithdrawn, res.State)
	h.requireStagingClean()
}

func TestEgressReturnedExpiresAfterResubmitWithin(t *testing.T) {
	pol := twoCheckerPolicy()
	pol.ResubmitWithin = model.Duration(72 * time.Hour)
	h := newEgressHarness(t, pol)
	h.reviewAt(time.Minute, "carol", verdicts{"outputs/figure.svg": model.VerdictRequestChanges, "outputs/table1.csv": ""})
	h.reviewAt(2*time.Minute, "chris", nil)
	res := h.runEgress(egressInput())
	assert.Equal(t, model.StateExpired, res.State)
	assert.Contains(t, res.Error, "not resubmitted within 72h0m0s")
	st := h.state()
	assert.Equal(t, 72*time.Hour+2*time.Minute, st.FinishedAt.Sub(st.CreatedAt).Round(time.Minute))
}

func TestEgressRefusesAnUnknownDestinationAndBadInput(t *testing.T) {
	h := newEgressHarness(t, twoCheckerPolicy())
	in := egressInput("../etc/passwd")
	in.Request.Justification = ""
	h.env.ExecuteWorkflow(EgressWorkflowName, in)
	err := h.env.GetWorkflowError()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "files[0]")
	assert.Contains(t, err.Error(), "justification: missing")
}
