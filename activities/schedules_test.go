package activities_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/testservers"
	"github.com/airlockhq/airlock/workflows"
)

// startDevServer runs a Temporal dev server (the pinned CLI) with Airlock's
// search attributes for the test.
func startDevServer(t *testing.T) client.Client {
	t.Helper()
	cli, err := testservers.Tool("temporal")
	if err != nil {
		testservers.Unavailable(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  cli,
		LogLevel:      "error",
		ExtraArgs:     workflows.DevServerSearchAttributeArgs(),
		ClientOptions: &client.Options{Namespace: "default", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))},
		Stdout:        io.Discard,
		Stderr:        io.Discard,
	})
	if err != nil {
		testservers.Unavailable(t, fmt.Errorf("starting the Temporal dev server: %w", err))
	}
	t.Cleanup(func() { _ = srv.Stop() })
	return srv.Client()
}

func activityEnv() *testsuite.TestActivityEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	return s.NewTestActivityEnvironment()
}

// standIn is a workflow registered under a name (an import, or another
// application's workflow) that runs until it is signalled "finish".
func standIn(ctx workflow.Context) error {
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	return nil
}

// TestFindRunningImports asks a real Temporal server's visibility store:
// only the running imports of the data source are found, not an ended
// one, not another data source's, not another workflow type's.
func TestFindRunningImports(t *testing.T) {
	c := startDevServer(t)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	dsA, dsB := "sched-a-"+hex.EncodeToString(suffix), "sched-b-"+hex.EncodeToString(suffix)
	queue := "activities-test-schedules"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(standIn, workflow.RegisterOptions{Name: workflows.ImportWorkflowName})
	w.RegisterWorkflowWithOptions(standIn, workflow.RegisterOptions{Name: "OtherWorkflow"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := func(id, typ, ds string) {
		t.Helper()
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: id, TaskQueue: queue,
			TypedSearchAttributes: temporal.NewSearchAttributes(workflows.KeyDataSource.ValueSet(ds)),
		}, typ)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), id, "", "test over") })
	}
	start("import-"+dsA+"-2", workflows.ImportWorkflowName, dsA)
	start("import-"+dsA+"-1", workflows.ImportWorkflowName, dsA)
	start("import-"+dsA+"-ended", workflows.ImportWorkflowName, dsA)
	start("import-"+dsB+"-1", workflows.ImportWorkflowName, dsB)
	start("other-"+dsA, "OtherWorkflow", dsA)
	if err := c.SignalWorkflow(ctx, "import-"+dsA+"-ended", "", "finish", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.GetWorkflow(ctx, "import-"+dsA+"-ended", "").Get(ctx, nil); err != nil {
		t.Fatal(err)
	}

	acts := &activities.Activities{Temporal: c}
	env := activityEnv()
	env.RegisterActivity(acts)
	find := func(ds string) (activities.FindRunningImportsResult, error) {
		var res activities.FindRunningImportsResult
		v, err := env.ExecuteActivity(acts.FindRunningImports, activities.FindRunningImportsInput{DataSource: ds})
		if err != nil {
			return res, err
		}
		return res, v.Get(&res)
	}
	// Visibility trails the workflows by a moment: wait for the answer.
	want := []string{"import-" + dsA + "-1", "import-" + dsA + "-2"}
	var got activities.FindRunningImportsResult
	deadline := time.Now().Add(15 * time.Second)
	for {
		var err error
		got, err = find(dsA)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(got.Running, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !slices.Equal(got.Running, want) {
		t.Errorf("running imports of %s: %v, want %v", dsA, got.Running, want)
	}
	none, err := find("sched-none")
	if err != nil || none.Running == nil || len(none.Running) != 0 {
		t.Errorf("a data source with no import: %+v, %v; want an empty list", none, err)
	}

	// A name that could change the query's meaning never reaches it.
	_, err = find("x' OR WorkflowType != '")
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || !strings.Contains(app.Error(), "datasource: invalid data source name") {
		t.Errorf("a bad data source name: %v, want a non-retryable refusal naming the field", err)
	}
}

// A worker without a Temporal client says so, without retrying.
func TestFindRunningImportsWithoutClient(t *testing.T) {
	acts := &activities.Activities{}
	env := activityEnv()
	env.RegisterActivity(acts)
	_, err := env.ExecuteActivity(acts.FindRunningImports, activities.FindRunningImportsInput{DataSource: "ds"})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || !strings.Contains(app.Error(), "no Temporal client (Activities.Temporal)") {
		t.Errorf("no client: %v, want a non-retryable error saying so", err)
	}
}
