package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/version"
)

const uploadID = "upload-clinic-abc123"

// uploadFiles are what the uploader put in staging, by path in the request.
var uploadFiles = map[string][]byte{
	"visits.csv":                 []byte("id,clinic\n1,north\n2,south\n"),
	"data/2024/patients.parquet": bytes.Repeat([]byte("PAR1 0123456789abcdef"), 200000), // 4 MiB
}

// newUploadActivities is Activities over a real local staging store that
// holds uploadFiles for uploadID, with what else an upload's folder and
// its neighbours hold: the upload bookkeeping, a crate from an earlier
// step, another request whose id starts with this one's, and a file still
// being uploaded (not committed).
func newUploadActivities(t *testing.T) (*Activities, *localstore.Store) {
	t.Helper()
	staging, err := localstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = staging.Close() })
	for p, data := range uploadFiles {
		put(t, staging, uploadID+"/"+p, data)
	}
	put(t, staging, uploadID+"/"+model.UploadStateFolder+"/"+uploadID+".0123456789abcdef.json", []byte(`{"offset":3}`))
	put(t, staging, uploadID+"/"+CrateFile, []byte(`{}`))
	put(t, staging, uploadID+"0/other.csv", []byte("another request's file\n"))
	w, err := staging.Create(context.Background(), uploadID+"/half-done.csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	return &Activities{
		Staging:    staging,
		Workspaces: staging,
		Secrets:    &secrets.Provider{},
		// Small reads and a heartbeat at every one, so progress shows.
		Transfer: TransferConfig{BufferSize: 16 << 10, CheckpointEvery: time.Nanosecond},
	}, staging
}

func put(t *testing.T, s connectors.Store, key string, data []byte) {
	t.Helper()
	w, err := s.Create(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// expectedUpload is what the uploader confirms: every uploaded file at its size.
func expectedUpload() []model.ExpectedFile {
	var out []model.ExpectedFile
	for _, p := range sortedKeys(uploadFiles) {
		out = append(out, model.ExpectedFile{Path: p, Size: int64(len(uploadFiles[p]))})
	}
	return out
}

// runCheckUpload runs CheckUpload in a test activity environment, and
// returns its result and every progress it heartbeated.
func runCheckUpload(t *testing.T, a *Activities, in CheckUploadInput) (CheckUploadResult, []CheckUploadProgress, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	// The SDK sends heartbeats on batched; an interceptor sees each call.
	rec := &heartbeatRecorder{}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{rec}})
	env.RegisterActivity(a)
	val, err := env.ExecuteActivity(a.CheckUpload, in)
	if err != nil {
		return CheckUploadResult{}, rec.progress(), err
	}
	var res CheckUploadResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	return res, rec.progress(), nil
}

// heartbeatRecorder keeps every CheckUploadProgress an activity heartbeats.
type heartbeatRecorder struct {
	interceptor.WorkerInterceptorBase
	mu    sync.Mutex
	beats []CheckUploadProgress
}

func (h *heartbeatRecorder) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	in := &recordingInbound{rec: h}
	in.Next = next
	return in
}

func (h *heartbeatRecorder) progress() []CheckUploadProgress {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]CheckUploadProgress(nil), h.beats...)
}

type recordingInbound struct {
	interceptor.ActivityInboundInterceptorBase
	rec *heartbeatRecorder
}

func (i *recordingInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	out := &recordingOutbound{rec: i.rec}
	out.Next = outbound
	return i.Next.Init(out)
}

type recordingOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	rec *heartbeatRecorder
}

func (o *recordingOutbound) RecordHeartbeat(ctx context.Context, details ...interface{}) {
	if len(details) == 1 {
		if p, ok := details[0].(CheckUploadProgress); ok {
			o.rec.mu.Lock()
			o.rec.beats = append(o.rec.beats, p)
			o.rec.mu.Unlock()
		}
	}
	o.Next.RecordHeartbeat(ctx, details...)
}

func checkByName(t *testing.T, res CheckUploadResult, name string) model.CheckResult {
	t.Helper()
	for _, c := range res.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, res.Checks)
	return model.CheckResult{}
}

func checkNames(res CheckUploadResult) []string {
	var out []string
	for _, c := range res.Checks {
		out = append(out, c.Name)
	}
	return out
}

func TestCheckUploadPasses(t *testing.T) {
	a, _ := newUploadActivities(t)
	res, beats, err := runCheckUpload(t, a, CheckUploadInput{RequestID: uploadID, Expected: expectedUpload(),
		Limits: model.UploadLimits{MaxFiles: 2, MaxFileSize: 8 << 20, MaxRequestSize: 8 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed {
		t.Fatalf("checks failed: %+v", res.Checks)
	}
	if got := strings.Join(checkNames(res), ","); got != "files,limits,sha256" {
		t.Errorf("checks run = %s; want files,limits,sha256", got)
	}
	for _, c := range res.Checks {
		if !c.Passed || c.Message == "" {
			t.Errorf("check %+v: want passed, with a message", c)
		}
	}
	formats := map[string]string{"visits.csv": "text/csv", "data/2024/patients.parquet": "application/vnd.apache.parquet"}
	if len(res.Files) != len(uploadFiles) {
		t.Fatalf("files = %+v; want exactly the uploaded files (not the bookkeeping, the crate, the partial file or the other request's)", res.Files)
	}
	var total int64
	for i, f := range res.Files {
		data := uploadFiles[f.Path]
		sum := sha256.Sum256(data)
		want := model.FileRecord{Path: f.Path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), EncodingFormat: formats[f.Path]}
		if f != want {
			t.Errorf("file %d = %+v; want %+v", i, f, want)
		}
		total += f.Size
	}
	if res.Files[0].Path > res.Files[1].Path {
		t.Errorf("files not sorted by path: %+v", res.Files)
	}
	// Progress: the bytes done grow, part-way through a file too, up to
	// the total.
	if n := len(beats); n == 0 || beats[n-1].BytesDone != total || beats[n-1].FilesDone != 2 {
		t.Fatalf("heartbeats %+v; want the last to count all %d bytes of 2 files", beats, total)
	}
	midFile := false
	for i, b := range beats {
		if b.BytesTotal != total || b.FilesTotal != 2 || b.BytesDone > total {
			t.Errorf("heartbeat %+v; want progress out of %d bytes in 2 files", b, total)
		}
		if i > 0 && b.BytesDone < beats[i-1].BytesDone {
			t.Errorf("bytes done went back: %+v then %+v", beats[i-1], b)
		}
		midFile = midFile || (b.File == "data/2024/patients.parquet" && b.BytesDone > 0 && b.BytesDone < int64(len(uploadFiles[b.File])))
	}
	if !midFile {
		t.Errorf("no heartbeat while the 4 MiB file was read: %+v", beats)
	}
}

func TestCheckUploadFileSetMismatch(t *testing.T) {
	a, staging := newUploadActivities(t)
	put(t, staging, uploadID+"/notes/extra.txt", []byte("not confirmed"))
	expected := []model.ExpectedFile{
		{Path: "data/2024/patients.parquet", Size: int64(len(uploadFiles["data/2024/patients.parquet"]))},
		{Path: "visits.csv", Size: 3},     // wrong size
		{Path: "dictionary.md", Size: 10}, // never uploaded
		{Path: "half-done.csv", Size: 7},  // still being uploaded
	}
	res, _, err := runCheckUpload(t, a, CheckUploadInput{RequestID: uploadID, Expected: expected})
	if err != nil {
		t.Fatalf("a failed check is a result, not an error: %v", err)
	}
	if res.Passed || len(res.Files) != 0 {
		t.Fatalf("result = %+v; want failed checks and no files", res)
	}
	if got := strings.Join(checkNames(res), ","); got != "files,limits" {
		t.Errorf("checks run = %s; want files,limits (nothing is fingerprinted while the set is wrong)", got)
	}
	files := checkByName(t, res, CheckFiles)
	if files.Passed {
		t.Fatalf("files check passed: %+v", files)
	}
	for _, want := range []string{
		"missing: dictionary.md, half-done.csv (upload them",
		"wrong size: visits.csv (26 bytes uploaded, 3 confirmed)",
		"not confirmed: notes/extra.txt (delete them, or list them in the confirmation)",
		"then confirm again",
	} {
		if !strings.Contains(files.Message, want) {
			t.Errorf("files check says %q; want it to say %q", files.Message, want)
		}
	}
	if !checkByName(t, res, CheckLimits).Passed {
		t.Errorf("no limits set, yet the limits check failed: %+v", res.Checks)
	}
}

func TestCheckUploadLimits(t *testing.T) {
	parquet := int64(len(uploadFiles["data/2024/patients.parquet"]))
	for _, tc := range []struct {
		name   string
		limits model.UploadLimits
		want   string
	}{
		{"too many files", model.UploadLimits{MaxFiles: 1}, "2 files are uploaded but a request may hold at most 1 (uploads.maxFiles)"},
		{"file too big", model.UploadLimits{MaxFileSize: parquet - 1}, "(uploads.maxFileSize): data/2024/patients.parquet ("},
		{"request too big", model.UploadLimits{MaxRequestSize: parquet}, "the files total 4.0 MiB but a request may hold at most 4.0 MiB (uploads.maxRequestSize)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := newUploadActivities(t)
			res, _, err := runCheckUpload(t, a, CheckUploadInput{RequestID: uploadID, Expected: expectedUpload(), Limits: tc.limits})
			if err != nil {
				t.Fatal(err)
			}
			lim := checkByName(t, res, CheckLimits)
			if res.Passed || lim.Passed || !strings.Contains(lim.Message, tc.want) {
				t.Fatalf("limits check = %+v; want it failed saying %q", lim, tc.want)
			}
			if !checkByName(t, res, CheckFiles).Passed {
				t.Errorf("the files are the confirmed ones, yet the files check failed: %+v", res.Checks)
			}
			if len(res.Checks) != 2 {
				t.Errorf("checks = %+v; nothing is fingerprinted beyond the limits", res.Checks)
			}
		})
	}
}

// changingStore is the staging store, except that one file reads short and
// another has gone by the time it is opened: someone changing the upload
// while it is checked.
type changingStore struct {
	connectors.Store
	short, gone string
}

func (s changingStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	switch key {
	case s.gone:
		return nil, fmt.Errorf("local store: key %q: %w", key, connectors.ErrNotFound)
	case s.short:
		rc, err := s.Store.Open(ctx, key)
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(rc, 4), rc}, nil
	}
	return s.Store.Open(ctx, key)
}

func TestCheckUploadFilesChangedWhileChecked(t *testing.T) {
	a, staging := newUploadActivities(t)
	a.Staging = changingStore{Store: staging, short: uploadID + "/visits.csv", gone: uploadID + "/data/2024/patients.parquet"}
	res, _, err := runCheckUpload(t, a, CheckUploadInput{RequestID: uploadID, Expected: expectedUpload()})
	if err != nil {
		t.Fatal(err)
	}
	sha := checkByName(t, res, CheckSHA256)
	if res.Passed || sha.Passed || len(res.Files) != 0 {
		t.Fatalf("result = %+v; want the sha256 check failed and no files", res)
	}
	for _, want := range []string{"data/2024/patients.parquet (deleted while it was checked)", "visits.csv (26 bytes when listed, 4 when read)", "confirm again"} {
		if !strings.Contains(sha.Message, want) {
			t.Errorf("sha256 check says %q; want %q", sha.Message, want)
		}
	}
}

// failingStore fails every listing, as an unreachable object store does.
type failingStore struct{ connectors.Store }

func (failingStore) List(context.Context, string) ([]connectors.ObjectInfo, error) {
	return nil, errors.New("dial tcp 10.0.0.1:443: connection refused")
}

func TestCheckUploadErrors(t *testing.T) {
	a, staging := newUploadActivities(t)
	for _, tc := range []struct {
		name string
		in   CheckUploadInput
		want string
	}{
		{"request id escapes", CheckUploadInput{RequestID: "../etc", Expected: expectedUpload()}, `request_id: "../etc" cannot name a request's folder`},
		{"request id with a folder", CheckUploadInput{RequestID: "a/b", Expected: expectedUpload()}, `request_id: "a/b"`},
		{"unclean expected path", CheckUploadInput{RequestID: uploadID, Expected: []model.ExpectedFile{{Path: "./visits.csv"}}}, `expected[0].path: "./visits.csv" is not a clean relative path`},
		{"reserved expected path", CheckUploadInput{RequestID: uploadID, Expected: []model.ExpectedFile{{Path: CrateFile}}}, "expected[0].path: ro-crate-metadata.json is where Airlock writes its own"},
		{"negative limit", CheckUploadInput{RequestID: uploadID, Expected: expectedUpload(), Limits: model.UploadLimits{MaxFiles: -1}}, "limits: maxFileSize, maxRequestSize and maxFiles cannot be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCheckUpload(t, a, tc.in)
			if err == nil || !isNonRetryable(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want a non-retryable error saying %q", err, tc.want)
			}
		})
	}
	t.Run("store unreachable", func(t *testing.T) {
		a.Staging = failingStore{staging}
		_, _, err := runCheckUpload(t, a, CheckUploadInput{RequestID: uploadID, Expected: expectedUpload()})
		var app *temporal.ApplicationError
		if err == nil || isNonRetryable(err) || !errors.As(err, &app) || !strings.Contains(err.Error(), "listing the uploaded files of "+uploadID) {
			t.Fatalf("err = %v; want a retryable error naming the request", err)
		}
	})
}

// An upload's crate: a CreateAction for the upload by the requester (not
// extractions), its instrument, and an AssessAction per check.
func TestUploadCrate(t *testing.T) {
	created := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	files := []model.FileRecord{
		{Path: "visits.csv", Size: 25, SHA256: strings.Repeat("a", 64), EncodingFormat: "text/csv"},
		{Path: "data/p.parquet", Size: 1024, SHA256: strings.Repeat("b", 64), EncodingFormat: "application/vnd.apache.parquet"},
	}
	req := model.RequestStatus{
		ID: uploadID, Kind: model.KindUpload, State: model.StateAwaitingApproval, DataSource: "clinic", Project: "d4e6",
		Workspace: "ws", Requester: "rita", Files: files, ManifestDigest: model.ManifestDigest(files), CreatedAt: created,
		Checks: []model.CheckResult{
			{Name: CheckFiles, Passed: true, Message: "the 2 confirmed files are uploaded"},
			{Name: CheckLimits, Passed: true, Message: "within the limits"},
			{Name: CheckSHA256, Passed: true, Message: "2 files fingerprinted"},
		},
	}
	up := &CrateUpload{StartedAt: created, ConfirmedAt: created.Add(time.Hour), CheckedAt: created.Add(time.Hour + time.Minute), Via: "api"}
	data, err := BuildCrate(CrateInput{Request: req, DataSource: model.DataSource{Metadata: model.ObjectMeta{Name: "clinic"}}, Upload: up})
	if err != nil {
		t.Fatal(err)
	}
	var crate struct {
		Graph []map[string]any `json:"@graph"`
	}
	if err := json.Unmarshal(data, &crate); err != nil {
		t.Fatal(err)
	}
	byID := map[string]map[string]any{}
	var creates, assess []map[string]any
	for _, e := range crate.Graph {
		byID[e["@id"].(string)] = e
		switch e["@type"] {
		case "CreateAction":
			creates = append(creates, e)
		case "AssessAction":
			assess = append(assess, e)
		}
	}
	if len(creates) != 1 || creates[0]["@id"] != "#upload" {
		t.Fatalf("create actions = %v; want the upload's only", creates)
	}
	c := creates[0]
	if c["agent"].(map[string]any)["@id"] != "#user-rita" || c["startTime"] != "2025-03-01T09:00:00Z" || c["endTime"] != "2025-03-01T10:00:00Z" {
		t.Errorf("upload action = %v; want rita as agent, from the request's start to the confirmation", c)
	}
	var results []string
	for _, r := range c["result"].([]any) {
		results = append(results, r.(map[string]any)["@id"].(string))
	}
	if strings.Join(results, ",") != "data/p.parquet,visits.csv" {
		t.Errorf("upload results = %v; want the files", results)
	}
	inst := byID[c["instrument"].(map[string]any)["@id"].(string)]
	if inst["name"] != UploadInstrumentName || inst["version"] != version.Version || inst["@type"] != "SoftwareApplication" {
		t.Errorf("instrument = %v", inst)
	}
	if len(assess) != 3 {
		t.Fatalf("assess actions = %v; want one per check", assess)
	}
	for i, e := range assess {
		if e["additionalType"].(map[string]any)["@id"] != "https://w3id.org/shp#CheckValue" || e["actionStatus"] != "http://schema.org/CompletedActionStatus" ||
			e["endTime"] != "2025-03-01T10:01:00Z" || e["description"] != req.Checks[i].Message || !strings.Contains(e["name"].(string), req.Checks[i].Name+": passed") {
			t.Errorf("check %d = %v", i, e)
		}
		if byID[e["agent"].(map[string]any)["@id"].(string)]["@type"] != "SoftwareApplication" {
			t.Errorf("check %d's agent is not Airlock: %v", i, e["agent"])
		}
	}
	if assess[2]["instrument"].(map[string]any)["@id"] != sha256Term || byID[sha256Term]["@type"] != "DefinedTerm" {
		t.Errorf("the sha256 check does not name its algorithm: %v", assess[2])
	}
	mentions := map[string]bool{}
	for _, m := range byID["./"]["mentions"].([]any) {
		mentions[m.(map[string]any)["@id"].(string)] = true
	}
	for _, id := range []string{"#upload", assess[0]["@id"].(string), assess[2]["@id"].(string)} {
		if !mentions[id] {
			t.Errorf("the root does not mention %s: %v", id, mentions)
		}
	}
	if byID["./"]["datePublished"] != "2025-03-01T10:01:00Z" {
		t.Errorf("datePublished = %v; want when the files passed their checks", byID["./"]["datePublished"])
	}
}
