package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/testservers"
	"github.com/airlockhq/airlock/workflows"
)

const egressWorkspace = "ws-egress"

// egressEnv is an Airlock whose workspace holds outputs, with an egress
// destination in an S3 bucket (versitygw) and a signing key in its secrets
// folder; policy edits, when given, replace text of standard-egress.yaml.
type egressEnv struct {
	*env
	s3     *testservers.VersityGWServer
	bucket string
	pub    []byte
}

func newEgressEnv(t *testing.T, policyEdits ...string) *egressEnv {
	t.Helper()
	gw := testservers.VersityGW(t)
	const bucket = "partner-outbox"
	must(t, gw.CreateBucket(context.Background(), bucket))
	extra := fmt.Sprintf(`secrets:
  dir: secrets
egress:
  signingKey: egress-signing-key
  destinations:
  - name: partner-s3
    description: The partner's S3 outbox
    type: s3
    url: s3://%s/releases
    endpoint: %q
    pathStyle: true
    credentials: {accessKeyIdKey: s3-access-key, secretAccessKeyKey: s3-secret-key}`, bucket, gw.Endpoint)
	e := &egressEnv{env: newEnvConfig(t, "  checkpointEvery: 1s", localStores, extra), s3: gw, bucket: bucket}
	priv, pub, err := releasemanifest.GenerateKey()
	must(t, err)
	e.pub = pub
	secretDir := filepath.Join(e.dir, "secrets")
	must(t, os.MkdirAll(secretDir, 0o700))
	for name, value := range map[string][]byte{"egress-signing-key": priv, "s3-access-key": []byte(gw.AccessKey), "s3-secret-key": []byte(gw.SecretKey)} {
		must(t, os.WriteFile(filepath.Join(secretDir, name), value, 0o600))
	}
	if len(policyEdits) > 0 {
		p := filepath.Join(e.dir, "standard-egress.yaml")
		data, err := os.ReadFile(p)
		must(t, err)
		doc := string(data)
		for i := 0; i+1 < len(policyEdits); i += 2 {
			if !strings.Contains(doc, policyEdits[i]) {
				t.Fatalf("standard-egress.yaml has no %q to replace", policyEdits[i])
			}
			doc = strings.Replace(doc, policyEdits[i], policyEdits[i+1], 1)
		}
		must(t, os.WriteFile(p, []byte(doc), 0o644))
	}
	for rel, content := range map[string]string{
		"outputs/visits-by-clinic.csv": "clinic,visits\nnorth,120\nsouth,98\n",
		"outputs/summary.md":           "# Visits\n\nTwo clinics, 218 visits.\n",
	} {
		p := filepath.Join(e.workspaces, egressWorkspace, filepath.FromSlash(rel))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return e
}

func (e *egressEnv) request(t *testing.T) string {
	t.Helper()
	out := airlockOK(t, "egress", "request", "--workspace", egressWorkspace, "--project", "proj-egress", "--destination", "partner-s3",
		"--file", "outputs/visits-by-clinic.csv", "--file", "outputs/summary.md",
		"--justification", "Aggregate visits for the steering group", "--as", "rita", "-o", "json")
	var started struct {
		ID string `json:"id"`
	}
	must(t, json.Unmarshal([]byte(out), &started))
	if started.ID == "" {
		t.Fatalf("no id in %s", out)
	}
	return started.ID
}

func (e *egressEnv) getObject(t *testing.T, key string) []byte {
	t.Helper()
	out, err := e.s3.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	must(t, err)
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	must(t, err)
	return data
}

func (e *egressEnv) keys(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := e.s3.Client().ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(e.bucket), Prefix: aws.String(prefix)})
	must(t, err)
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// TestEgressToS3WithTwoCheckers runs an egress end to end on the dev server:
// the requester asks, two output checkers review independently, the
// approved files reach an S3 destination with a signed manifest that
// verifies (signature and every digest), and a revocation removes them.
func TestEgressToS3WithTwoCheckers(t *testing.T) {
	needServer(t)
	e := newEgressEnv(t)
	e.startWorker(e.config)
	id := e.request(t)
	st := waitState(t, id, model.StateAwaitingApproval, 60*time.Second)
	if st.Egress == nil || len(st.Egress.Files) != 2 || st.Egress.ReviewsNeeded != 2 {
		t.Fatalf("egress status: %+v", st.Egress)
	}

	airlockOK(t, "egress", "review", id, "--as", "carol", "--approve-all", "--comment", "aggregates only")
	mid := status(t, id)
	if mid.Egress.ReviewsIn != 1 || len(mid.Egress.Reviews) != 0 {
		t.Fatalf("after one review the status shows %d in and %d revealed; want 1 and 0", mid.Egress.ReviewsIn, len(mid.Egress.Reviews))
	}
	if _, errOut, code := airlock(t, "egress", "review", id, "--as", "rita", "--approve-all"); code == 0 || !strings.Contains(errOut, "checkers may not be the requester") {
		t.Fatalf("the requester reviewed her own egress: exit %d, %s", code, errOut)
	}
	airlockOK(t, "egress", "review", id, "--as", "chris", "--approve-all")
	st = waitState(t, id, model.StateReleased, 60*time.Second)
	rel := st.Egress.Release
	if rel == nil || rel.Files != 2 {
		t.Fatalf("release: %+v", rel)
	}

	// The manifest verifies with the public key, and every released
	// file's size and SHA-256 match it.
	prefix := "releases/" + rel.Prefix + "/"
	body := e.getObject(t, prefix+releasemanifest.FileName)
	sig := e.getObject(t, prefix+releasemanifest.SignatureFileName)
	pub, err := releasemanifest.ParsePublicKey(e.pub)
	must(t, err)
	m, err := releasemanifest.Verify(body, sig, pub)
	must(t, err)
	if problems := releasemanifest.VerifyFiles(context.Background(), m, func(ctx context.Context, p string) (io.ReadCloser, error) {
		out, err := e.s3.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(prefix + p)})
		if err != nil {
			return nil, err
		}
		return out.Body, nil
	}); len(problems) > 0 {
		t.Fatalf("released files do not match the manifest: %v", problems)
	}
	if len(m.Files) != 2 || m.ManifestDigest != st.ManifestDigest {
		t.Fatalf("manifest: %d files, digest %s; status digest %s", len(m.Files), m.ManifestDigest, st.ManifestDigest)
	}
	for _, f := range m.Files {
		if len(f.ApprovedBy) != 2 {
			t.Fatalf("%s approved by %v, want carol and chris", f.Path, f.ApprovedBy)
		}
	}
	// Tampering is caught: a manifest altered after signing does not verify.
	if _, err := releasemanifest.Verify([]byte(strings.Replace(string(body), "visits-by-clinic", "visits-by-clinix", 1)), sig, pub); err == nil {
		t.Fatal("a tampered manifest verified")
	}

	// History size of a typical egress (two checkers, one turn), for the record.
	events := historyEvents(t, id)
	t.Logf("egress %s: %d history events from start to RELEASED", id, events)

	airlockOK(t, "revoke", id, "--as", "carol", "--reason", "the partner's agreement was withdrawn")
	st = waitState(t, id, model.StateRevoked, 60*time.Second)
	if st.Egress.Revocation == nil || st.Egress.Revocation.Removed < 2 {
		t.Fatalf("revocation: %+v", st.Egress.Revocation)
	}
	if left := e.keys(t, prefix); len(left) != 0 {
		t.Fatalf("released copies remain after revocation: %v", left)
	}
	t.Logf("egress %s: %d history events in all, revocation included", id, historyEvents(t, id))
}

// historyEvents counts a run's history events.
func historyEvents(t *testing.T, id string) int {
	t.Helper()
	it := devServer.Client().GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		_, err := it.Next()
		must(t, err)
		n++
	}
	return n
}

// TestRetentionTimerAcrossWorkerRestart measures what a retention deletion
// does when no worker runs at the moment it is due: a withdrawn egress's
// staging area has a 15s grace; the worker is killed before it ends and
// restarted after; the deletion happens once a worker polls again, and not
// before.
func TestRetentionTimerAcrossWorkerRestart(t *testing.T) {
	needServer(t)
	e := newEgressEnv(t, "stagingGrace: 168h", "stagingGrace: 15s")
	w := e.startWorker(e.config)
	id := e.request(t)
	waitState(t, id, model.StateAwaitingApproval, 60*time.Second)
	airlockOK(t, "egress", "withdraw", id, "--as", "rita", "--reason", "superseded")
	st := waitState(t, id, model.StateWithdrawn, 30*time.Second)
	if len(st.Deletions) != 1 {
		t.Fatalf("deletions: %+v", st.Deletions)
	}
	d := st.Deletions[0]
	stagingDir := filepath.Join(e.staging, id)
	if _, err := os.Stat(stagingDir); err != nil {
		t.Fatalf("the staging area went before its grace period: %v", err)
	}
	w.kill(t)
	killedAt := time.Now()
	// Wait past the due time with no worker.
	time.Sleep(time.Until(d.DueAt.Add(5 * time.Second)))
	if _, err := os.Stat(stagingDir); err != nil {
		t.Fatalf("the staging area went with no worker running: %v", err)
	}
	restartAt := time.Now()
	e.startWorker(e.config)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(stagingDir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the staging area was not deleted within 60s of the worker's restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	deletedAt := time.Now()
	t.Logf("retention across a restart: due %s; worker killed %.1fs before due, restarted %.1fs after due; deleted %.2fs after the restart (%.1fs after due)",
		d.DueAt.UTC().Format(time.RFC3339), d.DueAt.Sub(killedAt).Seconds(), restartAt.Sub(d.DueAt).Seconds(),
		deletedAt.Sub(restartAt).Seconds(), deletedAt.Sub(d.DueAt).Seconds())
	// The RetentionWorkflow records the deletion.
	run := devServer.Client().GetWorkflow(context.Background(), d.WorkflowID, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res workflows.RetentionResult
	must(t, run.Get(ctx, &res))
	if res.DeletedAt == nil || res.Removed < 2 || res.DeletedAt.Before(d.DueAt) {
		t.Fatalf("retention result: %+v (due %s)", res, d.DueAt)
	}
}
