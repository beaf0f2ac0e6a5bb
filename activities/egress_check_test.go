package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/localstore"
	s3store "github.com/airlockhq/airlock/connectors/s3"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/testservers"
)

const (
	stageID        = "egress-alpha-k3j9"
	stageWorkspace = "alpha"
)

// stageWorkspaceFiles are a workspace's files, by path from its root.
var stageWorkspaceFiles = map[string][]byte{
	"results/table.csv":  []byte("region,patients\nnorth,3\nsouth,120\n"),
	"results/model.pkl":  bytes.Repeat([]byte("pickle\x00"), 8),
	"figures/plot.png":   append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte("plot data "), 300000)...), // 3 MiB
	"notes/summary.md":   []byte("# Summary\nContact jo@example.org for details.\n"),
	"scratch/ignore.txt": []byte("not part of any egress\n"),
}

// newStageActivities is Activities over a real local staging store and a
// real local workspace store holding stageWorkspaceFiles in workspace
// alpha, with a neighbouring workspace and a neighbouring request.
func newStageActivities(t *testing.T) (*Activities, *localstore.Store, *localstore.Store) {
	t.Helper()
	staging, err := localstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	workspaces, err := localstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = staging.Close(); _ = workspaces.Close() })
	for p, data := range stageWorkspaceFiles {
		put(t, workspaces, stageWorkspace+"/"+p, data)
	}
	put(t, workspaces, "alpha-2/results/table.csv", []byte("another workspace\n"))
	put(t, staging, stageID+"0/results/table.csv", []byte("another request\n"))
	return &Activities{
		Staging:    staging,
		Workspaces: workspaces,
		Secrets:    &secrets.Provider{},
		// Small reads and a checkpoint at every one, so progress shows.
		Transfer: TransferConfig{BufferSize: 64 << 10, CheckpointEvery: time.Nanosecond},
	}, staging, workspaces
}

// stageBeats keeps every heartbeat an activity records.
type stageBeats struct {
	interceptor.WorkerInterceptorBase
	mu    sync.Mutex
	beats []any
}

func (h *stageBeats) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	in := &stageBeatsInbound{rec: h}
	in.Next = next
	return in
}

type stageBeatsInbound struct {
	interceptor.ActivityInboundInterceptorBase
	rec *stageBeats
}

func (i *stageBeatsInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	out := &stageBeatsOutbound{rec: i.rec}
	out.Next = outbound
	return i.Next.Init(out)
}

type stageBeatsOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	rec *stageBeats
}

func (o *stageBeatsOutbound) RecordHeartbeat(ctx context.Context, details ...interface{}) {
	if len(details) == 1 {
		o.rec.mu.Lock()
		o.rec.beats = append(o.rec.beats, details[0])
		o.rec.mu.Unlock()
	}
	o.Next.RecordHeartbeat(ctx, details...)
}

// runStageActivity runs one activity in a test environment, resuming
// from resume when it is not nil, and returns every heartbeat of type P.
func runStageActivity[P, R any](t *testing.T, a *Activities, fn any, in any, resume *P) (R, []P, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	rec := &stageBeats{}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{rec}})
	env.RegisterActivity(a)
	if resume != nil {
		env.SetHeartbeatDetails(*resume)
	}
	var res R
	val, err := env.ExecuteActivity(fn, in)
	var beats []P
	rec.mu.Lock()
	for _, b := range rec.beats {
		if p, ok := b.(P); ok {
			beats = append(beats, p)
		}
	}
	rec.mu.Unlock()
	if err != nil {
		return res, beats, err
	}
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	return res, beats, nil
}

func stageEgress(t *testing.T, a *Activities, in StageEgressInput, resume *StageEgressProgress) (StageEgressResult, []StageEgressProgress, error) {
	t.Helper()
	return runStageActivity[StageEgressProgress, StageEgressResult](t, a, a.StageEgress, in, resume)
}

func checkEgress(t *testing.T, a *Activities, in CheckEgressInput) (CheckEgressResult, []CheckEgressProgress, error) {
	t.Helper()
	return runStageActivity[CheckEgressProgress, CheckEgressResult](t, a, a.CheckEgress, in, nil)
}

func stagedRecord(p string, data []byte, format string) model.FileRecord {
	sum := sha256.Sum256(data)
	return model.FileRecord{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), EncodingFormat: format}
}

func storeFiles(t *testing.T, s connectors.Store, prefix string) map[string]string {
	t.Helper()
	objs, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range objs {
		rc, err := s.Open(context.Background(), o.Key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(o.Key, prefix+"/")] = string(data)
	}
	return out
}

func TestStageEgress(t *testing.T) {
	a, staging, _ := newStageActivities(t)
	paths := []string{"results/table.csv", "figures/plot.png", "notes/summary.md"}
	res, beats, err := stageEgress(t, a, StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: paths}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []model.FileRecord{
		stagedRecord("figures/plot.png", stageWorkspaceFiles["figures/plot.png"], "image/png"),
		stagedRecord("notes/summary.md", stageWorkspaceFiles["notes/summary.md"], "text/markdown"),
		stagedRecord("results/table.csv", stageWorkspaceFiles["results/table.csv"], "text/csv"),
	}
	if fmt.Sprint(res.Files) != fmt.Sprint(want) {
		t.Fatalf("files = %+v\nwant %+v (sorted by path, with digests of the workspace's bytes)", res.Files, want)
	}
	staged := storeFiles(t, staging, stageID)
	if len(staged) != len(paths) {
		t.Errorf("staging holds %v; want exactly the 3 files listed", sortedKeys(staged))
	}
	for _, p := range paths {
		if staged[p] != string(stageWorkspaceFiles[p]) {
			t.Errorf("staged %s differs from the workspace's", p)
		}
	}
	if other := storeFiles(t, staging, stageID+"0"); other["results/table.csv"] != "another request\n" {
		t.Errorf("the neighbouring request's staging area changed: %v", other)
	}
	// Progress grows to the total, part-way through the big file too.
	var total int64
	for _, f := range want {
		total += f.Size
	}
	last := beats[len(beats)-1]
	if last.BytesDone != total || last.BytesTotal != total || last.FilesTotal != 3 || len(last.Done) != 3 || last.Current != nil {
		t.Fatalf("last heartbeat %+v; want all %d bytes of 3 files done", last, total)
	}
	midFile := false
	for i, b := range beats {
		if i > 0 && b.BytesDone < beats[i-1].BytesDone {
			t.Errorf("bytes done went back: %d then %d", beats[i-1].BytesDone, b.BytesDone)
		}
		midFile = midFile || (b.Current != nil && b.Current.Key == stageID+"/figures/plot.png" && b.BytesDone > 0)
	}
	if !midFile {
		t.Errorf("no checkpoint while the 3 MiB file was copied")
	}
}

// A resubmission stages the new list: files dropped from it leave
// staging, changed files are snapshotted again, and what Airlock keeps at
// the top of the area stays.
func TestStageEgressResubmission(t *testing.T) {
	a, staging, workspaces := newStageActivities(t)
	in := StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"results/table.csv", "results/model.pkl", "notes/summary.md"}}
	if _, _, err := stageEgress(t, a, in, nil); err != nil {
		t.Fatal(err)
	}
	put(t, staging, stageID+"/"+CrateFile, []byte(`{}`))
	fixed := []byte("region,patients\nnorth,<10\nsouth,120\n")
	put(t, workspaces, stageWorkspace+"/results/table.csv", fixed)
	in.Paths = []string{"results/table.csv", "figures/plot.png"}
	res, _, err := stageEgress(t, a, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []model.FileRecord{
		stagedRecord("figures/plot.png", stageWorkspaceFiles["figures/plot.png"], "image/png"),
		stagedRecord("results/table.csv", fixed, "text/csv"),
	}
	if fmt.Sprint(res.Files) != fmt.Sprint(want) {
		t.Fatalf("files = %+v\nwant %+v", res.Files, want)
	}
	staged := storeFiles(t, staging, stageID)
	if got := strings.Join(sortedKeys(staged), ","); got != "figures/plot.png,results/table.csv,"+CrateFile {
		t.Errorf("staging holds %s; want the new turn's files and the crate, not the dropped files", got)
	}
	if staged["results/table.csv"] != string(fixed) {
		t.Errorf("staged table.csv = %q; want the fixed bytes", staged["results/table.csv"])
	}
}

// A file replaced by a folder of the same name in a new turn (and the
// other way round) is staged, the stale entry removed first.
func TestStageEgressFileBecomesFolder(t *testing.T) {
	a, staging, workspaces := newStageActivities(t)
	put(t, workspaces, stageWorkspace+"/out", []byte("a file named out\n"))
	if _, _, err := stageEgress(t, a, StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"out"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := workspaces.DeletePrefix(context.Background(), stageWorkspace+"/out"); err != nil {
		t.Fatal(err)
	}
	put(t, workspaces, stageWorkspace+"/out/part-1.csv", []byte("x\n1\n"))
	if _, _, err := stageEgress(t, a, StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"out/part-1.csv"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sortedKeys(storeFiles(t, staging, stageID)), ","); got != "out/part-1.csv" {
		t.Errorf("staging holds %s; want out/part-1.csv only", got)
	}
}

func TestStageEgressRefusals(t *testing.T) {
	a, staging, workspaces := newStageActivities(t)
	put(t, workspaces, stageWorkspace+"/results/sub/deep.csv", []byte("x\n"))
	// An earlier turn's snapshot, which a refused turn must leave alone.
	if _, _, err := stageEgress(t, a, StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"notes/summary.md"}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   StageEgressInput
		want string
	}{
		{"request id escapes", StageEgressInput{RequestID: "../x", Workspace: stageWorkspace, Paths: []string{"results/table.csv"}}, `request_id: "../x" cannot name a request's folder`},
		{"bad workspace", StageEgressInput{RequestID: stageID, Workspace: "../alpha", Paths: []string{"results/table.csv"}}, `workspace: invalid workspace "../alpha"`},
		{"no files", StageEgressInput{RequestID: stageID, Workspace: stageWorkspace}, "files: empty: name at least one file of workspace alpha"},
		{"escaping path", StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"results/table.csv", "../alpha-2/results/table.csv"}}, `files[1]: path "../alpha-2/results/table.csv" escapes its root with '..'`},
		{"unclean path", StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"results//table.csv"}}, `files[0]: "results//table.csv" is not in clean form: name it as "results/table.csv" (a path in workspace alpha)`},
		{"absolute path", StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"/etc/passwd"}}, `files[0]: absolute path "/etc/passwd"`},
		{"reserved path", StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{CrateFile}}, "files[0]: ro-crate-metadata.json is where Airlock writes its own"},
		{"listed twice", StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"results/table.csv", "notes/summary.md", "results/table.csv"}}, "files[2]: results/table.csv is listed twice (also files[0])"},
		{"file inside another", StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"results/sub/deep.csv", "results"}}, "files[0]: results/sub/deep.csv is inside results, also listed (files[1])"},
		{"missing file", StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"results/table.csv", "results/missing.csv"}}, "files[1]: results/missing.csv: no such file in workspace alpha (" + workspaces.URL(stageWorkspace+"/results/missing.csv") + "): check the path"},
		{"folder", StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"results"}}, "files[0]: results is a folder of workspace alpha, not a file: an egress names each file it sends, so list the files you want from it (it holds results/model.pkl, results/sub/deep.csv, results/table.csv)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := stageEgress(t, a, tc.in, nil)
			if err == nil || !isNonRetryable(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want a non-retryable error saying %q", err, tc.want)
			}
			if got := strings.Join(sortedKeys(storeFiles(t, staging, stageID)), ","); got != "notes/summary.md" {
				t.Errorf("a refused turn changed staging: it holds %s", got)
			}
		})
	}
	t.Run("workspace store unreachable", func(t *testing.T) {
		b := *a
		b.Workspaces = unreachableStat{workspaces}
		_, _, err := stageEgress(t, &b, StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"results/table.csv"}}, nil)
		if err == nil || isNonRetryable(err) || !strings.Contains(err.Error(), "looking for results/table.csv in workspace alpha") {
			t.Fatalf("err = %v; want a retryable error naming the file and the workspace", err)
		}
	})
}

// unreachableStat fails every Stat, as an unreachable object store does.
type unreachableStat struct{ connectors.Store }

func (unreachableStat) Stat(context.Context, string) (connectors.ObjectInfo, error) {
	return connectors.ObjectInfo{}, errors.New("dial tcp 10.0.0.1:443: connection refused")
}

// interruptingStore serves the workspace, except that reads of one file
// fail after a number of bytes (once), and it counts the bytes read of it.
type interruptingStore struct {
	connectors.Store
	key       string
	failAfter int64
	read      atomic.Int64
}

func (s *interruptingStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Store.Open(ctx, key)
	if err != nil || key != s.key {
		return rc, err
	}
	return &interruptedReader{ReadSeekCloser: rc.(io.ReadSeekCloser), s: s}, nil
}

type interruptedReader struct {
	io.ReadSeekCloser
	s *interruptingStore
}

func (r *interruptedReader) Read(p []byte) (int, error) {
	if r.s.failAfter > 0 && r.s.read.Load() >= r.s.failAfter {
		return 0, errors.New("connection reset by peer")
	}
	n, err := r.ReadSeekCloser.Read(p)
	r.s.read.Add(int64(n))
	return n, err
}

// A retried StageEgress skips the files done and resumes the one in
// flight from its checkpoint, so the bytes already staged are not read
// again, and the digest covers the whole file.
func TestStageEgressResumes(t *testing.T) {
	a, staging, workspaces := newStageActivities(t)
	big := stageWorkspaceFiles["figures/plot.png"]
	flaky := &interruptingStore{Store: workspaces, key: stageWorkspace + "/figures/plot.png", failAfter: 1 << 20}
	a.Workspaces = flaky
	in := StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"results/table.csv", "figures/plot.png"}}
	_, beats, err := stageEgress(t, a, in, nil)
	if err == nil || isNonRetryable(err) || !strings.Contains(err.Error(), "staging figures/plot.png of workspace alpha") {
		t.Fatalf("err = %v; want a retryable error naming the file", err)
	}
	last := beats[len(beats)-1]
	if last.Current == nil || last.Current.Store.Offset < 512<<10 {
		t.Fatalf("last heartbeat %+v; want a checkpoint part-way through the big file", last)
	}
	checkpointed := last.Current.Store.Offset
	flaky.failAfter = 0
	flaky.read.Store(0)
	res, _, err := stageEgress(t, a, in, &last)
	if err != nil {
		t.Fatal(err)
	}
	want := []model.FileRecord{
		stagedRecord("figures/plot.png", big, "image/png"),
		stagedRecord("results/table.csv", stageWorkspaceFiles["results/table.csv"], "text/csv"),
	}
	if fmt.Sprint(res.Files) != fmt.Sprint(want) {
		t.Fatalf("files = %+v\nwant %+v", res.Files, want)
	}
	if got, wantRead := flaky.read.Load(), int64(len(big))-checkpointed; got != wantRead {
		t.Errorf("the retry read %d bytes of the big file; want %d (resumed at %d)", got, wantRead, checkpointed)
	}
	if storeFiles(t, staging, stageID)["figures/plot.png"] != string(big) {
		t.Errorf("the resumed copy differs from the workspace's file")
	}
}

// The workspace can be an S3 bucket: the snapshot and its refusals work
// the same against a real S3 server.
func TestStageEgressFromS3Workspace(t *testing.T) {
	g := testservers.VersityGW(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bucket := "workspaces"
	if err := g.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{secrets.EnvVar("ws-access"): g.AccessKey, secrets.EnvVar("ws-secret"): g.SecretKey}
	prov := &secrets.Provider{Getenv: func(k string) string { return env[k] }}
	workspaces, err := s3store.NewStore(ctx, model.Connection{
		Type: model.ConnS3, Name: "workspaces", URL: "s3://" + bucket + "/areas", Endpoint: g.Endpoint, PathStyle: true,
		Credentials: model.Credentials{AccessKeyIDKey: "ws-access", SecretAccessKeyKey: "ws-secret"},
	}, prov, s3store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, staging, _ := newStageActivities(t)
	a.Workspaces = workspaces
	for p, data := range stageWorkspaceFiles {
		put(t, workspaces, stageWorkspace+"/"+p, data)
	}
	res, _, err := stageEgress(t, a, StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"figures/plot.png", "results/table.csv"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []model.FileRecord{
		stagedRecord("figures/plot.png", stageWorkspaceFiles["figures/plot.png"], "image/png"),
		stagedRecord("results/table.csv", stageWorkspaceFiles["results/table.csv"], "text/csv"),
	}
	if fmt.Sprint(res.Files) != fmt.Sprint(want) {
		t.Fatalf("files = %+v\nwant %+v", res.Files, want)
	}
	if storeFiles(t, staging, stageID)["figures/plot.png"] != string(stageWorkspaceFiles["figures/plot.png"]) {
		t.Errorf("staged plot.png differs from the bucket's")
	}
	for p, want := range map[string]string{
		"results":          "files[0]: results is a folder of workspace alpha, not a file",
		"results/nope.csv": "files[0]: results/nope.csv: no such file in workspace alpha (s3://workspaces/areas/alpha/results/nope.csv)",
	} {
		_, _, err := stageEgress(t, a, StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{p}}, nil)
		if err == nil || !isNonRetryable(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("staging %s: err = %v; want a non-retryable error saying %q", p, err, want)
		}
	}
}

func stageChecks() *model.OutputChecks {
	return &model.OutputChecks{
		Limits: &model.OutputLimits{MaxFiles: 10, MaxFileSize: 8 << 20, OnFail: model.OnFailBlock},
		Types:  &model.OutputTypes{Allowed: []string{".csv", ".png", ".md"}, OnFail: model.OnFailFlag},
		Rules: []model.OutputRule{
			{Name: "no-emails", Kind: model.RuleDenyContent, Pattern: `[\w.]+@[\w.]+\.org`, OnFail: model.OnFailFlag},
			{Name: "small-counts", Kind: model.RuleMinCellCount, Threshold: 10, Columns: "patients", OnFail: model.OnFailBlock},
		},
	}
}

func TestCheckEgress(t *testing.T) {
	a, _, _ := newStageActivities(t)
	staged, _, err := stageEgress(t, a, StageEgressInput{RequestID: stageID, Workspace: stageWorkspace,
		Paths: []string{"results/table.csv", "results/model.pkl", "figures/plot.png", "notes/summary.md"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, beats, err := checkEgress(t, a, CheckEgressInput{RequestID: stageID, Files: staged.Files, Checks: stageChecks()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Blocked {
		t.Errorf("small-counts (block) failed, yet the result is not blocked: %+v", res)
	}
	var got []string
	for _, c := range res.Checks {
		got = append(got, fmt.Sprintf("%s:%v:%s:%s", c.Name, c.Passed, c.OnFail, strings.Join(c.Files, "+")))
	}
	want := "limits:true:block: types:false:flag:results/model.pkl no-emails:false:flag:notes/summary.md small-counts:false:block:results/table.csv"
	if strings.Join(got, " ") != want {
		t.Errorf("checks = %s\nwant %s", strings.Join(got, " "), want)
	}
	if msg := res.Checks[2].Message; !strings.Contains(msg, "notes/summary.md (line 2)") || strings.Contains(msg, "jo@example.org") ||
		!strings.Contains(msg, "2 binary files were not read (a NUL byte in the first 8 KiB): figures/plot.png, results/model.pkl") {
		t.Errorf("no-emails says %q; want the line, not the address, and the binary files skipped", msg)
	}
	if msg := res.Checks[3].Message; !strings.Contains(msg, `results/table.csv (row 1 (line 2) column "patients")`) {
		t.Errorf("small-counts says %q; want the row and column", msg)
	}
	// The staged copies were read, and progress named them.
	read := map[string]bool{}
	var bytesRead int64
	for _, b := range beats {
		read[b.File] = true
		if b.BytesRead < bytesRead {
			t.Errorf("bytes read went back: %d then %d", bytesRead, b.BytesRead)
		}
		bytesRead = b.BytesRead
	}
	for _, p := range []string{"results/table.csv", "notes/summary.md", "figures/plot.png"} {
		if !read[p] {
			t.Errorf("no heartbeat names %s: %v", p, read)
		}
	}
	if bytesRead == 0 {
		t.Errorf("heartbeats counted no bytes read")
	}

	// The requester fixes the table: only flags remain, so it is not blocked.
	fixed := stageChecks()
	fixed.Rules[1].Threshold = 3
	res, _, err = checkEgress(t, a, CheckEgressInput{RequestID: stageID, Files: staged.Files, Checks: fixed})
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocked || res.Checks[3].Passed != true {
		t.Errorf("only flag checks failed, yet %+v", res)
	}
	// A policy without checks runs none.
	res, _, err = checkEgress(t, a, CheckEgressInput{RequestID: stageID, Files: staged.Files})
	if err != nil || res.Blocked || len(res.Checks) != 0 {
		t.Errorf("no checks: %+v, %v; want no results, not blocked", res, err)
	}
}

func TestCheckEgressErrors(t *testing.T) {
	a, staging, _ := newStageActivities(t)
	staged, _, err := stageEgress(t, a, StageEgressInput{RequestID: stageID, Workspace: stageWorkspace, Paths: []string{"results/table.csv", "notes/summary.md"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := stageChecks()
	bad.Rules[0].Pattern = "(unclosed"
	for _, tc := range []struct {
		name string
		in   CheckEgressInput
		want string
	}{
		{"request id", CheckEgressInput{RequestID: "a/b", Files: staged.Files}, `request_id: "a/b" cannot name a request's folder`},
		{"unclean path", CheckEgressInput{RequestID: stageID, Files: []model.FileRecord{{Path: "../x"}}}, `files[0].path: "../x" is not a clean relative path`},
		{"listed twice", CheckEgressInput{RequestID: stageID, Files: withFile(staged.Files, staged.Files[0])}, "files[2].path: notes/summary.md is listed twice (also files[0])"},
		{"invalid checks", CheckEgressInput{RequestID: stageID, Files: staged.Files, Checks: bad}, "the policy's checks are not valid: spec.checks.rules[0].pattern"},
		{"missing staged copy", CheckEgressInput{RequestID: stageID, Files: withFile(staged.Files, model.FileRecord{Path: "gone.csv"}), Checks: stageChecks()},
			"the staged copy of gone.csv (" + staging.URL(stageID+"/gone.csv") + ") is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := checkEgress(t, a, tc.in)
			if err == nil || !isNonRetryable(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want a non-retryable error saying %q", err, tc.want)
			}
		})
	}
	t.Run("staging unreachable", func(t *testing.T) {
		b := *a
		b.Staging = unreachableOpen{staging}
		_, _, err := checkEgress(t, &b, CheckEgressInput{RequestID: stageID, Files: staged.Files, Checks: stageChecks()})
		if err == nil || isNonRetryable(err) || !strings.Contains(err.Error(), "checking the files of "+stageID) {
			t.Fatalf("err = %v; want a retryable error naming the request", err)
		}
	})
}

// unreachableOpen fails every Open, as an unreachable object store does.
type unreachableOpen struct{ connectors.Store }

func (unreachableOpen) Open(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("dial tcp 10.0.0.1:443: connection refused")
}

// withFile is files and one more, in a new slice.
func withFile(files []model.FileRecord, f model.FileRecord) []model.FileRecord {
	return append(append([]model.FileRecord(nil), files...), f)
}
