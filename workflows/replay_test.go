package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from real runs on a
// dev server (testdata/histories, written by the integration tests with
// AIRLOCK_RECORD_HISTORIES set) against the current workflow code. A change
// that would break requests already running fails here: version it with
// workflow.GetVersion instead.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/histories/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in testdata/histories: record them with AIRLOCK_RECORD_HISTORIES=$PWD/workflows/testdata/histories go test ./integration/")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(ImportWorkflow, workflow.RegisterOptions{Name: ImportWorkflowName})
			r.RegisterWorkflowWithOptions(UploadWorkflow, workflow.RegisterOptions{Name: UploadWorkflowName})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("the current workflow code cannot replay %s: %v", f, err)
			}
		})
	}
}
