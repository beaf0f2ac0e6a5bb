package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/model"
)

// TestWorkerCrashMidCopy kills a worker (SIGKILL) while it copies a large
// file into staging, starts a new worker, and checks that the import
// completes with the right digest, that the copy resumed from its last
// checkpoint instead of starting again, and that no partial file is left.
func TestWorkerCrashMidCopy(t *testing.T) {
	c := needServer(t)
	// The first worker is throttled so that the copy is still running when
	// it is killed; the second copies at full speed.
	const size = 256 << 20
	e := newEnv(t, "  checkpointEvery: 250ms\n  maxBytesPerSecond: 50331648")
	fast := filepath.Join(e.dir, "fast.yaml")
	cfg, err := os.ReadFile(e.config)
	must(t, err)
	must(t, os.WriteFile(fast, []byte(strings.Replace(string(cfg), "maxBytesPerSecond: 50331648", "maxBytesPerSecond: 0", 1)), 0o644))

	big := make([]byte, size)
	rand.New(rand.NewSource(42)).Read(big)
	want := sha256.Sum256(big)
	doc := e.writeSource("crash-source", map[string][]byte{"big.bin": big, "small.csv": []byte("a,b\n1,2\n")},
		"  - file: {path: big.bin, connection: src}\n  - file: {path: small.csv, connection: src}\n")
	big = nil

	first := e.startWorker(e.config)
	id := strings.TrimSpace(airlockOK(t, "import", "-f", doc, "--workspace", "ws-crash", "--as", "rita"))

	// Wait until a checkpoint of the big file has reached the server, then
	// kill the worker mid-copy.
	var killedAt int64
	waitFor(t, 60*time.Second, func() bool {
		desc, err := c.DescribeWorkflowExecution(context.Background(), id, "")
		if err != nil {
			return false
		}
		for _, pa := range desc.PendingActivities {
			if pa.HeartbeatDetails == nil || pa.State != enums.PENDING_ACTIVITY_STATE_STARTED {
				continue
			}
			var p activities.ExtractProgress
			if converter.GetDefaultDataConverter().FromPayloads(pa.HeartbeatDetails, &p) == nil && p.Current != nil &&
				strings.HasSuffix(p.Current.Key, "big.bin") && p.Current.Store.Offset >= 32<<20 {
				killedAt = p.Current.Store.Offset
				return true
			}
		}
		return false
	}, "the big file's copy has checkpointed at least 32 MiB")
	first.kill(t)
	t.Logf("killed the worker with SIGKILL after a checkpoint at %d of %d bytes", killedAt, size)

	staging, err := localstore.New(e.staging)
	must(t, err)
	partials, err := staging.Partials()
	must(t, err)
	if len(partials) == 0 {
		t.Fatalf("expected the killed copy's partial file in staging; found none")
	}
	partial, err := os.Stat(filepath.Join(e.staging, ".airlock-partial", id, "big.bin.part"))
	must(t, err)
	onDiskAtKill := partial.Size()

	e.startWorker(fast)
	st := waitState(t, id, model.StateAwaitingApproval, 90*time.Second)
	var got string
	for _, f := range st.Files {
		if f.Path == "big.bin" {
			got = f.SHA256
			if f.Size != size {
				t.Errorf("big.bin staged with %d bytes, want %d", f.Size, size)
			}
		}
	}
	if got != hex.EncodeToString(want[:]) {
		t.Fatalf("big.bin staged with sha256 %s, want %s", got, hex.EncodeToString(want[:]))
	}
	if onDisk := fileSHA(t, filepath.Join(e.staging, id, "big.bin")); onDisk != got {
		t.Fatalf("the staged bytes hash to %s, but the request records %s", onDisk, got)
	}
	partials, err = staging.Partials()
	must(t, err)
	if len(partials) != 0 {
		t.Fatalf("stray partial files after the import resumed: %v", partials)
	}

	// The retried attempt resumed from a checkpoint: it did not copy the
	// bytes before the checkpoint again.
	resumed, attempt := extractResult(t, id, "big.bin")
	if attempt < 2 {
		t.Fatalf("the big file's ExtractObject finished on attempt %d; expected a retry after the crash", attempt)
	}
	if resumed <= 0 || resumed > size {
		t.Fatalf("the retry resumed %d bytes; expected it to continue from a checkpoint (> 0)", resumed)
	}
	t.Logf("MEASURE crash test: %d MiB file; SIGKILL with %.1f MiB on disk (last checkpoint seen %.1f MiB); the retry (attempt %d) resumed at %.1f MiB, so %.1f MiB were copied twice and %.1f MiB were not copied again; digest correct; no partial files",
		size>>20, float64(onDiskAtKill)/(1<<20), float64(killedAt)/(1<<20), attempt, float64(resumed)/(1<<20), float64(onDiskAtKill-resumed)/(1<<20), float64(resumed)/(1<<20))

	// And the resumed bytes are the ones released.
	airlockOK(t, "approve", id, "--stage", "data-engineering", "--as", "dana")
	airlockOK(t, "approve", id, "--stage", "information-governance", "--as", "ian")
	waitState(t, id, model.StateCompleted, 60*time.Second)
	if rel := fileSHA(t, filepath.Join(e.workspaces, "ws-crash", "crash-source", id, "big.bin")); rel != hex.EncodeToString(want[:]) {
		t.Fatalf("released big.bin has sha256 %s, want %s", rel, hex.EncodeToString(want[:]))
	}
	ws, err := localstore.New(e.workspaces)
	must(t, err)
	if p, _ := ws.Partials(); len(p) != 0 {
		t.Fatalf("stray partial files in the workspace: %v", p)
	}
}

// extractResult finds the completed ExtractObject activity that copied file
// and returns how many bytes it resumed and on which attempt it finished.
func extractResult(t *testing.T, id, file string) (int64, int32) {
	t.Helper()
	h := fetchHistory(t, devServer.Client(), id)
	for _, ev := range h.Events {
		done := ev.GetActivityTaskCompletedEventAttributes()
		if done == nil {
			continue
		}
		var res activities.ExtractObjectResult
		if converter.GetDefaultDataConverter().FromPayloads(done.Result, &res) != nil {
			continue
		}
		for _, f := range res.Files {
			if f.Path == file {
				return res.ResumedBytes, res.Attempt
			}
		}
	}
	t.Fatalf("no completed ExtractObject for %s in the history of %s", file, id)
	return 0, 0
}
