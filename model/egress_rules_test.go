package model

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestStandardEgressPolicyParses(t *testing.T) {
	p, err := LoadPolicy("../examples/policies/standard-egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Stages[0].Independent || p.Stages[0].Approvals != 2 {
		t.Fatalf("stage: %+v", p.Stages[0])
	}
	if p.Checks == nil || len(p.Checks.Rules) != 3 || p.Checks.Limits.MaxFiles != 50 {
		t.Fatalf("checks: %+v", p.Checks)
	}
	if time.Duration(p.Retention.Released) != 2160*time.Hour || time.Duration(p.Retention.StagingGrace) != 168*time.Hour {
		t.Fatalf("retention: %+v", p.Retention)
	}
}

func TestEgressPolicyRefusals(t *testing.T) {
	data, err := os.ReadFile("../examples/policies/standard-egress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to, want string }{
		{"onFail: flag", "onFail: warn", "spec.checks.rules[1].onFail"},
		{"kind: deny-path", "kind: deny-everything", "spec.checks.rules[2].kind: unknown rule kind"},
		{"threshold: 10", "threshold: 1", "spec.checks.rules[1].threshold"},
		{"[.csv,", "[csv,", "spec.checks.types.allowed[0]"},
		{`pattern: '\b`, `pattern: '(\b`, "spec.checks.rules[0].pattern"},
		{"released: 2160h", "released: -1h", "spec.retention.released"},
	} {
		doc := strings.Replace(string(data), c.from, c.to, 1)
		_, err := ParsePolicy("p.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: got %v, want an error naming %s", c.from, c.to, err, c.want)
		}
	}
}

func egressAwaiting() *RequestStatus {
	files := []FileRecord{{Path: "a.csv", Size: 3, SHA256: "aa"}, {Path: "b.csv", Size: 4, SHA256: "bb"}}
	r := &RequestStatus{ID: "egress-1", Kind: KindEgress, State: StateAwaitingApproval, Requester: "rita",
		Stages: []StageStatus{{Name: "output-checking", Role: "output-checker", Required: 2, State: StageWaiting}},
		Files:  files, ManifestDigest: ManifestDigest(files),
		Egress: &EgressStatus{Destination: "outbox", Turn: 1}}
	for _, f := range files {
		r.Egress.Files = append(r.Egress.Files, EgressFile{FileRecord: f, Turn: 1, Verdict: VerdictPending})
	}
	return r
}

var checkers = Directory{Members: map[string][]string{"output-checker": {"carol", "chris", "rita"}}}

func TestCheckReview(t *testing.T) {
	r := egressAwaiting()
	good := func() EgressReview {
		return EgressReview{Stage: "output-checking", By: "carol", Turn: 1, ManifestDigest: r.ManifestDigest,
			Files: []FileReview{{Path: "a.csv", Verdict: VerdictApprove}, {Path: "b.csv", Verdict: VerdictApprove}}}
	}
	if err := r.CheckReview(good(), checkers, nil); err != nil {
		t.Fatalf("a good review was refused: %v", err)
	}
	for name, c := range map[string]struct {
		edit    func(*EgressReview)
		inRound []EgressReviewRecord
		want    string
	}{
		"requester":     {edit: func(v *EgressReview) { v.By = "rita" }, want: "checkers may not be the requester"},
		"not a checker": {edit: func(v *EgressReview) { v.By = "ian" }, want: "not a member of role output-checker"},
		"twice":         {inRound: []EgressReviewRecord{{By: "carol"}}, want: "already reviewed turn 1"},
		"old turn":      {edit: func(v *EgressReview) { v.Turn = 0 }, want: "turn: this review is of turn 0"},
		"digest":        {edit: func(v *EgressReview) { v.ManifestDigest = "sha256:00" }, want: "does not match"},
		"missing file":  {edit: func(v *EgressReview) { v.Files = v.Files[:1] }, want: "no verdict for b.csv"},
		"unknown file":  {edit: func(v *EgressReview) { v.Files[1].Path = "c.csv" }, want: `"c.csv" is not a file`},
		"two verdicts":  {edit: func(v *EgressReview) { v.Files[1].Path = "a.csv" }, want: "two verdicts"},
		"bad verdict":   {edit: func(v *EgressReview) { v.Files[0].Verdict = "ok" }, want: `"ok" is not a verdict`},
		"changes without why": {edit: func(v *EgressReview) { v.Files[0].Verdict = VerdictRequestChanges },
			want: "files[0].comment: missing"},
		"wrong stage": {edit: func(v *EgressReview) { v.Stage = "sign-off" }, want: `stage "sign-off" is not open`},
	} {
		rv := good()
		if c.edit != nil {
			c.edit(&rv)
		}
		err := r.CheckReview(rv, checkers, c.inRound)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
	r.State = StateReturned
	if err := r.CheckReview(good(), checkers, nil); err == nil || !strings.Contains(err.Error(), "only while it is AWAITING_APPROVAL") {
		t.Errorf("returned: %v", err)
	}
}

func TestNextTurnKeepsSettledVerdictsOfUnchangedFiles(t *testing.T) {
	e := &EgressStatus{Turn: 1, Files: []EgressFile{
		{FileRecord: FileRecord{Path: "a.csv", Size: 3, SHA256: "aa"}, Turn: 1, Verdict: VerdictApprove},
		{FileRecord: FileRecord{Path: "b.csv", Size: 4, SHA256: "bb"}, Turn: 1, Verdict: VerdictRequestChanges},
		{FileRecord: FileRecord{Path: "c.csv", Size: 5, SHA256: "cc"}, Turn: 1, Verdict: VerdictApprove},
		{FileRecord: FileRecord{Path: "d.csv", Size: 5, SHA256: "dd"}, Turn: 1, Verdict: VerdictReject},
	}}
	files, changed := e.NextTurn(2, []FileRecord{
		{Path: "a.csv", Size: 3, SHA256: "aa"}, // unchanged, approved: keeps it
		{Path: "b.csv", Size: 4, SHA256: "bb"}, // unchanged, changes asked: reviewed again
		{Path: "c.csv", Size: 6, SHA256: "c2"}, // changed: reviewed again
		{Path: "d.csv", Size: 5, SHA256: "dd"}, // unchanged, rejected: stays rejected
		{Path: "e.csv", Size: 1, SHA256: "ee"}, // new
	})
	want := map[string][2]any{"a.csv": {1, VerdictApprove}, "b.csv": {2, VerdictPending}, "c.csv": {2, VerdictPending},
		"d.csv": {1, VerdictReject}, "e.csv": {2, VerdictPending}}
	for _, f := range files {
		if w := want[f.Path]; f.Turn != w[0] || f.Verdict != w[1] {
			t.Errorf("%s: turn %d verdict %s, want %v", f.Path, f.Turn, f.Verdict, w)
		}
	}
	if strings.Join(changed, ",") != "c.csv,e.csv" {
		t.Errorf("changed = %v", changed)
	}
}

func TestCombineVerdicts(t *testing.T) {
	rv := func(v string) EgressReviewRecord {
		return EgressReviewRecord{Files: []FileReview{{Path: "a", Verdict: v}}}
	}
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{VerdictApprove, VerdictApprove}, VerdictApprove},
		{[]string{VerdictApprove, VerdictRequestChanges}, VerdictRequestChanges},
		{[]string{VerdictRequestChanges, VerdictReject}, VerdictReject},
	} {
		var rs []EgressReviewRecord
		for _, v := range c.in {
			rs = append(rs, rv(v))
		}
		if got := CombineVerdicts(rs, "a"); got != c.want {
			t.Errorf("%v: %s, want %s", c.in, got, c.want)
		}
	}
}

func TestRevocationWithdrawalResubmissionRules(t *testing.T) {
	r := egressAwaiting()
	if err := r.CheckRevocation(Revocation{By: "rita", Reason: "x"}, checkers); err == nil || !strings.Contains(err.Error(), "only a RELEASED egress") {
		t.Errorf("revoke before release: %v", err)
	}
	r.State = StateReleased
	if err := r.CheckRevocation(Revocation{By: "carol"}, checkers); err == nil || !strings.Contains(err.Error(), "reason: missing") {
		t.Errorf("no reason: %v", err)
	}
	if err := r.CheckRevocation(Revocation{By: "ian", Reason: "x"}, checkers); err == nil || !strings.Contains(err.Error(), "may not revoke") {
		t.Errorf("outsider: %v", err)
	}
	for _, by := range []string{"rita", "carol"} {
		if err := r.CheckRevocation(Revocation{By: by, Reason: "x"}, checkers); err != nil {
			t.Errorf("%s may revoke: %v", by, err)
		}
	}
	if err := r.CheckWithdrawal(Withdrawal{By: "rita"}); err == nil || !strings.Contains(err.Error(), "revoke it instead") {
		t.Errorf("withdraw after release: %v", err)
	}
	r.State = StateReturned
	if err := r.CheckWithdrawal(Withdrawal{By: "carol"}); err == nil || !strings.Contains(err.Error(), "only its requester") {
		t.Errorf("withdraw by checker: %v", err)
	}
	if err := r.CheckResubmission(Resubmission{By: "rita", Files: []string{"../x"}}); err == nil || !strings.Contains(err.Error(), "files[0]") {
		t.Errorf("bad path: %v", err)
	}
	if err := r.CheckResubmission(Resubmission{By: "rita"}); err != nil {
		t.Errorf("resubmit: %v", err)
	}
}

func TestRetentionFor(t *testing.T) {
	p := Policy{Retention: Retention{Released: Duration(time.Hour)}}
	ds := &DataSource{}
	if d, _ := RetentionFor(p, ds); d != time.Hour {
		t.Errorf("policy: %s", d)
	}
	ds.Metadata.Annotations = map[string]string{RetentionAnnotation: "2160h"}
	if d, _ := RetentionFor(p, ds); d != 2160*time.Hour {
		t.Errorf("annotation: %s", d)
	}
	ds.Metadata.Annotations[RetentionAnnotation] = "90 days"
	if _, err := RetentionFor(p, ds); err == nil || !strings.Contains(err.Error(), RetentionAnnotation) {
		t.Errorf("bad annotation: %v", err)
	}
}
