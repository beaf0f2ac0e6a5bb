package requests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/testservers"
	"github.com/airlockhq/airlock/workflows"
)

// These tests run the service against a real Temporal dev server (the
// pinned CLI in $AIRLOCK_CACHE/bin) and a worker in this process that runs
// the real workflows and activities over temporary local stores.

var (
	serverOnce sync.Once
	server     *testsuite.DevServer
	serverErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		_ = server.Stop()
	}
	os.Exit(code)
}

func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
}

// devServer starts the package's dev server on first use.
func devServer(t *testing.T) *testsuite.DevServer {
	t.Helper()
	serverOnce.Do(func() {
		cli, err := testservers.Tool("temporal")
		if err != nil {
			serverErr = err
			return
		}
		var args []string
		args = append(args, workflows.DevServerSearchAttributeArgs()...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		server, serverErr = testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
			ExistingPath:  cli,
			LogLevel:      "error",
			ExtraArgs:     args,
			ClientOptions: &client.Options{Namespace: "default", Logger: quietLogger()},
			Stdout:        io.Discard,
			Stderr:        io.Discard,
		})
	})
	if serverErr != nil {
		testservers.Unavailable(t, fmt.Errorf("starting the Temporal dev server: %w", serverErr))
	}
	return server
}

// airlock is one test's Airlock: the service on its own task queue, a worker
// polling it and a source tree under <root>/src.
type airlock struct {
	svc     *Service
	client  client.Client
	srcDir  string
	staging *localstore.Store
}

func newAirlock(t *testing.T) *airlock {
	t.Helper()
	return newAirlockTransfer(t, activities.TransferConfig{})
}

// newAirlockTransfer is newAirlock with the worker's copy settings given.
func newAirlockTransfer(t *testing.T, transfer activities.TransferConfig) *airlock {
	t.Helper()
	c := devServer(t).Client()
	tmp := t.TempDir()
	srcDir := filepath.Join(tmp, "files", "src")
	must(t, os.MkdirAll(srcDir, 0o755))
	must(t, os.WriteFile(filepath.Join(srcDir, "visits.csv"), []byte("clinic,visits\nnorth,120\n"), 0o644))
	staging, err := localstore.New(filepath.Join(tmp, "staging"))
	must(t, err)
	workspaces, err := localstore.New(filepath.Join(tmp, "workspaces"))
	must(t, err)
	t.Cleanup(func() { _ = staging.Close(); _ = workspaces.Close() })
	book := testPolicyBook()
	must(t, book.Validate())
	acts := &activities.Activities{
		Staging:    staging,
		Workspaces: workspaces,
		Sources:    file.Factories(file.Config{FileRoot: filepath.Join(tmp, "files"), PVCRoot: filepath.Join(tmp, "pvc")}),
		Policies:   book,
		Transfer:   transfer,
	}
	queue := "requests-test-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	w := worker.New(c, queue, worker.Options{MaxHeartbeatThrottleInterval: transfer.CheckpointEvery})
	w.RegisterWorkflowWithOptions(workflows.ImportWorkflow, workflow.RegisterOptions{Name: workflows.ImportWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.UploadWorkflow, workflow.RegisterOptions{Name: workflows.UploadWorkflowName})
	w.RegisterActivity(acts)
	w.RegisterWorkflowWithOptions(otherWorkflow, workflow.RegisterOptions{Name: "OtherWorkflow"})
	must(t, w.Start())
	t.Cleanup(w.Stop)
	return &airlock{svc: &Service{Client: c, TaskQueue: queue}, client: c, srcDir: srcDir, staging: staging}
}

func testPolicyBook() *model.PolicyBook {
	stage := func(name, role string) model.Stage {
		return model.Stage{Name: name, Role: role, Approvals: 1, Deadline: model.Duration(72 * time.Hour)}
	}
	return &model.PolicyBook{
		Policies: map[string]model.Policy{
			"standard": {Name: "standard", Version: "1", Stages: []model.Stage{
				stage("data-engineering", "data-engineer"),
				stage("information-governance", "information-governance"),
			}},
		},
		Rules: []model.PolicyRule{{Project: "*", Policies: []string{"standard"}}},
		Roster: map[string][]string{
			"rita": {"researcher"},
			"dana": {"data-engineer"},
			"ian":  {"information-governance"},
		},
	}
}

// testDataSource is an Import data source of one file, visits.csv, read
// through a file connection.
func testDataSource(name, project string) model.DataSource {
	return model.DataSource{
		APIVersion: model.APIVersion,
		Kind:       model.KindDataSource,
		Metadata:   model.ObjectMeta{Name: name},
		Spec: model.DataSourceSpec{
			Type: model.TypeImport,
			Publisher: model.Publisher{
				Organisation: "Example NHS Trust",
				Contact:      model.Contact{Name: "Pat Publisher", Email: "pat@example.org"},
			},
			Project:     model.Project{ID: project},
			DisplayName: "Clinic visits",
			Description: "Visits per clinic.",
			Connections: []model.Connection{{Type: model.ConnFile, Name: "src", URL: "file:///src"}},
			Objects:     []model.Object{{File: &model.FileObject{Path: "visits.csv", Connection: "src"}}},
		},
	}
}

// unique is base with a random suffix, for names no earlier run used.
func unique(base string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return base + "-" + hex.EncodeToString(b)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// waitState polls Status until the request is in state.
func (a *airlock) waitState(t *testing.T, id string, state model.State) model.RequestStatus {
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

// waitList polls List until check accepts a page (visibility is eventually
// consistent).
func (a *airlock) waitList(t *testing.T, f Filter, what string, check func(Page) bool) Page {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		page, err := a.svc.List(ctx(t), f)
		must(t, err)
		if check(page) {
			return page
		}
		if time.Now().After(deadline) {
			t.Fatalf("list %+v never showed %s; last page %+v", f, what, page)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ids(p Page) []string {
	var out []string
	for _, r := range p.Requests {
		out = append(out, r.ID)
	}
	return out
}

// TestImportLifecycle starts an import through the service, follows it,
// finds it in lists, has decisions refused and accepted, and sees the ended
// request refuse further updates.
func TestImportLifecycle(t *testing.T) {
	a := newAirlock(t)
	// A requester and a project of this run only: the server outlives runs.
	requester, project := unique("rita"), unique("proj-life")
	ds := testDataSource("lifecycle-source", project)
	id, err := a.svc.StartImport(ctx(t), StartImport{DataSource: ds, Workspace: "ws-life", Requester: requester, Via: "api"})
	must(t, err)
	if !strings.HasPrefix(id, "import-lifecycle-source-") {
		t.Errorf("id %q does not start import-lifecycle-source-", id)
	}

	// The Temporal UI shows the summary and details the service set.
	desc, err := a.client.DescribeWorkflowExecution(ctx(t), id, "")
	must(t, err)
	var summary, details string
	md := desc.GetExecutionConfig().GetUserMetadata()
	must(t, converter.GetDefaultDataConverter().FromPayload(md.GetSummary(), &summary))
	must(t, converter.GetDefaultDataConverter().FromPayload(md.GetDetails(), &details))
	if summary != "Import lifecycle-source into workspace ws-life (project "+project+"), asked by "+requester {
		t.Errorf("static summary %q", summary)
	}
	if !strings.Contains(details, "file visits.csv") || !strings.Contains(details, "requested by: "+requester) {
		t.Errorf("static details lack the object or the requester:\n%s", details)
	}

	st := a.waitState(t, id, model.StateAwaitingApproval)
	if st.ID != id || st.Kind != model.KindImport || st.Requester != requester || st.Workspace != "ws-life" || len(st.Files) != 1 {
		t.Fatalf("status %+v", st)
	}

	waiting := a.waitList(t, Filter{Requester: requester, AwaitingRole: "data-engineer"}, id, func(p Page) bool {
		return len(p.Requests) == 1 && p.Requests[0].ID == id
	})
	row := waiting.Requests[0]
	if row.Kind != "import" || row.State != string(model.StateAwaitingApproval) || row.Project != project ||
		row.DataSource != "lifecycle-source" || row.Workspace != "ws-life" || row.StartedAt.IsZero() {
		t.Errorf("list row %+v", row)
	}
	for _, f := range []Filter{
		{Requester: requester, Kind: "upload"},
		{Requester: requester, State: "COMPLETED"},
		{Requester: requester, Project: "proj-other"},
		{Requester: requester, AwaitingRole: "information-governance"},
		{Requester: "rita", Project: project}, // a requester is matched whole
	} {
		page, err := a.svc.List(ctx(t), f)
		must(t, err)
		if len(page.Requests) != 0 {
			t.Errorf("filter %+v selects %v", f, ids(page))
		}
	}

	// A decision the rules refuse is a RefusedError with the reason.
	_, err = a.svc.Decide(ctx(t), id, model.DecisionRequest{Stage: "data-engineering", By: "ian", Decision: model.Approve, ManifestDigest: st.ManifestDigest, Via: "api"})
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "not a member of role data-engineer") {
		t.Fatalf("approval by a non-member: %v, want a refusal naming the role", err)
	}
	_, err = a.svc.ConfirmUpload(ctx(t), id, model.UploadConfirmation{By: requester, Files: []model.ExpectedFile{{Path: "a.csv", Size: 1}}})
	if !errors.As(err, &refused) || refused.Reason != "request "+id+" takes no upload confirmations" {
		t.Errorf("confirming an import's upload: %v", err)
	}

	res, err := a.svc.Decide(ctx(t), id, model.DecisionRequest{Stage: "data-engineering", By: "dana", Decision: model.Approve, ManifestDigest: st.ManifestDigest, Via: "api"})
	must(t, err)
	if res.Stage != "data-engineering" || res.StageState != model.StageApproved || res.Approvals != 1 {
		t.Errorf("decision result %+v", res)
	}
	a.waitList(t, Filter{Requester: requester, AwaitingRole: "information-governance"}, "the request waiting on IG", func(p Page) bool {
		return len(p.Requests) == 1
	})
	st = a.waitState(t, id, model.StateAwaitingApproval)
	if d := st.Stages[0].Decisions; len(d) != 1 || d[0].Via != "api" || d[0].By != "dana" {
		t.Errorf("decisions %+v, want dana's via api", d)
	}
	_, err = a.svc.Decide(ctx(t), id, model.DecisionRequest{Stage: "information-governance", By: "ian", Decision: model.Approve, ManifestDigest: st.ManifestDigest, Via: "api"})
	must(t, err)
	a.waitState(t, id, model.StateCompleted)

	// The ended request refuses more, saying it has ended. (Until its
	// workflow closes, after removing staging, the workflow itself refuses
	// in its own words; wait for the close to test the service's.)
	a.waitList(t, Filter{Requester: requester, State: "completed"}, "the completed request", func(p Page) bool { return len(p.Requests) == 1 })
	must(t, a.client.GetWorkflow(ctx(t), id, "").Get(ctx(t), nil))
	_, err = a.svc.Cancel(ctx(t), id, model.CancelRequest{By: requester, Via: "api"})
	if !errors.As(err, &refused) || refused.Reason != "request "+id+" has ended (COMPLETED): it takes no more cancellations" {
		t.Errorf("cancelling a completed request: %v", err)
	}
}

func TestCancel(t *testing.T) {
	a := newAirlock(t)
	id, err := a.svc.StartImport(ctx(t), StartImport{DataSource: testDataSource("cancel-source", "proj-cancel"), Workspace: "ws-c", Requester: "rita", Via: "api"})
	must(t, err)
	a.waitState(t, id, model.StateAwaitingApproval)
	_, err = a.svc.Cancel(ctx(t), id, model.CancelRequest{By: "mallory", Via: "api"})
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "may not cancel") {
		t.Fatalf("a stranger's cancel: %v, want a refusal", err)
	}
	res, err := a.svc.Cancel(ctx(t), id, model.CancelRequest{By: "rita", Reason: "wrong extract", Via: "api"})
	must(t, err)
	if res.State != model.StateCancelled {
		t.Fatalf("cancel result %+v", res)
	}
	st, err := a.svc.Status(ctx(t), id)
	must(t, err)
	if st.CancelledBy != "rita" || st.CancelReason != "wrong extract" {
		t.Errorf("status after cancel: by %q reason %q", st.CancelledBy, st.CancelReason)
	}
	// Summary reads the same state from the run's search attributes.
	sum, err := a.svc.Summary(ctx(t), id)
	must(t, err)
	if sum.ID != id || sum.Kind != string(model.KindImport) || sum.State != string(model.StateCancelled) || sum.Requester != "rita" || sum.Project != "proj-cancel" || sum.Workspace != "ws-c" {
		t.Errorf("summary after cancel: %+v", sum)
	}
	// Until its workflow closes, the workflow itself refuses; after, the
	// service explains the server's NotFound.
	_, err = a.svc.Decide(ctx(t), id, model.DecisionRequest{Stage: "data-engineering", By: "dana", Decision: model.Approve, Via: "api"})
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "CANCELLED") {
		t.Errorf("deciding on a cancelled request: %v", err)
	}
	must(t, a.client.GetWorkflow(ctx(t), id, "").Get(ctx(t), nil))
	_, err = a.svc.Decide(ctx(t), id, model.DecisionRequest{Stage: "data-engineering", By: "dana", Decision: model.Approve, Via: "api"})
	if !errors.As(err, &refused) || refused.Reason != "request "+id+" has ended (CANCELLED): it takes no more decisions" {
		t.Errorf("deciding on a closed cancelled request: %v", err)
	}
}

// TestInFlight sees a running copy's bytes in its heartbeats before the
// state query counts them.
func TestInFlight(t *testing.T) {
	a := newAirlockTransfer(t, activities.TransferConfig{BufferSize: 4 << 10, CheckpointEvery: 100 * time.Millisecond, MaxBytesPerSecond: 256 << 10})
	must(t, os.WriteFile(filepath.Join(a.srcDir, "visits.csv"), make([]byte, 4<<20), 0o644)) // 16 s at this rate
	id, err := a.svc.StartImport(ctx(t), StartImport{DataSource: testDataSource("inflight-source", "proj-if"), Workspace: "ws-if", Requester: "rita", Via: "api"})
	must(t, err)
	deadline := time.Now().Add(15 * time.Second)
	for {
		live, err := a.svc.InFlight(ctx(t), id)
		must(t, err)
		if live.Running == 1 && live.BytesDone > 0 {
			st, err := a.svc.Status(ctx(t), id)
			must(t, err)
			if st.State != model.StateExtracting || st.Progress.BytesDone != 0 {
				t.Errorf("while copying: state %s, %d bytes done; want EXTRACTING with none counted yet", st.State, st.Progress.BytesDone)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no copy progress seen: %+v", live)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err = a.svc.Cancel(ctx(t), id, model.CancelRequest{By: "rita", Via: "api"})
	must(t, err)
}

// otherWorkflow is a workflow that is not an Airlock request, as a
// namespace shared with other applications holds.
func otherWorkflow(ctx workflow.Context) error {
	return workflow.Sleep(ctx, time.Hour)
}

// TestNotFound: a missing request is ErrNotFound itself, whatever was asked.
func TestNotFound(t *testing.T) {
	a := newAirlock(t)
	const id = "import-no-such-source-abcdef"
	_, err := a.svc.Status(ctx(t), id)
	if err != ErrNotFound {
		t.Errorf("Status: %v, want ErrNotFound", err)
	}
	_, err = a.svc.Decide(ctx(t), id, model.DecisionRequest{Stage: "s", By: "dana", Decision: model.Approve})
	if err != ErrNotFound {
		t.Errorf("Decide: %v, want ErrNotFound", err)
	}
	_, err = a.svc.Cancel(ctx(t), id, model.CancelRequest{By: "rita"})
	if err != ErrNotFound {
		t.Errorf("Cancel: %v, want ErrNotFound", err)
	}
	_, err = a.svc.ConfirmUpload(ctx(t), id, model.UploadConfirmation{By: "rita"})
	if err != ErrNotFound {
		t.Errorf("ConfirmUpload: %v, want ErrNotFound", err)
	}
	_, err = a.svc.InFlight(ctx(t), id)
	if err != ErrNotFound {
		t.Errorf("InFlight: %v, want ErrNotFound", err)
	}
	if _, err := a.svc.Summary(ctx(t), id); err != ErrNotFound {
		t.Errorf("Summary: %v, want ErrNotFound", err)
	}
	// Another application's workflow is no request either.
	run, err := a.client.ExecuteWorkflow(ctx(t), client.StartWorkflowOptions{ID: unique("other"), TaskQueue: a.svc.TaskQueue}, "OtherWorkflow")
	must(t, err)
	defer func() { _ = a.client.TerminateWorkflow(ctx(t), run.GetID(), "", "test over") }()
	if _, err := a.svc.Status(ctx(t), run.GetID()); err != ErrNotFound {
		t.Errorf("Status of another application's workflow: %v, want ErrNotFound", err)
	}
	if _, err := a.svc.Summary(ctx(t), run.GetID()); err != ErrNotFound {
		t.Errorf("Summary of another application's workflow: %v, want ErrNotFound", err)
	}
	var fe *FieldError
	if _, err := a.svc.Status(ctx(t), ""); !errors.As(err, &fe) || fe.Field != "id" {
		t.Errorf("Status of no id: %v, want an id refusal", err)
	}
}

// TestListPages pages through requests with the service's tokens, newest
// first, and refuses a token given to another filter.
func TestListPages(t *testing.T) {
	a := newAirlock(t)
	var started []string
	requester := unique("rita")
	for i := range 3 {
		id, err := a.svc.StartImport(ctx(t), StartImport{DataSource: testDataSource(fmt.Sprintf("page-source-%d", i), "proj-pages"), Workspace: "ws-p", Requester: requester, Via: "api"})
		must(t, err)
		started = append(started, id)
		time.Sleep(10 * time.Millisecond) // distinct start times
	}
	f := Filter{Requester: requester, PageSize: 2}
	first := a.waitList(t, Filter{Requester: requester}, "all three requests", func(p Page) bool { return len(p.Requests) == 3 })
	if got := ids(first); got[0] != started[2] || got[1] != started[1] || got[2] != started[0] {
		t.Errorf("list order %v, want newest first %v", got, started)
	}
	page1, err := a.svc.List(ctx(t), f)
	must(t, err)
	if len(page1.Requests) != 2 || page1.NextPageToken == "" {
		t.Fatalf("first page of 2: %v, token %q", ids(page1), page1.NextPageToken)
	}
	f.PageToken = page1.NextPageToken
	page2, err := a.svc.List(ctx(t), f)
	must(t, err)
	all := append(ids(page1), ids(page2)...)
	if len(page2.Requests) != 1 || all[0] != started[2] || all[2] != started[0] {
		t.Errorf("pages %v then %v (token %q), want %v newest first", ids(page1), ids(page2), page2.NextPageToken, started)
	}
	_, err = a.svc.List(ctx(t), Filter{Requester: "rita-other", PageToken: page1.NextPageToken})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "page_token" {
		t.Errorf("another filter's token: %v, want a page_token refusal", err)
	}
}

// TestSearchAttributesMissing: a server without Airlock's search
// attributes gets an error saying how to register them.
func TestSearchAttributesMissing(t *testing.T) {
	cli, err := testservers.Tool("temporal")
	if err != nil {
		testservers.Unavailable(t, err)
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bare, err := testsuite.StartDevServer(c, testsuite.DevServerOptions{
		ExistingPath:  cli,
		LogLevel:      "error",
		ClientOptions: &client.Options{Namespace: "default", Logger: quietLogger()},
		Stdout:        io.Discard,
		Stderr:        io.Discard,
	})
	must(t, err)
	defer func() { _ = bare.Stop() }()
	svc := &Service{Client: bare.Client(), TaskQueue: "requests-test-bare"}
	_, err = svc.StartImport(ctx(t), StartImport{DataSource: testDataSource("bare-source", "proj-bare"), Workspace: "ws-b", Requester: "rita", Via: "api"})
	if err == nil || !strings.HasPrefix(err.Error(), "starting the import: ") || !strings.Contains(err.Error(), "register Airlock's search attributes") {
		t.Errorf("start without search attributes: %v, want the registration hint", err)
	}
	_, err = svc.List(ctx(t), Filter{})
	if err == nil || !strings.Contains(err.Error(), "register Airlock's search attributes") {
		t.Errorf("list without search attributes: %v, want the registration hint", err)
	}
}
