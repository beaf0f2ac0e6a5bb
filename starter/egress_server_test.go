package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/testservers"
	"github.com/airlockhq/airlock/workflows"
)

// egressCLI is the CLI against a real Temporal dev server and a worker in
// this process running the real egress workflow and activities over local
// stores: workspaces, staging and an outbox destination.
type egressCLI struct {
	t          *testing.T
	server     *testsuite.DevServer
	queue      string
	workspaces string
	outbox     string
	pubFile    string
}

func newEgressCLI(t *testing.T) *egressCLI {
	t.Helper()
	cli, err := testservers.Tool("temporal")
	if err != nil {
		testservers.Unavailable(t, err)
	}
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: cli, LogLevel: "error", ExtraArgs: workflows.DevServerSearchAttributeArgs(),
		ClientOptions: &client.Options{Namespace: "default", Logger: quiet}, Stdout: io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		testservers.Unavailable(t, err)
	}
	t.Cleanup(func() { _ = srv.Stop() })

	tmp := t.TempDir()
	e := &egressCLI{t: t, server: srv, queue: "starter-egress", workspaces: filepath.Join(tmp, "workspaces"), outbox: filepath.Join(tmp, "outbox")}
	open := func(dir string) *localstore.Store {
		s, err := localstore.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	secretsDir := filepath.Join(tmp, "secrets")
	if err := os.MkdirAll(secretsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, e.pubFile = writeKeyPair(t, secretsDir, "egress-key")
	acts := &activities.Activities{
		Staging: open(filepath.Join(tmp, "staging")), Workspaces: open(e.workspaces),
		Policies: &model.PolicyBook{
			Policies: map[string]model.Policy{"egress-two": {Name: "egress-two", Version: "1",
				Stages: []model.Stage{{Name: "output-checking", Role: "output-checker", Approvals: 2, Independent: true}}}},
			Rules:  []model.PolicyRule{{Project: "*", Kind: model.KindEgress, Policies: []string{"egress-two"}}},
			Roster: map[string][]string{"rita": {"researcher"}, "olga": {"output-checker"}, "oscar": {"output-checker"}},
		},
		Secrets:      &secrets.Provider{Dir: secretsDir, NoEnv: true},
		Destinations: map[string]activities.EgressDestination{"outbox": {Store: open(e.outbox), Description: "test outbox", Revocable: true}},
		SigningKey:   "egress-key",
		Temporal:     srv.Client(),
	}
	w := worker.New(srv.Client(), e.queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.EgressWorkflow, workflow.RegisterOptions{Name: workflows.EgressWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.RetentionWorkflow, workflow.RegisterOptions{Name: workflows.RetentionWorkflowName})
	w.RegisterActivity(acts)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return e
}

// writeKeyPair makes a signing key, writes it into secretsDir under name
// and its public key beside the folder, and returns both files.
func writeKeyPair(t *testing.T, secretsDir, name string) (priv, pub string) {
	t.Helper()
	privPEM, pubPEM, err := releasemanifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv = filepath.Join(secretsDir, name)
	pub = filepath.Join(filepath.Dir(secretsDir), name+".pub.pem")
	if err := os.WriteFile(priv, privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// airlock runs the CLI in-process against the dev server.
func (e *egressCLI) airlock(args ...string) (string, string, error) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	a := newApp(&out, &errOut)
	a.dial = func() (client.Client, error) {
		return client.NewClientFromExisting(e.server.Client(), client.Options{Namespace: "default", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	}
	root := a.rootCmd()
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// ok runs the CLI and fails the test if it fails.
func (e *egressCLI) ok(args ...string) string {
	e.t.Helper()
	out, errOut, err := e.airlock(args...)
	if err != nil {
		e.t.Fatalf("airlock %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// refused runs the CLI and wants it to exit 1 with a refusal saying want.
func (e *egressCLI) refused(want string, args ...string) {
	e.t.Helper()
	_, errOut, err := e.airlock(args...)
	var quiet *exitError
	if !errors.As(err, &quiet) || !strings.Contains(errOut, "refused: ") || !strings.Contains(errOut, want) {
		e.t.Errorf("airlock %s: %v, stderr %q; want a refusal saying %q", strings.Join(args, " "), err, errOut, want)
	}
}

func (e *egressCLI) put(workspace, p, content string) {
	e.t.Helper()
	full := filepath.Join(e.workspaces, workspace, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *egressCLI) waitState(id string, state model.State) model.RequestStatus {
	e.t.Helper()
	svc := &requests.Service{Client: e.server.Client()}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := svc.Status(ctx, id)
		cancel()
		if err != nil {
			e.t.Fatal(err)
		}
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("request %s is %s (error %q), want %s", id, st.State, st.Error, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEgressCommandsAgainstTheServer drives an egress with the CLI alone:
// request (waiting for the checks), status, two independent reviews of
// which one asks for changes, a resubmission, the second turn's reviews,
// verification of the release, and its revocation; and a withdrawal.
func TestEgressCommandsAgainstTheServer(t *testing.T) {
	e := newEgressCLI(t)
	e.put("ws1", "out/table1.csv", "clinic,n\nnorth,4\n")
	e.put("ws1", "out/figure1.png", "png")
	req := []string{"egress", "request", "--workspace", "ws1", "--project", "d4e6", "--destination", "outbox",
		"--file", "out/table1.csv", "--file", "out/figure1.png", "--justification", "Tables for the paper", "--as", "rita", "--task-queue", e.queue}
	out, errOut, err := e.airlock(append(req, "--wait")...)
	if err != nil {
		t.Fatalf("egress request --wait: %v\n%s", err, errOut)
	}
	id := strings.TrimSpace(out)
	if !strings.HasPrefix(id, "egress-ws1-") || !strings.Contains(errOut, id+" is AWAITING_APPROVAL: waiting on stage output-checking (role output-checker, 0 of 2 reviews of turn 1") {
		t.Fatalf("egress request --wait printed %q, stderr %q", out, errOut)
	}

	status := e.ok("status", id)
	for _, want := range []string{"Kind", "egress", "Destination    outbox", "Justification  Tables for the paper", "out/table1.csv   17    1     pending"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}

	e.refused("checkers may not be the requester", "egress", "review", id, "--as", "rita", "--approve-all")
	out = e.ok("egress", "review", id, "--as", "olga", "--approve-all", "--comment", "aggregates only")
	if want := id + ": review recorded for turn 1 (1 of 2 reviews); verdicts are shown once every review of the turn is in"; strings.TrimSpace(out) != want {
		t.Errorf("first review printed %q, want %q", out, want)
	}
	e.refused("olga has already reviewed turn 1", "egress", "review", id, "--as", "olga", "--approve-all")
	out = e.ok("egress", "review", id, "--as", "oscar", "--approve", "out/figure1.png", "--request-changes", "out/table1.csv=suppress counts under 10")
	for _, want := range []string{"(2 of 2 reviews); the request is RETURNED", "request-changes out/table1.csv", "approve         out/figure1.png"} {
		if !strings.Contains(out, want) {
			t.Errorf("second review printed %q, want %q", out, want)
		}
	}
	e.refused("reviews are accepted only while it is AWAITING_APPROVAL", "egress", "review", id, "--as", "olga", "--approve-all")

	e.refused("only its requester", "egress", "resubmit", id, "--as", "olga")
	e.put("ws1", "out/table1.csv", "clinic,n\nnorth,<10\n")
	out = e.ok("egress", "resubmit", id, "--as", "rita", "--comment", "suppressed")
	if !strings.HasPrefix(out, id+": turn 2 is ") {
		t.Errorf("resubmit printed %q", out)
	}
	e.waitState(id, model.StateAwaitingApproval)
	// Only the changed file is open: --approve-all approves it alone.
	out = e.ok("egress", "review", id, "--as", "olga", "--approve-all", "-o", "json")
	var res workflows.ReviewResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Turn != 2 || res.ReviewsIn != 1 {
		t.Errorf("review -o json: %v\n%s", err, out)
	}
	e.ok("egress", "review", id, "--as", "oscar", "--approve", "out/table1.csv")
	st := e.waitState(id, model.StateReleased)

	out = e.ok("egress", "verify", filepath.Join(e.outbox, id), "--public-key", e.pubFile)
	if !strings.Contains(out, "verified: the signature") || !strings.Contains(out, "and all 2 file(s)") {
		t.Errorf("verify printed %q", out)
	}
	status = e.ok("status", id)
	for _, want := range []string{"Release", "Location   " + st.Egress.Release.Location, "suppress counts under 10", "2. by rita at"} {
		if !strings.Contains(status, want) {
			t.Errorf("released status lacks %q:\n%s", want, status)
		}
	}

	e.refused("revoke it instead", "egress", "withdraw", id, "--as", "rita")
	out = e.ok("revoke", id, "--as", "oscar", "--reason", "the agreement ended")
	if !strings.HasPrefix(out, id+" is REVOKED: ") || !strings.Contains(out, "file(s) removed from the destination") {
		t.Errorf("revoke printed %q", out)
	}
	if left, _ := os.ReadDir(filepath.Join(e.outbox, id)); len(left) > 0 {
		t.Errorf("the outbox still holds %v", left)
	}

	// A second egress, withdrawn by its requester.
	out = e.ok(append(req, "-o", "json")...)
	var started map[string]string
	if err := json.Unmarshal([]byte(out), &started); err != nil || started["state"] != "CHECKING" {
		t.Fatalf("egress request -o json: %v\n%s", err, out)
	}
	e.waitState(started["id"], model.StateAwaitingApproval)
	e.refused("only its requester", "egress", "withdraw", started["id"], "--as", "olga")
	if out = e.ok("egress", "withdraw", started["id"], "--as", "rita", "--reason", "superseded"); strings.TrimSpace(out) != started["id"]+" is WITHDRAWN" {
		t.Errorf("withdraw printed %q", out)
	}
	if status = e.ok("status", started["id"]); !strings.Contains(status, `Withdrawn by rita: "superseded"`) {
		t.Errorf("withdrawn status:\n%s", status)
	}
	e.refused(`no request "egress-ws1-nosuch"`, "egress", "withdraw", "egress-ws1-nosuch", "--as", "rita")
}
