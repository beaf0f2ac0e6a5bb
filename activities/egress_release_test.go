package activities

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/localstore"
	s3store "github.com/airlockhq/airlock/connectors/s3"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/testservers"
)

const (
	egressID       = "egress-ws1-ab12cd"
	signingKeyName = "airlock-egress-signing-key"
)

// egressFiles are the request's staged files, by path.
var egressFiles = map[string][]byte{
	"results/summary.csv": []byte("region,count\nnorth,120\nsouth,98\n"),
	"figures/fig1.png":    bytes.Repeat([]byte("\x89PNG fig1 "), 150000), // 1.5 MB
	"raw/patients.csv":    []byte("id,name\n1,Ann\n"),
}

func fileRecord(p string) model.FileRecord {
	s := sha256.Sum256(egressFiles[p])
	return model.FileRecord{Path: p, Size: int64(len(egressFiles[p])), SHA256: hex.EncodeToString(s[:]), EncodingFormat: "text/csv"}
}

// egressFixture is an egress ready to release: its files staged, a
// destination store, and a signing key in the worker's secrets folder.
type egressFixture struct {
	a       *Activities
	staging *localstore.Store
	dest    connectors.Store
	pub     ed25519.PublicKey
	req     model.RequestStatus
}

func newEgressFixture(t *testing.T, dest connectors.Store) *egressFixture {
	t.Helper()
	staging, err := localstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = staging.Close() })
	for p, data := range egressFiles {
		put(t, staging, stagingKey(egressID, p), data)
	}
	if dest == nil {
		ls, err := localstore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ls.Close() })
		dest = ls
	}
	secretsDir := t.TempDir()
	privPEM, pubPEM, err := releasemanifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secretsDir, signingKeyName), privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := releasemanifest.ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &egressFixture{
		a: &Activities{
			Staging: staging, Workspaces: staging,
			Secrets:      &secrets.Provider{Dir: secretsDir, NoEnv: true},
			SigningKey:   signingKeyName,
			Destinations: map[string]EgressDestination{"partner-outbox": {Store: dest, Description: "the partner's SFTP drop", Revocable: true}},
			Transfer:     TransferConfig{BufferSize: 64 << 10, CheckpointEvery: time.Nanosecond},
		},
		staging: staging, dest: dest, pub: pub, req: egressRequest(),
	}
}

// egressRequest is an egress in RELEASING after two turns: the summary was
// returned in turn 1 and approved in turn 2; the figure, approved in turn
// 1 (flagged by a check), kept its verdict; the raw extract was rejected.
func egressRequest() model.RequestStatus {
	t0 := time.Date(2025, 3, 4, 9, 0, 0, 0, time.UTC)
	sum, fig, raw := fileRecord("results/summary.csv"), fileRecord("figures/fig1.png"), fileRecord("raw/patients.csv")
	fig.EncodingFormat = "image/png"
	review := func(by string, turn int, at time.Time, files ...model.FileReview) model.EgressReviewRecord {
		return model.EgressReviewRecord{Stage: "output-check", By: by, Turn: turn, At: at, Files: files, ManifestDigest: "sha256:turn", Via: "cli"}
	}
	return model.RequestStatus{
		ID: egressID, Kind: model.KindEgress, State: model.StateReleasing, Project: "d4e6", Workspace: "ws1",
		Requester: "rita", Policy: "standard-egress", Files: []model.FileRecord{sum, fig, raw},
		ManifestDigest: model.ManifestDigest([]model.FileRecord{sum, fig, raw}),
		Checks: []model.CheckResult{
			{Name: "limits", Passed: true, Message: "3 files, 1.5 MB", OnFail: model.OnFailBlock},
			{Name: "no-identifiers", Passed: false, Message: "figures/fig1.png: line 3 matches", OnFail: model.OnFailFlag, Files: []string{"figures/fig1.png"}},
		},
		Egress: &model.EgressStatus{
			Destination: "partner-outbox", Justification: "Aggregate counts for the paper", Turn: 2,
			Paths: []string{"figures/fig1.png", "raw/patients.csv", "results/summary.csv"},
			Files: []model.EgressFile{
				{FileRecord: sum, Turn: 2, Verdict: model.VerdictApprove},
				{FileRecord: fig, Turn: 1, Verdict: model.VerdictApprove, Flags: []string{"no-identifiers"}},
				{FileRecord: raw, Turn: 1, Verdict: model.VerdictReject},
			},
			Turns: []model.EgressTurn{
				{Turn: 1, By: "rita", At: t0, ManifestDigest: "sha256:t1", Changed: []string{"figures/fig1.png", "raw/patients.csv", "results/summary.csv"}},
				{Turn: 2, By: "rita", At: t0.Add(2 * time.Hour), Comment: "rounded the counts", ManifestDigest: "sha256:t2", Changed: []string{"results/summary.csv"}},
			},
			Reviews: []model.EgressReviewRecord{
				review("ian", 1, t0.Add(time.Hour),
					model.FileReview{Path: "figures/fig1.png", Verdict: model.VerdictApprove},
					model.FileReview{Path: "raw/patients.csv", Verdict: model.VerdictReject, Comment: "row-level data"},
					model.FileReview{Path: "results/summary.csv", Verdict: model.VerdictRequestChanges, Comment: "round to 5"}),
				review("olive", 1, t0.Add(time.Hour+time.Minute),
					model.FileReview{Path: "figures/fig1.png", Verdict: model.VerdictApprove},
					model.FileReview{Path: "raw/patients.csv", Verdict: model.VerdictReject, Comment: "names"},
					model.FileReview{Path: "results/summary.csv", Verdict: model.VerdictApprove}),
				review("olive", 2, t0.Add(3*time.Hour), model.FileReview{Path: "results/summary.csv", Verdict: model.VerdictApprove}),
				review("ian", 2, t0.Add(3*time.Hour+time.Minute), model.FileReview{Path: "results/summary.csv", Verdict: model.VerdictApprove}),
			},
			ReviewsIn: 2, ReviewsNeeded: 2,
		},
	}
}

func runReleaseEgress(t *testing.T, a *Activities, in ReleaseEgressInput, details ...any) (ReleaseEgressResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	if len(details) > 0 {
		env.SetHeartbeatDetails(details[0])
	}
	val, err := env.ExecuteActivity(a.ReleaseEgress, in)
	if err != nil {
		return ReleaseEgressResult{}, err
	}
	var res ReleaseEgressResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	return res, nil
}

// recordingStore records, in order, the keys whose writes are created and
// committed, and can fail the next Create of a key.
type recordingStore struct {
	connectors.Store
	mu        sync.Mutex
	created   []string
	committed []string
}

func (s *recordingStore) Create(ctx context.Context, key string, from *connectors.Checkpoint) (connectors.Writer, error) {
	w, err := s.Store.Create(ctx, key, from)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.created = append(s.created, key)
	s.mu.Unlock()
	return &recordingWriter{Writer: w, s: s, key: key}, nil
}

type recordingWriter struct {
	connectors.Writer
	s   *recordingStore
	key string
}

func (w *recordingWriter) Commit() error {
	if err := w.Writer.Commit(); err != nil {
		return err
	}
	w.s.mu.Lock()
	w.s.committed = append(w.s.committed, w.key)
	w.s.mu.Unlock()
	return nil
}

func readStore(t *testing.T, s connectors.Store, key string) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReleaseEgress(t *testing.T) {
	ls, err := localstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ls.Close() })
	rec := &recordingStore{Store: ls}
	f := newEgressFixture(t, rec)
	res, err := runReleaseEgress(t, f.a, ReleaseEgressInput{Request: f.req})
	if err != nil {
		t.Fatal(err)
	}
	rel := res.Release
	prefix := EgressDestinationPrefix(egressID)
	if rel.Prefix != prefix || rel.Location != ls.URL(prefix) || rel.Files != 2 ||
		rel.Bytes != int64(len(egressFiles["results/summary.csv"])+len(egressFiles["figures/fig1.png"])) || rel.At.IsZero() {
		t.Errorf("release = %+v", rel)
	}
	if rel.KeyID != releasemanifest.KeyID(f.pub) || rel.ManifestURL != ls.URL(prefix+"/release-manifest.json") || rel.SignatureURL != ls.URL(prefix+"/release-manifest.json.sig") {
		t.Errorf("release = %+v; want key id %s and the manifest's URLs", rel, releasemanifest.KeyID(f.pub))
	}

	// Exactly the approved files, byte for byte; the rejected one stays.
	for _, p := range []string{"results/summary.csv", "figures/fig1.png"} {
		if got := readStore(t, ls, path.Join(prefix, p)); !bytes.Equal(got, egressFiles[p]) {
			t.Errorf("%s: released bytes differ from the staged ones", p)
		}
	}
	if _, err := ls.Stat(context.Background(), path.Join(prefix, "raw/patients.csv")); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("the rejected file was released (stat err %v)", err)
	}
	// Files, then the manifest and its signature, then the crate last.
	want := []string{prefix + "/figures/fig1.png", prefix + "/results/summary.csv", prefix + "/release-manifest.json", prefix + "/release-manifest.json.sig", prefix + "/ro-crate-metadata.json"}
	if strings.Join(rec.committed, " ") != strings.Join(want, " ") {
		t.Errorf("commit order = %v; want %v", rec.committed, want)
	}
	manifestBytes := readStore(t, ls, path.Join(prefix, releasemanifest.FileName))
	if s := sha256.Sum256(manifestBytes); hex.EncodeToString(s[:]) != rel.ManifestSHA256 {
		t.Errorf("manifest_sha256 %s is not the manifest file's", rel.ManifestSHA256)
	}

	// An outsider with the public key verifies the copy.
	m, err := releasemanifest.VerifyDir(filepath.Join(ls.Root(), prefix), f.pub)
	if err != nil {
		t.Fatalf("VerifyDir: %v", err)
	}
	if m.Request != egressID || m.Kind != "egress" || m.Project != "d4e6" || m.Workspace != "ws1" || m.Destination != "partner-outbox" ||
		m.Location != rel.Location || m.Requester != "rita" || m.Justification != "Aggregate counts for the paper" || m.Policy != "standard-egress" ||
		!m.ReleasedAt.Equal(rel.At) || m.KeyID != rel.KeyID {
		t.Errorf("manifest header = %+v", m)
	}
	approved := []model.FileRecord{fileRecord("figures/fig1.png"), fileRecord("results/summary.csv")}
	if m.ManifestDigest != model.ManifestDigest(approved) {
		t.Errorf("manifest digest %s is not that of the released files", m.ManifestDigest)
	}
	approvals := map[string]string{}
	for _, mf := range m.Files {
		var who []string
		for _, ap := range mf.ApprovedBy {
			who = append(who, ap.By+"@"+string(rune('0'+ap.Turn)))
		}
		approvals[mf.Path] = strings.Join(who, ",")
	}
	// The figure's approvals are turn 1's; the summary's only turn 2's
	// (its turn-1 review was of other bytes), in time order.
	if approvals["figures/fig1.png"] != "ian@1,olive@1" || approvals["results/summary.csv"] != "olive@2,ian@2" {
		t.Errorf("approvals = %v", approvals)
	}
	if len(m.Withheld) != 1 || m.Withheld[0].Path != "raw/patients.csv" || m.Withheld[0].Verdict != model.VerdictReject ||
		strings.Join(m.Withheld[0].By, ",") != "ian,olive" || m.Withheld[0].SHA256 != fileRecord("raw/patients.csv").SHA256 {
		t.Errorf("withheld = %+v", m.Withheld)
	}

	// The crate records the release.
	var crate struct {
		Graph []map[string]any `json:"@graph"`
	}
	if err := json.Unmarshal(readStore(t, ls, path.Join(prefix, CrateFile)), &crate); err != nil {
		t.Fatal(err)
	}
	byID := map[string]map[string]any{}
	for _, e := range crate.Graph {
		byID[e["@id"].(string)] = e
	}
	root := byID["./"]
	if root["name"] != "Egress "+egressID || root["description"] != "Aggregate counts for the paper" || root["identifier"] != egressID {
		t.Errorf("root = %v", root)
	}
	if parts := ids(root["hasPart"]); strings.Join(parts, " ") != "figures/fig1.png results/summary.csv release-manifest.json release-manifest.json.sig" {
		t.Errorf("hasPart = %v", parts)
	}
	if byID["figures/fig1.png"]["sha256"] != fileRecord("figures/fig1.png").SHA256 || byID["figures/fig1.png"]["encodingFormat"] != "image/png" {
		t.Errorf("figure entity = %v", byID["figures/fig1.png"])
	}
	if _, ok := byID["raw/patients.csv"]; ok {
		t.Error("the withheld file has a File entity in the crate")
	}
	if mf := byID[releasemanifest.FileName]; mf["sha256"] != rel.ManifestSHA256 || mf["@type"] != "File" {
		t.Errorf("manifest entity = %v", mf)
	}
	if byID["#signing-key"]["value"] != rel.KeyID || byID["#manifest"]["value"] != m.ManifestDigest {
		t.Errorf("key %v / digest %v", byID["#signing-key"], byID["#manifest"])
	}
	relAction := byID["#release"]
	if relAction["@type"] != "TransferAction" || relAction["toLocation"] != rel.Location ||
		!strings.Contains(relAction["description"].(string), "1 withheld: raw/patients.csv (reject)") ||
		!strings.Contains(relAction["description"].(string), "the partner's SFTP drop") {
		t.Errorf("release action = %v", relAction)
	}
	review := byID["#review-2-output-check-ian"]
	if review["@type"] != "AssessAction" || !strings.Contains(review["name"].(string), "1 approve") {
		t.Errorf("ian's turn-2 review = %v", review)
	}
	first := byID["#review-1-output-check-ian"]
	res1, _ := json.Marshal(first["result"])
	for _, s := range []string{`"name":"raw/patients.csv"`, `"value":"reject"`, `"description":"row-level data"`, `"value":"request-changes"`} {
		if !strings.Contains(string(res1), s) {
			t.Errorf("ian's turn-1 review results %s lack %s", res1, s)
		}
	}
	check := byID["#check-2-no-identifiers"]
	if check["actionStatus"] != "http://schema.org/FailedActionStatus" || !strings.Contains(string(mustJSON(t, check["result"])), `"value":"flag"`) ||
		!strings.Contains(string(mustJSON(t, check["object"])), `"figures/fig1.png"`) {
		t.Errorf("flagging check = %v", check)
	}
	if turn2 := byID["#turn-2"]; turn2["@type"] != "CreateAction" || !strings.Contains(turn2["description"].(string), "rounded the counts") ||
		!strings.Contains(string(mustJSON(t, turn2["result"])), `"results/summary.csv"`) {
		t.Errorf("turn 2 = %v", turn2)
	}
}

func ids(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(map[string]any)["@id"].(string))
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stagingReadStore counts the bytes read from it.
type stagingReadStore struct {
	connectors.Store
	mu   sync.Mutex
	read map[string]int64
}

func (s *stagingReadStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return &stagingReadCounter{ReadCloser: rc, s: s, key: key}, nil
}

type stagingReadCounter struct {
	io.ReadCloser
	s   *stagingReadStore
	key string
}

func (r *stagingReadCounter) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.s.mu.Lock()
	r.s.read[r.key] += int64(n)
	r.s.mu.Unlock()
	return n, err
}

func (r *stagingReadCounter) Seek(offset int64, whence int) (int64, error) {
	return r.ReadCloser.(io.Seeker).Seek(offset, whence)
}

// A retried release continues from its heartbeat: a file already done is
// not copied again, and a file part-way resumes at its checkpoint with
// its hash state, reading only the rest from staging.
func TestReleaseEgressResumes(t *testing.T) {
	ls, err := localstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ls.Close() })
	rec := &recordingStore{Store: ls}
	f := newEgressFixture(t, rec)
	counting := &stagingReadStore{Store: f.staging, read: map[string]int64{}}
	f.a.Staging = counting
	prefix := EgressDestinationPrefix(egressID)

	// The summary was released by the earlier attempt; the figure got to
	// its first 512 KiB.
	put(t, ls, path.Join(prefix, "results/summary.csv"), egressFiles["results/summary.csv"])
	fig := egressFiles["figures/fig1.png"]
	const done = 512 << 10
	w, err := ls.Create(context.Background(), path.Join(prefix, "figures/fig1.png"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(fig[:done]); err != nil {
		t.Fatal(err)
	}
	cp, err := w.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	h.Write(fig[:done])
	state, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
	progress := ReleaseProgress{
		Done:      []string{"results/summary.csv"},
		Current:   &FileCheckpoint{Key: path.Join(prefix, "figures/fig1.png"), Store: cp, HashState: state},
		BytesDone: int64(len(egressFiles["results/summary.csv"])) + done,
	}
	if _, err := runReleaseEgress(t, f.a, ReleaseEgressInput{Request: f.req}, progress); err != nil {
		t.Fatal(err)
	}
	for _, k := range rec.created {
		if strings.HasSuffix(k, "results/summary.csv") {
			t.Errorf("the summary, done before, was written again")
		}
	}
	if got := counting.read[stagingKey(egressID, "figures/fig1.png")]; got != int64(len(fig)-done) {
		t.Errorf("read %d bytes of the figure from staging; want only the %d after the checkpoint", got, len(fig)-done)
	}
	if _, err := releasemanifest.VerifyDir(filepath.Join(ls.Root(), prefix), f.pub); err != nil {
		t.Fatalf("the resumed release does not verify: %v", err)
	}
}

func TestReleaseEgressRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *egressFixture)
		want   []string
		// notWant must not appear (a secret's value).
		notWant string
	}{
		{"not releasing", func(f *egressFixture) { f.req.State = model.StateAwaitingApproval },
			[]string{"is AWAITING_APPROVAL, not RELEASING: nothing released"}, ""},
		{"not an egress", func(f *egressFixture) { f.req.Egress = nil }, []string{"not an egress"}, ""},
		{"unknown destination", func(f *egressFixture) { f.req.Egress.Destination = "elsewhere" },
			[]string{`destination "elsewhere" is not one of this worker's egress destinations (partner-outbox)`, "egress.destinations"}, ""},
		{"no destinations", func(f *egressFixture) { f.a.Destinations = nil }, []string{"this worker has no egress destinations: configure egress.destinations"}, ""},
		{"no signing key configured", func(f *egressFixture) { f.a.SigningKey = "" }, []string{"set egress.signingKey", "make dev writes one"}, ""},
		{"signing key missing", func(f *egressFixture) { f.a.SigningKey = "other-key" },
			[]string{"egress.signingKey", `secret "other-key" not found`, "openssl genpkey -algorithm ed25519"}, ""},
		{"signing key not a key", func(f *egressFixture) {
			if err := os.WriteFile(filepath.Join(f.a.Secrets.Dir, "bad-key"), []byte("hunter2-not-a-pem-key"), 0o600); err != nil {
				panic(err)
			}
			f.a.SigningKey = "bad-key"
		}, []string{`the secret "bad-key" does not hold a usable key`, "no PEM-encoded private key"}, "hunter2"},
		{"nothing approved", func(f *egressFixture) {
			for i := range f.req.Egress.Files {
				f.req.Egress.Files[i].Verdict = model.VerdictReject
			}
		}, []string{"has no approved file: nothing to release"}, ""},
		{"approved without approval", func(f *egressFixture) { f.req.Egress.Reviews = f.req.Egress.Reviews[:2] },
			[]string{"results/summary.csv is marked approved, but no review of turn 2 or later approves it"}, ""},
		{"approved over an objection", func(f *egressFixture) {
			f.req.Egress.Reviews[3].Files[0].Verdict = model.VerdictRequestChanges
		}, []string{"results/summary.csv is marked approved, but ian gave it request-changes in turn 2"}, ""},
		{"reserved name", func(f *egressFixture) {
			f.req.Egress.Files[0].Path = releasemanifest.FileName
		}, []string{"release-manifest.json is where a release writes its own"}, ""},
		{"no digest", func(f *egressFixture) { f.req.Egress.Files[0].SHA256 = "" }, []string{"has no SHA-256"}, ""},
		{"staged copy gone", func(f *egressFixture) {
			if err := f.staging.DeletePrefix(context.Background(), stagingKey(egressID, "results")); err != nil {
				panic(err)
			}
		}, []string{"the staged copy of results/summary.csv is missing"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newEgressFixture(t, nil)
			tc.change(f)
			_, err := runReleaseEgress(t, f.a, ReleaseEgressInput{Request: f.req})
			if err == nil || !isNonRetryable(err) {
				t.Fatalf("err = %v; want a non-retryable error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v; want it to say %q", err, w)
				}
			}
			if tc.notWant != "" && strings.Contains(err.Error(), tc.notWant) {
				t.Errorf("err = %v quotes the secret", err)
			}
			// Nothing signed was published.
			if files, _ := f.dest.List(context.Background(), EgressDestinationPrefix(egressID)); len(files) > 0 && tc.name != "staged copy gone" {
				t.Errorf("destination holds %v after a refusal", files)
			}
		})
	}
}

// Staged bytes that changed after review are never published.
func TestReleaseEgressDigestMismatch(t *testing.T) {
	f := newEgressFixture(t, nil)
	changed := bytes.Replace(egressFiles["results/summary.csv"], []byte("98"), []byte("99"), 1)
	put(t, f.staging, stagingKey(egressID, "results/summary.csv"), changed)
	_, err := runReleaseEgress(t, f.a, ReleaseEgressInput{Request: f.req})
	var app *temporal.ApplicationError
	if err == nil || !errors.As(err, &app) || app.Type() != ErrTypeDigestMismatch || !app.NonRetryable() {
		t.Fatalf("err = %v; want a non-retryable %s", err, ErrTypeDigestMismatch)
	}
	prefix := EgressDestinationPrefix(egressID)
	for _, k := range []string{"results/summary.csv", releasemanifest.FileName, CrateFile} {
		if _, err := f.dest.Stat(context.Background(), path.Join(prefix, k)); !errors.Is(err, connectors.ErrNotFound) {
			t.Errorf("%s exists at the destination after a digest mismatch (stat err %v)", k, err)
		}
	}
}

func TestDeleteAreaDestination(t *testing.T) {
	f := newEgressFixture(t, nil)
	if _, err := runReleaseEgress(t, f.a, ReleaseEgressInput{Request: f.req}); err != nil {
		t.Fatal(err)
	}
	prefix := EgressDestinationPrefix(egressID)
	run := func(in DeleteAreaInput) (DeleteAreaResult, error) {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(f.a)
		val, err := env.ExecuteActivity(f.a.DeleteArea, in)
		if err != nil {
			return DeleteAreaResult{}, err
		}
		var res DeleteAreaResult
		if err := val.Get(&res); err != nil {
			t.Fatal(err)
		}
		return res, nil
	}
	listed := func() int {
		files, err := f.dest.List(context.Background(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		return len(files)
	}

	// A write-once destination is left alone, and the result says so.
	d := f.a.Destinations["partner-outbox"]
	d.Revocable = false
	f.a.Destinations["partner-outbox"] = d
	res, err := run(DeleteAreaInput{Zone: ZoneDestination, Destination: "partner-outbox", Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 0 || !strings.Contains(res.Note, "destination partner-outbox does not allow deletion") || !strings.Contains(res.Note, "revocable: false") || listed() != 5 {
		t.Errorf("non-revocable: result %+v, %d files left; want nothing removed, a note, 5 files", res, listed())
	}

	for _, tc := range []struct {
		in   DeleteAreaInput
		want string
	}{
		{DeleteAreaInput{Zone: ZoneDestination, Destination: "nowhere", Prefix: prefix}, `destination "nowhere" is not one of this worker's egress destinations (partner-outbox)`},
		{DeleteAreaInput{Zone: ZoneStaging, Prefix: ""}, "prefix: missing"},
		{DeleteAreaInput{Zone: "attic", Prefix: prefix}, `zone: unknown zone "attic" (expected staging, workspace or destination)`},
	} {
		if _, err := run(tc.in); err == nil || !isNonRetryable(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v; want a non-retryable %q", tc.in, err, tc.want)
		}
	}

	d.Revocable = true
	f.a.Destinations["partner-outbox"] = d
	res, err = run(DeleteAreaInput{Zone: ZoneDestination, Destination: "partner-outbox", Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 5 || res.Note != "" || listed() != 0 {
		t.Errorf("revocable: result %+v, %d files left; want 5 removed, no note", res, listed())
	}
}

// An S3 destination (versitygw): the release verifies through the store,
// and a revocation removes it.
func TestReleaseEgressToS3(t *testing.T) {
	g := testservers.VersityGW(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const bucket = "outbox"
	if err := g.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{secrets.EnvVar("s3-access"): g.AccessKey, secrets.EnvVar("s3-secret"): g.SecretKey}
	conn := model.Connection{
		Type: model.ConnS3, Name: "partner-outbox", URL: "s3://" + bucket + "/released", Endpoint: g.Endpoint, PathStyle: true,
		Credentials: model.Credentials{AccessKeyIDKey: "s3-access", SecretAccessKeyKey: "s3-secret"},
	}
	st, err := s3store.NewStore(ctx, conn, &secrets.Provider{Getenv: func(k string) string { return env[k] }}, s3store.Options{PartSize: s3store.MinUploadPartSize, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	f := newEgressFixture(t, st)
	res, err := runReleaseEgress(t, f.a, ReleaseEgressInput{Request: f.req})
	if err != nil {
		t.Fatal(err)
	}
	prefix := EgressDestinationPrefix(egressID)
	if !strings.HasPrefix(res.Release.Location, "s3://"+bucket+"/released/"+prefix) {
		t.Errorf("location = %s", res.Release.Location)
	}
	m, err := releasemanifest.Verify(readStore(t, st, path.Join(prefix, releasemanifest.FileName)), readStore(t, st, path.Join(prefix, releasemanifest.SignatureFileName)), f.pub)
	if err != nil {
		t.Fatal(err)
	}
	open := func(ctx context.Context, p string) (io.ReadCloser, error) { return st.Open(ctx, path.Join(prefix, p)) }
	if problems := releasemanifest.VerifyFiles(ctx, m, open); len(problems) > 0 {
		t.Fatalf("the S3 copy does not match its manifest: %v", problems)
	}
	// A file changed at the destination is caught.
	put(t, st, path.Join(prefix, "results/summary.csv"), []byte("region,count\nnorth,1\n"))
	if problems := releasemanifest.VerifyFiles(ctx, m, open); len(problems) != 1 || problems[0].Kind != releasemanifest.ProblemSize {
		t.Errorf("problems = %v; want the changed summary", problems)
	}

	var s testsuite.WorkflowTestSuite
	aenv := s.NewTestActivityEnvironment()
	aenv.RegisterActivity(f.a)
	val, err := aenv.ExecuteActivity(f.a.DeleteArea, DeleteAreaInput{Zone: ZoneDestination, Destination: "partner-outbox", Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	var del DeleteAreaResult
	if err := val.Get(&del); err != nil {
		t.Fatal(err)
	}
	if left, _ := st.List(ctx, prefix); del.Removed != 5 || len(left) != 0 {
		t.Errorf("revocation removed %d, left %v; want 5 removed, none left", del.Removed, left)
	}
}
