package model

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var testFiles = []FileRecord{
	{Path: "patients.parquet", Size: 2048, SHA256: "9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0"},
	{Path: "attendances.parquet", Size: 4096, SHA256: "3e744b9dc39389baf0c5a0660589b8402f3dbb49b89b3e75f2c9355852a3c677"},
}

// testDirectory: rita (the requester) is also a data engineer; dana holds
// both roles.
var testDirectory = Directory{Members: map[string][]string{
	"data-engineer":          {"dana", "dave", "rita"},
	"information-governance": {"ian", "dana"},
}}

// awaitingRequest is an import waiting on the first stage of p.
func awaitingRequest(p Policy) *RequestStatus {
	r := &RequestStatus{
		ID:             "import-d4e6-001",
		Kind:           KindImport,
		State:          StateAwaitingApproval,
		DataSource:     "example-data-source-1",
		Project:        "d4e6",
		Workspace:      "advanced-generic-workspace",
		Requester:      "rita",
		Policy:         p.Name,
		Files:          append([]FileRecord(nil), testFiles...),
		ManifestDigest: ManifestDigest(testFiles),
		Stages:         NewStages(p),
	}
	r.Stages[0].State = StageWaiting
	return r
}

func decision(stage, by, word string) DecisionRequest {
	return DecisionRequest{Stage: stage, By: by, Decision: word, ManifestDigest: ManifestDigest(testFiles), Via: "cli"}
}

// accept checks d and applies it, failing the test if it is refused.
func accept(t *testing.T, r *RequestStatus, d DecisionRequest) bool {
	t.Helper()
	if err := r.CheckDecision(d, testDirectory); err != nil {
		t.Fatalf("%s's %s on %s refused: %v", d.By, d.Decision, d.Stage, err)
	}
	return r.ApplyDecision(d, time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
}

// refused asserts that err is a DecisionRefusal whose reason says each of want.
func refused(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("decision accepted, want refusal (%s)", strings.Join(want, "; "))
	}
	var dr *DecisionRefusal
	if !errors.As(err, &dr) {
		t.Fatalf("error is %T, want *DecisionRefusal: %v", err, err)
	}
	assertContains(t, dr.Reason, want...)
}

// openNext opens the stage after the one just settled, as the workflow does.
func openNext(r *RequestStatus, i int) {
	r.Stages[i].State = StageWaiting
}

func TestNewStages(t *testing.T) {
	p := twoStagePolicy(t)
	stages := NewStages(p)
	if len(stages) != 2 {
		t.Fatalf("stages = %+v", stages)
	}
	for i, s := range stages {
		if s.Name != p.Stages[i].Name || s.Role != p.Stages[i].Role || s.Required != p.Stages[i].Approvals || s.State != StagePending {
			t.Errorf("stage %d = %+v", i, s)
		}
		if s.Decisions == nil || len(s.Decisions) != 0 {
			t.Errorf("stage %d decisions should be empty and non-nil (JSON []): %#v", i, s.Decisions)
		}
	}
	r := &RequestStatus{State: StateAwaitingApproval, Stages: stages}
	if r.CurrentStage() != -1 || r.AwaitingRole() != "" {
		t.Errorf("no stage is open yet: current %d, awaiting %q", r.CurrentStage(), r.AwaitingRole())
	}
	r = awaitingRequest(p)
	if r.CurrentStage() != 0 || r.AwaitingRole() != "data-engineer" {
		t.Errorf("current %d, awaiting %q", r.CurrentStage(), r.AwaitingRole())
	}
	r.State = StateReleasing
	if r.AwaitingRole() != "" {
		t.Errorf("a request not awaiting approval awaits no role, got %q", r.AwaitingRole())
	}
}

func TestValidDecisionAccepted(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	if err := r.CheckDecision(decision("engineering", "dave", Approve), testDirectory); err != nil {
		t.Fatalf("a member's approval with the right digest is accepted: %v", err)
	}
	d := decision("engineering", "dave", Reject)
	d.Comment = "patients table has real NHS numbers"
	if err := r.CheckDecision(d, testDirectory); err != nil {
		t.Fatalf("a member's rejection with a comment is accepted: %v", err)
	}
}

func TestRuleRequesterNeverApproves(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	// rita is a data engineer, so only the requester rule stops her.
	refused(t, r.CheckDecision(decision("engineering", "rita", Approve), testDirectory),
		"rita requested this import", "requester never approves")
	rej := decision("engineering", "rita", Reject)
	rej.Comment = "changed my mind"
	refused(t, r.CheckDecision(rej, testDirectory), "requester never approves")
	if err := r.CheckDecision(decision("engineering", "dave", Approve), testDirectory); err != nil {
		t.Fatalf("control: another member is accepted: %v", err)
	}
}

func TestRuleOnlyRoleMembersDecide(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	// ian is in information-governance but not in data-engineer.
	refused(t, r.CheckDecision(decision("engineering", "ian", Approve), testDirectory),
		"ian is not a member of role data-engineer", `stage "engineering"`)
	refused(t, r.CheckDecision(decision("engineering", "mallory", Approve), testDirectory),
		"mallory is not a member of role data-engineer")
	// Role membership is judged by the directory passed in.
	refused(t, r.CheckDecision(decision("engineering", "dave", Approve), Directory{}), "not a member")
	if err := r.CheckDecision(decision("engineering", "dave", Approve), testDirectory); err != nil {
		t.Fatalf("control: a member is accepted: %v", err)
	}
}

func TestRuleOnePersonApprovesAtMostOneStage(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	if !accept(t, r, decision("engineering", "dana", Approve)) {
		t.Fatalf("a 1-approval stage is settled by one approval")
	}
	openNext(r, 1)
	// dana is also in information-governance, so only this rule stops her.
	refused(t, r.CheckDecision(decision("governance", "dana", Approve), testDirectory),
		`dana already approved stage "engineering"`, "one person approves at most one stage")
	if err := r.CheckDecision(decision("governance", "ian", Approve), testDirectory); err != nil {
		t.Fatalf("control: another governance member is accepted: %v", err)
	}
}

func TestRuleDistinctApprovals(t *testing.T) {
	p := twoStagePolicy(t)
	p.Stages[0].Approvals = 2
	r := awaitingRequest(p)
	if accept(t, r, decision("engineering", "dave", Approve)) {
		t.Fatalf("a 2-approval stage is not settled by one approval")
	}
	if r.Stages[0].State != StageWaiting || r.CurrentStage() != 0 {
		t.Fatalf("stage should still be waiting: %+v", r.Stages[0])
	}
	refused(t, r.CheckDecision(decision("engineering", "dave", Approve), testDirectory),
		`dave has already decided stage "engineering"`, "2 distinct approvers")
	if !accept(t, r, decision("engineering", "dana", Approve)) {
		t.Fatalf("the second distinct approval settles the stage")
	}
	if r.Stages[0].State != StageApproved || r.Stages[0].Approvals() != 2 {
		t.Errorf("stage = %+v", r.Stages[0])
	}
}

func TestRuleManifestDigest(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))

	wrong := decision("engineering", "dave", Approve)
	changed := append([]FileRecord(nil), testFiles...)
	changed[0].Size++
	wrong.ManifestDigest = ManifestDigest(changed)
	refused(t, r.CheckDecision(wrong, testDirectory), "manifest_digest "+wrong.ManifestDigest+" does not match", r.ManifestDigest)

	missing := decision("engineering", "dave", Approve)
	missing.ManifestDigest = ""
	refused(t, r.CheckDecision(missing, testDirectory), "manifest_digest: missing")

	// A missing digest is refused even when the request has none recorded.
	r.ManifestDigest = ""
	refused(t, r.CheckDecision(missing, testDirectory), "manifest_digest: missing")
}

func TestRuleRejectionNeedsComment(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	for _, comment := range []string{"", "   ", "\n\t"} {
		d := decision("engineering", "dave", Reject)
		d.Comment = comment
		refused(t, r.CheckDecision(d, testDirectory), "a rejection needs a comment")
	}
	d := decision("engineering", "dave", Reject)
	d.Comment = "wrong extract date"
	if err := r.CheckDecision(d, testDirectory); err != nil {
		t.Fatalf("control: a rejection with a comment is accepted: %v", err)
	}
	if err := r.CheckDecision(decision("engineering", "dave", Approve), testDirectory); err != nil {
		t.Fatalf("an approval needs no comment: %v", err)
	}
}

func TestRuleOnlyTheOpenStage(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	// A later stage, not reached yet; ian is a member of its role.
	refused(t, r.CheckDecision(decision("governance", "ian", Approve), testDirectory),
		`stage "governance" is pending`, `waiting on stage "engineering" (role data-engineer)`)

	accept(t, r, decision("engineering", "dana", Approve))
	openNext(r, 1)
	// An already approved stage; dave is a member of its role and has not decided.
	refused(t, r.CheckDecision(decision("engineering", "dave", Approve), testDirectory),
		`stage "engineering" is approved`, `waiting on stage "governance"`)
	if err := r.CheckDecision(decision("governance", "ian", Approve), testDirectory); err != nil {
		t.Fatalf("control: the open stage is accepted: %v", err)
	}

	// No stage open at all.
	r = awaitingRequest(twoStagePolicy(t))
	r.Stages[0].State = StagePending
	refused(t, r.CheckDecision(decision("engineering", "dave", Approve), testDirectory), "no stage is open")
}

func TestRuleUnknownStage(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	refused(t, r.CheckDecision(decision("security", "dave", Approve), testDirectory),
		`unknown stage "security"`, "engineering, governance")
	refused(t, r.CheckDecision(decision("", "dave", Approve), testDirectory), `unknown stage ""`)
}

func TestRuleDecisionWord(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	for _, word := range []string{"", "approved", "APPROVE", "yes", "return"} {
		d := decision("engineering", "dave", word)
		d.Comment = "a comment"
		refused(t, r.CheckDecision(d, testDirectory), "is not a decision", "approve or reject")
	}
}

func TestRuleWhoIsDeciding(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	for _, by := range []string{"", "  "} {
		refused(t, r.CheckDecision(decision("engineering", by, Approve), testDirectory), "by: missing")
	}
}

func TestRuleOnlyWhileAwaitingApproval(t *testing.T) {
	for _, st := range States {
		if st == StateAwaitingApproval {
			continue
		}
		t.Run(string(st), func(t *testing.T) {
			r := awaitingRequest(twoStagePolicy(t))
			r.State = st // stage 0 is still marked waiting: only the state rule stops the decision
			refused(t, r.CheckDecision(decision("engineering", "dave", Approve), testDirectory),
				"is "+string(st), "decisions are accepted only while it is AWAITING_APPROVAL")
		})
	}
}

func TestApplyDecision(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	t.Run("approve settles a one-approval stage", func(t *testing.T) {
		r := awaitingRequest(twoStagePolicy(t))
		d := decision("engineering", "dave", Approve)
		d.Comment = "looks right"
		if err := r.CheckDecision(d, testDirectory); err != nil {
			t.Fatal(err)
		}
		if !r.ApplyDecision(d, at) {
			t.Fatalf("ApplyDecision = false, want settled")
		}
		s := r.Stages[0]
		if s.State != StageApproved || s.Approvals() != 1 {
			t.Errorf("stage = %+v", s)
		}
		want := []DecisionRecord{{By: "dave", Decision: Approve, Comment: "looks right", At: at, ManifestDigest: ManifestDigest(testFiles), Via: "cli"}}
		if !reflect.DeepEqual(s.Decisions, want) {
			t.Errorf("decisions = %+v, want %+v", s.Decisions, want)
		}
		if r.Stages[1].State != StagePending || len(r.Stages[1].Decisions) != 0 {
			t.Errorf("the next stage is untouched until the workflow opens it: %+v", r.Stages[1])
		}
		if r.CurrentStage() != -1 {
			t.Errorf("no stage is open after the only open one settled")
		}
	})
	t.Run("reject settles with rejected", func(t *testing.T) {
		p := twoStagePolicy(t)
		p.Stages[0].Approvals = 3 // a rejection does not wait for the others
		r := awaitingRequest(p)
		d := decision("engineering", "dave", Reject)
		d.Comment = "contains identifiers"
		if err := r.CheckDecision(d, testDirectory); err != nil {
			t.Fatal(err)
		}
		if !r.ApplyDecision(d, at) {
			t.Fatalf("ApplyDecision = false, want settled")
		}
		s := r.Stages[0]
		if s.State != StageRejected || s.Approvals() != 0 || len(s.Decisions) != 1 || s.Decisions[0].Comment != "contains identifiers" {
			t.Errorf("stage = %+v", s)
		}
	})
	t.Run("approvals count only approvals", func(t *testing.T) {
		s := StageStatus{Decisions: []DecisionRecord{{Decision: Approve}, {Decision: Reject}, {Decision: Approve}}}
		if s.Approvals() != 2 {
			t.Errorf("Approvals = %d", s.Approvals())
		}
	})
}

func TestFullTwoStageApproval(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	if !accept(t, r, decision("engineering", "dave", Approve)) {
		t.Fatal("stage 1 not settled")
	}
	openNext(r, 1)
	if r.AwaitingRole() != "information-governance" {
		t.Errorf("awaiting %q", r.AwaitingRole())
	}
	// dave is not in information-governance; dana is, and has not approved yet.
	refused(t, r.CheckDecision(decision("governance", "dave", Approve), testDirectory), "not a member")
	if !accept(t, r, decision("governance", "dana", Approve)) {
		t.Fatal("stage 2 not settled")
	}
	for _, s := range r.Stages {
		if s.State != StageApproved {
			t.Errorf("stage %s is %s", s.Name, s.State)
		}
	}
}

func TestCheckCancel(t *testing.T) {
	cancel := func(by string) CancelRequest { return CancelRequest{By: by, Reason: "wrong dataset", Via: "cli"} }
	r := awaitingRequest(twoStagePolicy(t))

	if err := r.CheckCancel(cancel("rita"), testDirectory); err != nil {
		t.Errorf("the requester may cancel: %v", err)
	}
	if err := r.CheckCancel(cancel("dave"), testDirectory); err != nil {
		t.Errorf("a member of the open stage's role may cancel: %v", err)
	}
	if err := r.CheckCancel(cancel("ian"), testDirectory); err != nil {
		t.Errorf("a member of a later stage's role may cancel: %v", err)
	}
	refused(t, r.CheckCancel(cancel("sam"), testDirectory), "sam may not cancel", "only the requester (rita)")

	// A requester who holds none of the approval roles may still cancel.
	outsider := awaitingRequest(twoStagePolicy(t))
	outsider.Requester = "rob"
	if err := outsider.CheckCancel(cancel("rob"), testDirectory); err != nil {
		t.Errorf("a requester outside the roles may cancel: %v", err)
	}
	refused(t, outsider.CheckCancel(cancel("rita"), testDirectory.withoutRole("data-engineer")), "rita may not cancel")
	refused(t, r.CheckCancel(cancel(""), testDirectory), "by: missing")

	for _, st := range []State{StateExtracting, StateAwaitingUpload, StateChecking} {
		r.State = st
		if err := r.CheckCancel(cancel("rita"), testDirectory); err != nil {
			t.Errorf("the requester may cancel while %s: %v", st, err)
		}
	}

	r.State = StateReleasing
	refused(t, r.CheckCancel(cancel("rita"), testDirectory), "RELEASING", "can no longer be cancelled")
	refused(t, r.CheckCancel(cancel("dave"), testDirectory), "can no longer be cancelled")

	for _, st := range States {
		if !st.Terminal() {
			continue
		}
		r.State = st
		refused(t, r.CheckCancel(cancel("rita"), testDirectory), "has already ended "+string(st))
	}
}

func TestTerminalStates(t *testing.T) {
	terminal := map[State]bool{
		StateCompleted: true, StateReleased: true, StateRejected: true,
		StateFailed: true, StateCancelled: true, StateExpired: true,
		StateWithdrawn: true, StateRevoked: true,
	}
	for _, st := range States {
		if st.Terminal() != terminal[st] {
			t.Errorf("%s.Terminal() = %v", st, st.Terminal())
		}
	}
	if len(States) != 14 {
		t.Errorf("States lists %d states", len(States))
	}
}

func TestManifestDigestMatchesHandComputation(t *testing.T) {
	files := []FileRecord{
		{Path: "b/c.csv", Size: 2048, SHA256: "3e744b9dc39389baf0c5a0660589b8402f3dbb49b89b3e75f2c9355852a3c677"},
		{Path: "a.csv", Size: 10, SHA256: "9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0"},
	}
	manifest := "a.csv\t10\t9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0\n" +
		"b/c.csv\t2048\t3e744b9dc39389baf0c5a0660589b8402f3dbb49b89b3e75f2c9355852a3c677\n"
	sum := sha256.Sum256([]byte(manifest))
	want := "sha256:" + hex.EncodeToString(sum[:])
	if got := ManifestDigest(files); got != want {
		t.Errorf("ManifestDigest = %s, want %s", got, want)
	}
	// The same value computed outside Go (printf ... | sha256sum).
	if want != "sha256:c38169ac970829702e25bde267cad89ad6cfc3f7afc930c8e8bc10063cb2fa76" {
		t.Errorf("hand-computed digest = %s", want)
	}
	// No files: the digest of the empty string.
	if got := ManifestDigest(nil); got != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("ManifestDigest(nil) = %s", got)
	}
}

func TestManifestDigestOrderIndependent(t *testing.T) {
	files := []FileRecord{
		{Path: "z.csv", Size: 1, SHA256: "11"},
		{Path: "a/b.csv", Size: 2, SHA256: "22"},
		{Path: "a.csv", Size: 3, SHA256: "33"},
		{Path: "m/n/o.parquet", Size: 4, SHA256: "44"},
	}
	want := ManifestDigest(files)
	orders := [][]int{{3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}}
	for _, order := range orders {
		var perm []FileRecord
		for _, i := range order {
			perm = append(perm, files[i])
		}
		if got := ManifestDigest(perm); got != want {
			t.Errorf("order %v: %s, want %s", order, got, want)
		}
	}
	if files[0].Path != "z.csv" || files[3].Path != "m/n/o.parquet" {
		t.Errorf("ManifestDigest reordered its input: %+v", files)
	}
	// Even a path listed twice (which a manifest should never hold) does not
	// make the digest depend on the order.
	dup := []FileRecord{{Path: "a.csv", Size: 1, SHA256: "11"}, {Path: "a.csv", Size: 2, SHA256: "22"}}
	if ManifestDigest(dup) != ManifestDigest([]FileRecord{dup[1], dup[0]}) {
		t.Errorf("duplicate paths: digest depends on input order")
	}
}

func TestManifestDigestChangesWithAnyField(t *testing.T) {
	base := []FileRecord{
		{Path: "a.csv", Size: 10, SHA256: "9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0"},
		{Path: "b.csv", Size: 20, SHA256: "3e744b9dc39389baf0c5a0660589b8402f3dbb49b89b3e75f2c9355852a3c677"},
	}
	want := ManifestDigest(base)
	changes := map[string]func(f []FileRecord) []FileRecord{
		"size":     func(f []FileRecord) []FileRecord { f[1].Size = 21; return f },
		"digest":   func(f []FileRecord) []FileRecord { f[0].SHA256 = strings.Repeat("0", 64); return f },
		"path":     func(f []FileRecord) []FileRecord { f[0].Path = "c.csv"; return f },
		"added":    func(f []FileRecord) []FileRecord { return append(f, FileRecord{Path: "c.csv"}) },
		"removed":  func(f []FileRecord) []FileRecord { return f[:1] },
		"swapped":  func(f []FileRecord) []FileRecord { f[0].SHA256, f[1].SHA256 = f[1].SHA256, f[0].SHA256; return f },
		"size 0":   func(f []FileRecord) []FileRecord { f[0].Size = 0; return f },
		"renamed2": func(f []FileRecord) []FileRecord { f[1].Path = "dir/b.csv"; return f },
	}
	for name, change := range changes {
		f := change(append([]FileRecord(nil), base...))
		if got := ManifestDigest(f); got == want {
			t.Errorf("%s: digest did not change", name)
		}
	}
	// The encoding format is not part of what is approved.
	f := append([]FileRecord(nil), base...)
	f[0].EncodingFormat = "text/csv"
	if ManifestDigest(f) != want {
		t.Errorf("encoding format changed the digest")
	}
	if !strings.HasPrefix(want, "sha256:") || len(want) != len("sha256:")+64 {
		t.Errorf("digest form: %s", want)
	}
}

// withoutRole is a copy of d in which nobody holds role.
func (d Directory) withoutRole(role string) Directory {
	out := Directory{Members: map[string][]string{}}
	for r, m := range d.Members {
		if r != role {
			out.Members[r] = m
		}
	}
	return out
}
