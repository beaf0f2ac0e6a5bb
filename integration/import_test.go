package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

const dataSourceYAML = `apiVersion: xlscsde.nhs.uk/v1
kind: AnalyticsWorkspaceDataSource
metadata:
  name: %s
spec:
  type: Import
  publisher:
    organisation: Integration Test Trust
    contact: {name: Data Engineer One, role: AWMS Developer}
  project: {id: d4e6}
  displayName: Integration test dataset
  description: Files written by the integration test.
  license: Test use only.
  connections:
  - {type: file, name: src, url: "file:///%s"}
  objects:
%s`

// writeSource writes files under the env's source root and a data source
// document over them; it returns the document's path.
func (e *env) writeSource(name string, files map[string][]byte, objects string) string {
	e.t.Helper()
	for p, data := range files {
		full := filepath.Join(e.sourceRoot, name, p)
		must(e.t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(e.t, os.WriteFile(full, data, 0o644))
	}
	doc := filepath.Join(e.dir, name+".yaml")
	must(e.t, os.WriteFile(doc, []byte(fmt.Sprintf(dataSourceYAML, name, name, objects)), 0o644))
	return doc
}

func sha(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	must(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// TestImportEndToEnd imports a data source through the airlock CLI, sees
// the approval rules enforced by the real server, approves both stages as two
// people, and checks the released bytes against the sources and the crate.
func TestImportEndToEnd(t *testing.T) {
	c := needServer(t)
	e := newEnv(t, "  checkpointEvery: 1s")
	files := map[string][]byte{
		"clinic/patients.csv":    []byte("person_id,year_of_birth\nP1,1970\nP2,1981\n"),
		"clinic/attendances.csv": []byte(strings.Repeat("A1,P1,2024-01-02,cardiology\n", 5000)),
		"dictionary.md":          []byte("# Dictionary\n"),
	}
	doc := e.writeSource("e2e-source", files, `  - prefix: {path: clinic/, connection: src}
  - file: {path: dictionary.md, connection: src}
`)
	e.startWorker(e.config)

	start := time.Now()
	id := strings.TrimSpace(airlockOK(t, "import", "-f", doc, "--workspace", "ws-e2e", "--as", "rita", "--wait"))
	st := status(t, id)
	if st.State != model.StateAwaitingApproval {
		t.Fatalf("after --wait the request is %s (error %q), want AWAITING_APPROVAL", st.State, st.Error)
	}
	if len(st.Files) != len(files) {
		t.Fatalf("staged %d files, want %d", len(st.Files), len(files))
	}
	for _, f := range st.Files {
		if want := sha(files[f.Path]); f.SHA256 != want {
			t.Errorf("staged %s has sha256 %s, source has %s", f.Path, f.SHA256, want)
		}
	}

	// The real server enforces the rules too: each refusal exits non-zero,
	// says why, and leaves no decision behind.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"approve", id, "--stage", "data-engineering", "--as", "rita"}, "requester never approves"},
		{[]string{"approve", id, "--stage", "data-engineering", "--as", "ian"}, "not a member of role data-engineer"},
		{[]string{"approve", id, "--stage", "information-governance", "--as", "ian"}, "waiting on stage"},
		{[]string{"approve", id, "--stage", "data-engineering", "--as", "dana", "--digest", "sha256:0000"}, "does not match"},
	} {
		_, errOut, code := airlock(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("airlock %s: exit %d, stderr %q; want a refusal mentioning %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	if st := status(t, id); len(st.Stages[0].Decisions) != 0 {
		t.Fatalf("refused decisions were recorded: %+v", st.Stages[0].Decisions)
	}

	// An operator looking at the Temporal UI alone sees what the run waits
	// on: the UI shows the workflow's current details.
	md, err := c.QueryWorkflow(context.Background(), id, "", "__temporal_workflow_metadata")
	must(t, err)
	var meta sdkpb.WorkflowMetadata
	must(t, md.Get(&meta))
	if d := meta.GetCurrentDetails(); !strings.Contains(d, "Waiting on:") || !strings.Contains(d, "data-engineering") || !strings.Contains(d, "data-engineer") {
		t.Errorf("current details do not say what the run waits on:\n%s", d)
	}

	// The list shows what the request waits on (visibility is eventually consistent).
	waitFor(t, 10*time.Second, func() bool {
		var rows []map[string]string
		_ = json.Unmarshal([]byte(airlockOK(t, "list", "--awaiting-role", "data-engineer", "-o", "json")), &rows)
		for _, r := range rows {
			if r["id"] == id && r["state"] == string(model.StateAwaitingApproval) {
				return true
			}
		}
		return false
	}, "airlock list --awaiting-role data-engineer shows the request")

	airlockOK(t, "approve", id, "--stage", "data-engineering", "--as", "dana", "--comment", "schema checked")
	airlockOK(t, "approve", id, "--stage", "information-governance", "--as", "ian", "--comment", "IG approved")
	st = waitState(t, id, model.StateCompleted, 30*time.Second)
	elapsed := time.Since(start)

	// Released bytes equal the sources, and the crate says so.
	released := filepath.Join(e.workspaces, "ws-e2e", "e2e-source", id)
	for p, data := range files {
		if got := fileSHA(t, filepath.Join(released, p)); got != sha(data) {
			t.Errorf("released %s has sha256 %s, source %s", p, got, sha(data))
		}
	}
	crate := readCrate(t, filepath.Join(released, "ro-crate-metadata.json"))
	for p, data := range files {
		ent, ok := crate[p]
		if !ok || ent["sha256"] != sha(data) || ent["@type"] != "File" {
			t.Errorf("crate entity for %s = %v, want a File with sha256 %s", p, ent, sha(data))
		}
	}
	decisions := 0
	for _, ent := range crate {
		if ent["@type"] == "AssessAction" {
			decisions++
			if res, _ := ent["result"].(map[string]any); res["value"] != st.ManifestDigest {
				t.Errorf("decision %v does not record the approved digest %s", ent["@id"], st.ManifestDigest)
			}
		}
	}
	if decisions != 2 {
		t.Errorf("crate records %d decisions, want 2", decisions)
	}
	if _, err := os.Stat(filepath.Join(released, "airlock-binding.yaml")); err != nil {
		t.Errorf("binding not recorded: %v", err)
	}
	if left := listFiles(t, e.staging); len(left) != 0 {
		t.Errorf("staging still holds %v after release", left)
	}

	events := historyLength(t, c, id)
	t.Logf("MEASURE import end to end (import --wait, two approvals, release): %s, %d history events", elapsed.Round(time.Millisecond), events)

	// The history replays against the current workflow code.
	replay(t, c, id)
	if dir := os.Getenv("AIRLOCK_RECORD_HISTORIES"); dir != "" {
		recordHistory(t, c, id, filepath.Join(dir, "import-completed.json"))
	}
}

// TestImportRejected checks a rejection ends the request and removes staging.
func TestImportRejected(t *testing.T) {
	c := needServer(t)
	e := newEnv(t, "  checkpointEvery: 1s")
	doc := e.writeSource("rejected-source", map[string][]byte{"a.csv": []byte("x,y\n1,2\n")}, "  - file: {path: a.csv, connection: src}\n")
	e.startWorker(e.config)
	id := strings.TrimSpace(airlockOK(t, "import", "-f", doc, "--workspace", "ws-rej", "--as", "rita", "--wait"))
	airlockOK(t, "approve", id, "--stage", "data-engineering", "--as", "dana")
	_, errOut, code := airlock(t, "reject", id, "--stage", "information-governance", "--as", "ian")
	if code == 0 || !strings.Contains(errOut, "comment") {
		t.Fatalf("reject without a comment: exit %d, %q", code, errOut)
	}
	airlockOK(t, "reject", id, "--stage", "information-governance", "--as", "ian", "--comment", "contains identifiers")
	st := waitState(t, id, model.StateRejected, 20*time.Second)
	if !strings.Contains(st.Error, "contains identifiers") {
		t.Errorf("error %q does not give the rejection's comment", st.Error)
	}
	if left := listFiles(t, e.staging); len(left) != 0 {
		t.Errorf("staging still holds %v after rejection", left)
	}
	if left := listFiles(t, e.workspaces); len(left) != 0 {
		t.Errorf("a rejected request reached the workspace: %v", left)
	}
	if dir := os.Getenv("AIRLOCK_RECORD_HISTORIES"); dir != "" {
		recordHistory(t, c, id, filepath.Join(dir, "import-rejected.json"))
	}
	replay(t, c, id)
}

func readCrate(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	var doc struct {
		Graph []map[string]any `json:"@graph"`
	}
	must(t, json.Unmarshal(data, &doc))
	out := map[string]map[string]any{}
	for _, e := range doc.Graph {
		out[e["@id"].(string)] = e
	}
	return out
}

func listFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	waitForEvery(t, timeout, 250*time.Millisecond, cond, what)
}

func waitForEvery(t *testing.T, timeout, every time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(every)
	}
}

func historyLength(t *testing.T, c client.Client, id string) int {
	t.Helper()
	n := 0
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		_, err := it.Next()
		must(t, err)
		n++
	}
	return n
}

// fetchHistory reads a workflow's whole history.
func fetchHistory(t *testing.T, c client.Client, id string) *historypb.History {
	t.Helper()
	h := &historypb.History{}
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		must(t, err)
		h.Events = append(h.Events, ev)
	}
	return h
}

// replay runs the workflow's recorded history against the current code.
func replay(t *testing.T, c client.Client, id string) {
	t.Helper()
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(workflows.ImportWorkflow, workflow.RegisterOptions{Name: workflows.ImportWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.UploadWorkflow, workflow.RegisterOptions{Name: workflows.UploadWorkflowName})
	if err := r.ReplayWorkflowHistory(nil, fetchHistory(t, c, id)); err != nil {
		t.Fatalf("replaying %s against the current code: %v", id, err)
	}
}

// recordHistory saves a history as JSON for workflows' replay test
// (AIRLOCK_RECORD_HISTORIES=$PWD/workflows/testdata/histories).
func recordHistory(t *testing.T, c client.Client, id, path string) {
	t.Helper()
	data, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(fetchHistory(t, c, id))
	must(t, err)
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, data, 0o644))
	t.Logf("recorded the history of %s in %s", id, path)
}

// TestImportCancelledAndFailed covers the other ends: a requester cancels a
// request awaiting approval, and an object naming a missing file fails the
// import at once with a reason naming it.
func TestImportCancelledAndFailed(t *testing.T) {
	c := needServer(t)
	e := newEnv(t, "  checkpointEvery: 1s")
	doc := e.writeSource("cancel-source", map[string][]byte{"a.csv": []byte("x\n1\n")}, "  - file: {path: a.csv, connection: src}\n")
	e.startWorker(e.config)

	id := strings.TrimSpace(airlockOK(t, "import", "-f", doc, "--workspace", "ws-cancel", "--as", "rita", "--wait"))
	_, errOut, code := airlock(t, "cancel", id, "--as", "mallory")
	if code == 0 || !strings.Contains(errOut, "may not cancel") {
		t.Fatalf("a stranger's cancel: exit %d, %q; want a refusal", code, errOut)
	}
	out := airlockOK(t, "cancel", id, "--as", "rita", "--reason", "wrong extract")
	if !strings.Contains(out, string(model.StateCancelled)) {
		t.Fatalf("cancel printed %q, want the request CANCELLED", out)
	}
	st := status(t, id)
	if st.State != model.StateCancelled || st.CancelledBy != "rita" {
		t.Fatalf("after cancel: state %s, cancelled_by %q", st.State, st.CancelledBy)
	}
	if left := listFiles(t, e.staging); len(left) != 0 {
		t.Errorf("staging still holds %v after cancel", left)
	}
	replay(t, c, id)
	if dir := os.Getenv("AIRLOCK_RECORD_HISTORIES"); dir != "" {
		recordHistory(t, c, id, filepath.Join(dir, "import-cancelled.json"))
	}

	bad := e.writeSource("failing-source", map[string][]byte{"present.csv": []byte("x\n")}, "  - file: {path: missing.csv, connection: src}\n")
	out, _, code = airlock(t, "import", "-f", bad, "--workspace", "ws-cancel", "--as", "rita", "--wait", "-o", "json")
	if code == 0 {
		t.Fatalf("an import of a missing file exited 0: %s", out)
	}
	var failed model.RequestStatus
	must(t, json.Unmarshal([]byte(out), &failed))
	if failed.State != model.StateFailed || !strings.Contains(failed.Error, "missing.csv") {
		t.Fatalf("import of a missing file: state %s, error %q; want FAILED naming missing.csv", failed.State, failed.Error)
	}
	replay(t, c, failed.ID)
	if dir := os.Getenv("AIRLOCK_RECORD_HISTORIES"); dir != "" {
		recordHistory(t, c, failed.ID, filepath.Join(dir, "import-failed.json"))
	}
}
