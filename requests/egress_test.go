package requests

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/workflows"
)

func goodEgress() EgressStart {
	return EgressStart{
		Input: model.EgressRequestInput{Workspace: "ws-out", Project: "proj-e", Destination: "outbox",
			Files: []string{"results/table1.csv", "results/figure1.png"}, Justification: "Tables for the paper"},
		Requester: "rita", Via: "api",
	}
}

// Every refusal names its field; nothing reaches a server (the service
// has no client: reaching one would panic).
func TestStartEgressRefusals(t *testing.T) {
	svc := &Service{}
	for _, tc := range []struct {
		name  string
		edit  func(*EgressStart)
		field string
		want  string
	}{
		{"no workspace", func(s *EgressStart) { s.Input.Workspace = "" }, "workspace", "missing"},
		{"bad workspace", func(s *EgressStart) { s.Input.Workspace = "WS/1" }, "workspace", "invalid workspace"},
		{"no project", func(s *EgressStart) { s.Input.Project = " " }, "project", "missing"},
		{"bad project", func(s *EgressStart) { s.Input.Project = "Proj" }, "project", "invalid project id"},
		{"no destination", func(s *EgressStart) { s.Input.Destination = "" }, "destination", "egress/destinations"},
		{"a destination URL", func(s *EgressStart) { s.Input.Destination = "s3://bucket/x" }, "destination", "egress.destinations"},
		{"no files", func(s *EgressStart) { s.Input.Files = nil }, "files", "at least one file"},
		{"absolute path", func(s *EgressStart) { s.Input.Files = []string{"/etc/passwd"} }, "files[0]", "absolute path"},
		{"escaping path", func(s *EgressStart) { s.Input.Files = []string{"a.csv", "../b.csv"} }, "files[1]", "escapes its root"},
		{"unclean path", func(s *EgressStart) { s.Input.Files = []string{"./a.csv"} }, "files[0]", `send it as "a.csv"`},
		{"twice", func(s *EgressStart) { s.Input.Files = []string{"a.csv", "b.csv", "a.csv"} }, "files[2]", "listed twice (also files[0])"},
		{"reserved", func(s *EgressStart) { s.Input.Files = []string{model.CrateFileName} }, "files[0]", "Airlock writes its own"},
		{"no justification", func(s *EgressStart) { s.Input.Justification = "\n" }, "justification", "missing"},
		{"no requester", func(s *EgressStart) { s.Requester = "" }, "requester", "missing"},
		{"bad policy", func(s *EgressStart) { s.Policy = "Two Checkers" }, "policy", model.NameRule},
		{"bad id", func(s *EgressStart) { s.ID = "egress/../x" }, "id", "not a request id"},
		{"long id", func(s *EgressStart) { s.ID = strings.Repeat("a", 129) }, "id", "at most 128"},
	} {
		in := goodEgress()
		tc.edit(&in)
		_, err := svc.StartEgress(ctx(t), in)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal of %s mentioning %q", tc.name, err, tc.field, tc.want)
		}
	}
	if err := CheckEgressStart(goodEgress()); err != nil {
		t.Errorf("a good egress is refused: %v", err)
	}
	good := goodEgress()
	good.ID, good.Policy = "egress-paper-1", "egress-two"
	if err := CheckEgressStart(good); err != nil {
		t.Errorf("a good egress with an id and a policy is refused: %v", err)
	}
}

func TestEgressUpdateRefusals(t *testing.T) {
	svc := &Service{}
	digest := "sha256:" + strings.Repeat("a", 64)
	ok := model.EgressReview{By: "olga", Turn: 1, ManifestDigest: digest, Files: []model.FileReview{{Path: "a.csv", Verdict: model.VerdictApprove}}}
	for _, tc := range []struct {
		name  string
		edit  func(*model.EgressReview)
		field string
		want  string
	}{
		{"no reviewer", func(r *model.EgressReview) { r.By = "" }, "by", "missing"},
		{"no turn", func(r *model.EgressReview) { r.Turn = 0 }, "turn", "egress.turn"},
		{"no digest", func(r *model.EgressReview) { r.ManifestDigest = "" }, "manifest_digest", "missing"},
		{"no files", func(r *model.EgressReview) { r.Files = nil }, "files", "approve, request-changes, reject"},
		{"twice", func(r *model.EgressReview) { r.Files = append(r.Files, r.Files[0]) }, "files[1].path", "reviewed twice"},
		{"bad verdict", func(r *model.EgressReview) { r.Files[0].Verdict = "pending" }, "files[0].verdict", "not a verdict"},
		{"changes without a word", func(r *model.EgressReview) { r.Files[0].Verdict = model.VerdictRequestChanges }, "files[0].comment", "needs a comment"},
		{"reject without a word", func(r *model.EgressReview) { r.Files[0].Verdict = model.VerdictReject }, "files[0].comment", "needs a comment"},
	} {
		rv := ok
		rv.Files = append([]model.FileReview(nil), ok.Files...)
		tc.edit(&rv)
		_, err := svc.Review(ctx(t), "egress-x-abcdef", rv)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Error(), tc.want) {
			t.Errorf("review, %s: %v, want a refusal of %s mentioning %q", tc.name, err, tc.field, tc.want)
		}
	}
	// An overall comment answers for the files.
	withComment := ok
	withComment.Files = []model.FileReview{{Path: "a.csv", Verdict: model.VerdictReject}}
	withComment.Comment = "row-level data"
	if err := CheckReview(withComment); err != nil {
		t.Errorf("a rejection with an overall comment is refused: %v", err)
	}

	for _, tc := range []struct {
		name, field string
		call        func() error
	}{
		{"resubmit without a requester", "by", func() error {
			_, err := svc.Resubmit(ctx(t), "egress-x-abcdef", model.Resubmission{})
			return err
		}},
		{"resubmit a bad path", "files[1]", func() error {
			_, err := svc.Resubmit(ctx(t), "egress-x-abcdef", model.Resubmission{By: "rita", Files: []string{"a.csv", "/b.csv"}})
			return err
		}},
		{"withdraw without anyone", "by", func() error {
			_, err := svc.Withdraw(ctx(t), "egress-x-abcdef", model.Withdrawal{Reason: "r"})
			return err
		}},
		{"revoke without anyone", "by", func() error {
			_, err := svc.Revoke(ctx(t), "egress-x-abcdef", model.Revocation{Reason: "r"})
			return err
		}},
		{"revoke without a reason", "reason", func() error {
			_, err := svc.Revoke(ctx(t), "egress-x-abcdef", model.Revocation{By: "rita", Reason: " "})
			return err
		}},
		{"no id", "id", func() error {
			_, err := svc.Withdraw(ctx(t), "", model.Withdrawal{By: "rita"})
			return err
		}},
	} {
		var fe *FieldError
		if err := tc.call(); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a refusal of %s", tc.name, err, tc.field)
		}
	}
}

func TestEgressDetailsAreBounded(t *testing.T) {
	in := goodEgress()
	in.Input.Files = nil
	for i := range 120 {
		in.Input.Files = append(in.Input.Files, "out/file-"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+".csv")
	}
	d := egressDetails(in)
	if !strings.Contains(d, "Files (120)") || !strings.Contains(d, "... and 70 more") || strings.Count(d, "\n- `out/") != 50 {
		t.Errorf("details do not list 50 files and say how many more:\n%s", d)
	}
	if !strings.Contains(d, "Tables for the paper") || !strings.Contains(d, "`outbox`") {
		t.Errorf("details lack the justification or the destination:\n%s", d)
	}
}

// egressAirlock is one test's Airlock for egress: the service on its own
// task queue, a worker running the real egress workflow and activities
// over local stores (workspaces, staging, an outbox destination) and a
// signing key in a secrets folder.
type egressAirlock struct {
	svc        *Service
	client     client.Client
	workspaces *localstore.Store
	staging    *localstore.Store
	outboxDir  string
	pub        ed25519.PublicKey
}

func newEgressAirlock(t *testing.T) *egressAirlock {
	t.Helper()
	c := devServer(t).Client()
	tmp := t.TempDir()
	open := func(name string) *localstore.Store {
		s, err := localstore.New(filepath.Join(tmp, name))
		must(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	staging, workspaces, outbox := open("staging"), open("workspaces"), open("outbox")
	secretsDir := filepath.Join(tmp, "secrets")
	must(t, os.MkdirAll(secretsDir, 0o700))
	privPEM, pubPEM, err := releasemanifest.GenerateKey()
	must(t, err)
	must(t, os.WriteFile(filepath.Join(secretsDir, "egress-key"), privPEM, 0o600))
	pub, err := releasemanifest.ParsePublicKey(pubPEM)
	must(t, err)
	book := egressPolicyBook()
	must(t, book.Validate())
	acts := &activities.Activities{
		Staging: staging, Workspaces: workspaces, Policies: book,
		Secrets:      &secrets.Provider{Dir: secretsDir, NoEnv: true},
		Destinations: map[string]activities.EgressDestination{"outbox": {Store: outbox, Description: "test outbox", Revocable: true}},
		SigningKey:   "egress-key",
		Temporal:     c,
	}
	queue := "requests-egress-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.EgressWorkflow, workflow.RegisterOptions{Name: workflows.EgressWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.RetentionWorkflow, workflow.RegisterOptions{Name: workflows.RetentionWorkflowName})
	w.RegisterActivity(acts)
	must(t, w.Start())
	t.Cleanup(w.Stop)
	return &egressAirlock{svc: &Service{Client: c, TaskQueue: queue}, client: c, workspaces: workspaces, staging: staging,
		outboxDir: filepath.Join(tmp, "outbox"), pub: pub}
}

// egressPolicyBook: egress of any project goes through two independent
// output checkers, after a check that refuses key files.
func egressPolicyBook() *model.PolicyBook {
	return &model.PolicyBook{
		Policies: map[string]model.Policy{
			"egress-two": {Name: "egress-two", Version: "1",
				Stages: []model.Stage{{Name: "output-checking", Role: "output-checker", Approvals: 2, Independent: true, Deadline: model.Duration(72 * time.Hour)}},
				Checks: &model.OutputChecks{Rules: []model.OutputRule{{Name: "no-keys", Kind: model.RuleDenyPath, Paths: []string{"*.key"}, OnFail: model.OnFailBlock}}},
			},
		},
		Rules:  []model.PolicyRule{{Project: "*", Kind: model.KindEgress, Policies: []string{"egress-two"}}},
		Roster: map[string][]string{"rita": {"researcher"}, "olga": {"output-checker"}, "oscar": {"output-checker"}},
	}
}

// put writes a file into a workspace.
func (a *egressAirlock) put(t *testing.T, workspace, p, content string) {
	t.Helper()
	w, err := a.workspaces.Create(ctx(t), workspace+"/"+p, nil)
	must(t, err)
	_, err = w.Write([]byte(content))
	must(t, err)
	must(t, w.Commit())
}

// waitState polls Status until the request is in state.
func (a *egressAirlock) waitState(t *testing.T, id string, state model.State) model.RequestStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := a.svc.Status(ctx(t), id)
		must(t, err)
		if st.State == state {
			return st
		}
		if (st.State.Terminal() && !state.Terminal()) || time.Now().After(deadline) {
			t.Fatalf("request %s is %s (error %q), want %s", id, st.State, st.Error, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func approveAll(st model.RequestStatus) []model.FileReview {
	var out []model.FileReview
	for _, p := range st.Egress.OpenFiles() {
		out = append(out, model.FileReview{Path: p, Verdict: model.VerdictApprove})
	}
	return out
}

// TestEgressLifecycle takes an egress through the service: started, checked,
// reviewed by two independent checkers (one asks for changes), resubmitted,
// reviewed again, released with a signed manifest, and revoked.
func TestEgressLifecycle(t *testing.T) {
	a := newEgressAirlock(t)
	requester, project := unique("rita"), unique("proj-eg")
	a.put(t, "ws-out", "results/table1.csv", "clinic,n\nnorth,4\n")
	a.put(t, "ws-out", "results/figure1.png", "not really a png")
	in := EgressStart{Input: model.EgressRequestInput{Workspace: "ws-out", Project: project, Destination: "outbox",
		Files: []string{"results/table1.csv", "results/figure1.png"}, Justification: "Tables for the paper"}, Requester: requester, Via: "api"}
	id, err := a.svc.StartEgress(ctx(t), in)
	must(t, err)
	if !strings.HasPrefix(id, "egress-ws-out-") {
		t.Errorf("id %q does not start egress-ws-out-", id)
	}
	desc, err := a.client.DescribeWorkflowExecution(ctx(t), id, "")
	must(t, err)
	var summary string
	must(t, converter.GetDefaultDataConverter().FromPayload(desc.GetExecutionConfig().GetUserMetadata().GetSummary(), &summary))
	if want := "Egress of 2 file(s) from workspace ws-out (project " + project + ") to outbox, asked by " + requester; summary != want {
		t.Errorf("static summary %q, want %q", summary, want)
	}

	st := a.waitState(t, id, model.StateAwaitingApproval)
	if st.Kind != model.KindEgress || st.Egress == nil || st.Egress.Turn != 1 || len(st.Egress.OpenFiles()) != 2 || st.Egress.ReviewsNeeded != 2 {
		t.Fatalf("status %+v, egress %+v", st, st.Egress)
	}
	sum, err := a.svc.Summary(ctx(t), id)
	must(t, err)
	if sum.Kind != "egress" || sum.Project != project || sum.Workspace != "ws-out" || sum.Requester != requester {
		t.Errorf("summary %+v", sum)
	}

	review := func(by string, files []model.FileReview) (workflows.ReviewResult, error) {
		return a.svc.Review(ctx(t), id, model.EgressReview{By: by, Turn: st.Egress.Turn, ManifestDigest: st.ManifestDigest, Files: files, Via: "api"})
	}
	var refused *RefusedError
	if _, err := review(requester, approveAll(st)); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "checkers may not be the requester") {
		t.Errorf("the requester's review: %v, want a refusal", err)
	}
	res, err := review("olga", approveAll(st))
	must(t, err)
	if res.ReviewsIn != 1 || res.ReviewsNeeded != 2 || res.Files != nil || res.State != model.StateAwaitingApproval {
		t.Errorf("first review's result %+v: want 1 of 2 and no verdicts revealed", res)
	}
	// oscar, querying before he decides, does not see olga's review.
	st, err = a.svc.Status(ctx(t), id)
	must(t, err)
	if st.Egress.ReviewsIn != 1 || len(st.Egress.Reviews) != 0 || len(st.Egress.OpenFiles()) != 2 {
		t.Errorf("status after one independent review: %d in, reviews %+v, open %v", st.Egress.ReviewsIn, st.Egress.Reviews, st.Egress.OpenFiles())
	}
	res, err = review("oscar", []model.FileReview{
		{Path: "results/figure1.png", Verdict: model.VerdictApprove},
		{Path: "results/table1.csv", Verdict: model.VerdictRequestChanges, Comment: "suppress counts under 10"},
	})
	must(t, err)
	if res.State != model.StateReturned || len(res.Files) != 2 {
		t.Fatalf("second review's result %+v: want RETURNED with the verdicts", res)
	}

	// Only the requester resubmits; the fixed file is the only one reviewed again.
	if _, err := a.svc.Resubmit(ctx(t), id, model.Resubmission{By: "olga", Via: "api"}); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "only its requester") {
		t.Errorf("a checker's resubmission: %v", err)
	}
	a.put(t, "ws-out", "results/table1.csv", "clinic,n\nnorth,<10\n")
	rres, err := a.svc.Resubmit(ctx(t), id, model.Resubmission{By: requester, Comment: "suppressed", Via: "api"})
	must(t, err)
	if rres.Turn != 2 {
		t.Errorf("resubmission result %+v, want turn 2", rres)
	}
	st = a.waitState(t, id, model.StateAwaitingApproval)
	if open := st.Egress.OpenFiles(); len(open) != 1 || open[0] != "results/table1.csv" {
		t.Fatalf("open files in turn 2: %v, want the changed table only", open)
	}
	if _, err := a.svc.Review(ctx(t), id, model.EgressReview{By: "olga", Turn: 1, ManifestDigest: st.ManifestDigest, Files: approveAll(st)}); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "turn") {
		t.Errorf("a review of turn 1 in turn 2: %v", err)
	}
	_, err = review("olga", approveAll(st))
	must(t, err)
	res, err = review("oscar", approveAll(st))
	must(t, err)
	if res.State != model.StateReleasing && res.State != model.StateReleased {
		t.Errorf("last review's result %+v, want RELEASING", res)
	}
	st = a.waitState(t, id, model.StateReleased)
	if st.Egress.Release == nil || st.Egress.Release.Files != 2 {
		t.Fatalf("release %+v", st.Egress.Release)
	}

	// The released copy verifies against the signing key.
	m, err := releasemanifest.VerifyDir(filepath.Join(a.outboxDir, activities.EgressDestinationPrefix(id)), a.pub)
	must(t, err)
	if m.Request != id || len(m.Files) != 2 || m.ManifestDigest != model.ManifestDigest(st.Egress.FileRecords()) {
		t.Errorf("manifest %+v", m)
	}

	// Released: no withdrawal; a revocation needs a reason and the right person.
	if _, err := a.svc.Withdraw(ctx(t), id, model.Withdrawal{By: requester, Via: "api"}); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "revoke it instead") {
		t.Errorf("withdrawing a released egress: %v", err)
	}
	if _, err := a.svc.Revoke(ctx(t), id, model.Revocation{By: "mallory", Reason: "r", Via: "api"}); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "may not revoke") {
		t.Errorf("a stranger's revocation: %v", err)
	}
	vres, err := a.svc.Revoke(ctx(t), id, model.Revocation{By: requester, Reason: "wrong suppression", Via: "api"})
	must(t, err)
	if vres.State != model.StateRevoked || vres.Revocation.By != requester || vres.Revocation.Removed < 2 {
		t.Errorf("revocation result %+v", vres)
	}
	if left, err := os.ReadDir(filepath.Join(a.outboxDir, id)); err == nil && len(left) > 0 {
		t.Errorf("the outbox still holds %v after the revocation", left)
	}
	must(t, a.client.GetWorkflow(ctx(t), id, "").Get(ctx(t), nil))
	if _, err := a.svc.Revoke(ctx(t), id, model.Revocation{By: requester, Reason: "again", Via: "api"}); !errors.As(err, &refused) || refused.Reason != "request "+id+" has ended (REVOKED): it takes no more revocations" {
		t.Errorf("revoking a closed egress: %v", err)
	}
}

// TestEgressReturnedByChecksAndWithdrawn: a blocking check sends the
// egress back; only its requester withdraws it.
func TestEgressReturnedByChecksAndWithdrawn(t *testing.T) {
	a := newEgressAirlock(t)
	a.put(t, "ws-w", "out/a.csv", "x\n1\n")
	a.put(t, "ws-w", "out/server.key", "secret")
	id, err := a.svc.StartEgress(ctx(t), EgressStart{ID: unique("egress-chosen"), Input: model.EgressRequestInput{Workspace: "ws-w", Project: "proj-w",
		Destination: "outbox", Files: []string{"out/a.csv", "out/server.key"}, Justification: "j"}, Requester: "rita", Via: "cli"})
	must(t, err)
	if !strings.HasPrefix(id, "egress-chosen-") {
		t.Errorf("id %q is not the one chosen", id)
	}
	st := a.waitState(t, id, model.StateReturned)
	if !strings.Contains(st.Error, "no-keys") {
		t.Errorf("returned with %q, want the blocking check named", st.Error)
	}
	var refused *RefusedError
	if _, err := a.svc.Withdraw(ctx(t), id, model.Withdrawal{By: "olga", Via: "api"}); !errors.As(err, &refused) || !strings.Contains(refused.Reason, "only its requester") {
		t.Errorf("a checker's withdrawal: %v", err)
	}
	res, err := a.svc.Withdraw(ctx(t), id, model.Withdrawal{By: "rita", Reason: "wrong files", Via: "api"})
	must(t, err)
	if res.State != model.StateWithdrawn {
		t.Errorf("withdrawal result %+v", res)
	}
	st, err = a.svc.Status(ctx(t), id)
	must(t, err)
	if st.Egress.Withdrawn == nil || st.Egress.Withdrawn.Reason != "wrong files" {
		t.Errorf("withdrawal not recorded: %+v", st.Egress.Withdrawn)
	}

	// The id is the request's for good.
	_, err = a.svc.StartEgress(ctx(t), EgressStart{ID: id, Input: model.EgressRequestInput{Workspace: "ws-w", Project: "proj-w",
		Destination: "outbox", Files: []string{"out/a.csv"}, Justification: "j"}, Requester: "rita"})
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "is taken by another request") {
		t.Errorf("starting with a taken id: %v", err)
	}
}

// TestEgressUpdatesNotFound: a missing request is ErrNotFound itself.
func TestEgressUpdatesNotFound(t *testing.T) {
	a := newEgressAirlock(t)
	const id = "egress-no-such-ws-abcdef"
	rv := model.EgressReview{By: "olga", Turn: 1, ManifestDigest: "sha256:x", Files: []model.FileReview{{Path: "a", Verdict: model.VerdictApprove}}}
	if _, err := a.svc.Review(ctx(t), id, rv); err != ErrNotFound {
		t.Errorf("Review: %v", err)
	}
	if _, err := a.svc.Resubmit(ctx(t), id, model.Resubmission{By: "rita"}); err != ErrNotFound {
		t.Errorf("Resubmit: %v", err)
	}
	if _, err := a.svc.Withdraw(ctx(t), id, model.Withdrawal{By: "rita"}); err != ErrNotFound {
		t.Errorf("Withdraw: %v", err)
	}
	if _, err := a.svc.Revoke(ctx(t), id, model.Revocation{By: "rita", Reason: "r"}); err != ErrNotFound {
		t.Errorf("Revoke: %v", err)
	}
}
