package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/testservers"
	"github.com/airlockhq/airlock/workflows"
)

func TestScheduleFlagsCheckedBeforeContactingTheServer(t *testing.T) {
	good := "../examples/datasources/sample-file.yaml"
	uploaded := fixtures + "uploaded-pvc.yaml"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"schedule"}, "name a subcommand"},
		{"no requester", []string{"schedule", "create", "-f", good, "--cron", "@daily"}, "--as: missing"},
		{"no cron", []string{"schedule", "create", "-f", good, "--as", "rita"}, "--cron: missing"},
		{"bad id", []string{"schedule", "create", "-f", good, "--as", "rita", "--cron", "@daily", "--id", "Nightly"}, `--id "Nightly"`},
		{"bad binding", []string{"schedule", "create", "-f", fixtures + "import-databricks.yaml", "--workspace", "ws", "--as", "rita", "--cron", "@daily", "--binding", "B B"}, `--binding "B B"`},
		{"binding contradicts document", []string{"schedule", "create", "-f", good, "--as", "rita", "--cron", "@daily", "--binding", "other-binding"}, "--binding other-binding contradicts the binding document"},
		{"workspace contradicts binding", []string{"schedule", "create", "-f", good, "--workspace", "other-ws", "--as", "rita", "--cron", "@daily"}, "contradicts binding"},
		{"no workspace", []string{"schedule", "create", "-f", fixtures + "import-databricks.yaml", "--as", "rita", "--cron", "@daily"}, "--workspace: missing"},
		{"bad workspace", []string{"schedule", "create", "-f", fixtures + "import-databricks.yaml", "--workspace", "../etc", "--as", "rita", "--cron", "@daily"}, "--workspace"},
		{"uploaded data source", []string{"schedule", "create", "-f", uploaded, "--workspace", "ws", "--as", "rita", "--cron", "@daily"}, "only Import data sources are imported"},
		{"no file", []string{"schedule", "create", "--as", "rita", "--workspace", "ws", "--cron", "@daily"}, "-f FILE"},
		{"pause without --as", []string{"schedule", "pause", "import-x"}, "--as: missing: say who paused"},
		{"unpause without --as", []string{"schedule", "unpause", "import-x"}, "--as: missing: say who unpaused"},
		{"pause without id", []string{"schedule", "pause", "--as", "rita"}, "ID: give the schedule id"},
		{"delete without id", []string{"schedule", "delete"}, "ID: give the schedule id"},
		{"show without id", []string{"schedule", "show"}, "ID: give the schedule id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, err := run(t, tc.args...)
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error() + errOut; !strings.Contains(msg, tc.want) {
				t.Errorf("refusal %q does not mention %q", msg, tc.want)
			}
		})
	}
}

func TestExplainSchedule(t *testing.T) {
	if err := explainSchedule(requests.ErrNotFound, "nightly", "ID"); err == nil || err.Error() != "no import schedule \"nightly\" in this namespace: check the id with `airlock schedule list`" {
		t.Errorf("not found: %v", err)
	}
	for _, tc := range []struct{ field, idName, want string }{
		{"cron", "--id", `--cron "v": bad`},
		{"requester", "ID", `--as "v": bad`},
		{"id", "--id", `--id "v": bad`},
		{"id", "ID", `ID "v": bad`},
		{"spec.type", "--id", `spec.type "v": bad`},
	} {
		err := explainSchedule(&requests.FieldError{Field: tc.field, Value: "v", Problem: "bad"}, "", tc.idName)
		if err == nil || err.Error() != tc.want {
			t.Errorf("field %s: %v, want %s", tc.field, err, tc.want)
		}
	}
}

// cli runs airlock against a real Temporal server: each command dials it.
func cli(t *testing.T, hostPort string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := newApp(&out, &errOut)
	a.dial = func() (client.Client, error) {
		return client.Dial(client.Options{HostPort: hostPort, Namespace: "default", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	}
	root := a.rootCmd()
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// TestScheduleCommands creates, lists, shows, pauses, unpauses and deletes
// a schedule through the CLI against a Temporal dev server (no worker: a
// schedule lives in the server).
func TestScheduleCommands(t *testing.T) {
	bin, err := testservers.Tool("temporal")
	if err != nil {
		testservers.Unavailable(t, err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(sctx, testsuite.DevServerOptions{
		ExistingPath: bin, LogLevel: "error", ExtraArgs: workflows.DevServerSearchAttributeArgs(),
		ClientOptions: &client.Options{Namespace: "default", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))},
		Stdout:        io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		testservers.Unavailable(t, fmt.Errorf("starting the Temporal dev server: %w", err))
	}
	t.Cleanup(func() { _ = srv.Stop() })
	hp := srv.FrontendHostPort()
	const doc = "../examples/datasources/sample-file.yaml" // with its binding to advanced-generic-workspace
	const id = "import-sample-clinic-extract"

	out, errOut, err := cli(t, hp, "schedule", "create", "-f", doc, "--cron", "0 2 * * *", "--as", "rita", "--note", "nightly extract", "--task-queue", "cli-test")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, errOut)
	}
	if out != id+"\n" || !strings.Contains(errOut, "schedule "+id+" imports sample-clinic-extract into workspace advanced-generic-workspace for rita at \"0 2 * * *\"; next run ") {
		t.Errorf("create printed %q, stderr %q", out, errOut)
	}
	_, _, err = cli(t, hp, "schedule", "create", "-f", doc, "--cron", "0 3 * * *", "--as", "rita")
	if err == nil || err.Error() != `--id "`+id+`": a schedule with this id exists: give another id, or delete that schedule first` {
		t.Errorf("a second schedule with the same id: %v", err)
	}
	_, _, err = cli(t, hp, "schedule", "create", "-f", doc, "--cron", "0 25 * * *", "--as", "rita", "--id", "bad-cron")
	if err == nil || !strings.HasPrefix(err.Error(), `--cron "0 25 * * *": not a schedule Temporal accepts`) {
		t.Errorf("a bad cron expression: %v", err)
	}

	// The list reads the visibility store: wait for the new schedule.
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, errOut, err = cli(t, hp, "schedule", "list")
		if err != nil {
			t.Fatalf("list: %v\n%s", err, errOut)
		}
		if strings.Contains(out, id) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "NEXT RUN") {
		t.Fatalf("list printed:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != id || !strings.Contains(lines[1], "0 2 * * *") || !strings.Contains(lines[1], " active ") ||
		!strings.Contains(lines[1], "sample-clinic-extract  advanced-generic-workspace  rita") || !regexp.MustCompile(`\s0\s+0\s+0\s+nightly extract$`).MatchString(lines[1]) {
		t.Errorf("list row:\n%s\n%s", lines[0], lines[1])
	}
	out, _, err = cli(t, hp, "schedule", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var listed []requests.ScheduleSummary
	if err := json.Unmarshal([]byte(out), &listed); err != nil || len(listed) != 1 || listed[0].ID != id || listed[0].Binding != "dsb-sample-clinic-extract" || listed[0].CreatedVia != "cli" {
		t.Errorf("list -o json: %v\n%s", err, out)
	}

	if out, errOut, err = cli(t, hp, "schedule", "pause", id, "--as", "dana", "--note", "source under maintenance"); err != nil || out != "schedule "+id+" paused\n" {
		t.Errorf("pause: %q %v %s", out, err, errOut)
	}
	_, errOut, err = cli(t, hp, "schedule", "pause", id, "--as", "dana")
	var quiet *exitError
	if !errors.As(err, &quiet) || errOut != "refused: schedule "+id+" is already paused (paused by dana: source under maintenance)\n" {
		t.Errorf("pausing twice: %v, stderr %q", err, errOut)
	}
	out, _, err = cli(t, hp, "schedule", "show", id)
	if err != nil || !strings.Contains(out, "schedule   "+id+" (paused)") || !strings.Contains(out, "note       paused by dana: source under maintenance") ||
		!strings.Contains(out, "next run   -") || !strings.Contains(out, "runs       0 started an import, 0 skipped") {
		t.Errorf("show a paused schedule: %v\n%s", err, out)
	}
	if out, _, err = cli(t, hp, "schedule", "unpause", id, "--as", "dana", "-o", "json"); err != nil || !strings.Contains(out, `"paused": false`) {
		t.Errorf("unpause -o json: %v %s", err, out)
	}
	out, _, err = cli(t, hp, "schedule", "show", id, "-o", "json")
	var shown requests.ScheduleSummary
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || shown.Paused || shown.Note != "unpaused by dana" || len(shown.NextRuns) == 0 {
		t.Errorf("show -o json after unpause: %v\n%s", err, out)
	}

	if out, _, err = cli(t, hp, "schedule", "delete", id); err != nil || out != "schedule "+id+" deleted; imports it started go on\n" {
		t.Errorf("delete: %q %v", out, err)
	}
	for _, args := range [][]string{{"delete", id}, {"show", id}, {"pause", id, "--as", "dana"}} {
		_, errOut, err = cli(t, hp, append([]string{"schedule"}, args...)...)
		if !errors.As(err, &quiet) || errOut != "refused: no import schedule \""+id+"\" in this namespace: check the id with `airlock schedule list`\n" {
			t.Errorf("schedule %s after delete: %v, stderr %q", args[0], err, errOut)
		}
	}
}
