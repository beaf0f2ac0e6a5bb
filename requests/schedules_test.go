package requests

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// newScheduleAirlock is newAirlock with a worker that also runs scheduled
// imports: ScheduledImportWorkflow, and the activities with the worker's
// Temporal client (FindRunningImports asks it).
func newScheduleAirlock(t *testing.T) *airlock {
	t.Helper()
	c := devServer(t).Client()
	tmp := t.TempDir()
	srcDir := filepath.Join(tmp, "files", "src")
	must(t, os.MkdirAll(srcDir, 0o755))
	must(t, os.WriteFile(filepath.Join(srcDir, "visits.csv"), []byte("clinic,visits\nnorth,120\n"), 0o644))
	staging, err := localstore.New(filepath.Join(tmp, "staging"))
	must(t, err)
	workspaces, err := localstore.New(filepath.Join(tmp, "workspaces"))
	must(t, err)
	t.Cleanup(func() { _ = staging.Close(); _ = workspaces.Close() })
	acts := &activities.Activities{
		Staging:    staging,
		Workspaces: workspaces,
		Sources:    file.Factories(file.Config{FileRoot: filepath.Join(tmp, "files")}),
		Policies:   testPolicyBook(),
		Temporal:   c,
	}
	queue := "requests-test-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.ImportWorkflow, workflow.RegisterOptions{Name: workflows.ImportWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.ScheduledImportWorkflow, workflow.RegisterOptions{Name: workflows.ScheduledImportWorkflowName})
	w.RegisterActivity(acts)
	w.RegisterWorkflowWithOptions(otherWorkflow, workflow.RegisterOptions{Name: "OtherWorkflow"})
	must(t, w.Start())
	t.Cleanup(w.Stop)
	return &airlock{svc: &Service{Client: c, TaskQueue: queue}, client: c, srcDir: srcDir, staging: staging}
}

// waitSchedule polls Schedule until ok accepts it.
func (a *airlock) waitSchedule(t *testing.T, id, what string, ok func(ScheduleSummary) bool) ScheduleSummary {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		sum, err := a.svc.Schedule(ctx(t), id)
		must(t, err)
		if ok(sum) {
			return sum
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule %s: waited for %s; last %+v", id, what, sum)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// trigger runs the schedule now (as if it fired) and waits for the run
// to end.
func (a *airlock) trigger(t *testing.T, id string, runsBefore int) ScheduledRun {
	t.Helper()
	must(t, a.client.ScheduleClient().GetHandle(ctx(t), id).Trigger(ctx(t), client.ScheduleTriggerOptions{}))
	sum := a.waitSchedule(t, id, "the triggered run to end", func(s ScheduleSummary) bool {
		return s.Started+s.Skipped+s.Failed == int64(runsBefore+1) && len(s.RecentRuns) > 0 && s.RecentRuns[0].State != ""
	})
	return sum.RecentRuns[0]
}

// TestScheduleLifecycle creates a schedule, runs it twice (the first run
// starts an import; the second skips while that import awaits approval),
// pauses, unpauses and deletes it.
func TestScheduleLifecycle(t *testing.T) {
	a := newScheduleAirlock(t)
	dsName := unique("sched-source")
	requester := unique("rita")
	ds := testDataSource(dsName, "proj-sched")
	id, err := a.svc.CreateSchedule(ctx(t), CreateSchedule{
		Cron: "0 2 * * *", Note: "nightly extract",
		Import: StartImport{DataSource: ds, Workspace: "ws-sched", Requester: requester, Policy: "standard", Via: "api"},
	})
	must(t, err)
	if id != "import-"+dsName {
		t.Errorf("default id %q, want import-%s", id, dsName)
	}
	t.Cleanup(func() { _ = a.svc.DeleteSchedule(ctx(t), id) })

	sum, err := a.svc.Schedule(ctx(t), id)
	must(t, err)
	if sum.Cron != "0 2 * * *" || sum.Paused || sum.Note != "nightly extract" || sum.DataSource != dsName || sum.Project != "proj-sched" ||
		sum.Workspace != "ws-sched" || sum.Requester != requester || sum.Policy != "standard" || sum.CreatedVia != "api" || sum.CreatedAt.IsZero() {
		t.Errorf("schedule %+v", sum)
	}
	if len(sum.NextRuns) == 0 || sum.NextRuns[0].UTC().Hour() != 2 || sum.NextRuns[0].Minute() != 0 || !sum.NextRuns[0].After(time.Now()) {
		t.Errorf("next runs %v, want 02:00 UTC daily", sum.NextRuns)
	}
	if len(sum.RecentRuns) != 0 || sum.Started != 0 || sum.Skipped != 0 {
		t.Errorf("a new schedule has runs: %+v", sum)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		all, err := a.svc.ListSchedules(ctx(t))
		must(t, err)
		if i := indexOf(all, id); i >= 0 {
			if all[i].DataSource != dsName || all[i].Cron != "0 2 * * *" {
				t.Errorf("listed %+v", all[i])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule %s is not listed: %+v", id, all)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The first run starts an import, requested by the schedule's requester via "schedule".
	run := a.trigger(t, id, 0)
	if run.State != workflows.ScheduledStarted || !strings.HasPrefix(run.Import, "import-"+dsName+"-") || !strings.HasPrefix(run.Run, "scheduled-"+id+"-") {
		t.Fatalf("first run %+v, want one that started an import", run)
	}
	st := a.waitState(t, run.Import, model.StateAwaitingApproval)
	if st.Requester != requester || st.Via != workflows.ViaSchedule || st.Workspace != "ws-sched" || st.DataSource != dsName || st.Policy != "standard@1" {
		t.Errorf("the scheduled import %+v", st)
	}
	imp, err := a.svc.Summary(ctx(t), run.Import)
	must(t, err)
	if imp.Kind != "import" || imp.Requester != requester {
		t.Errorf("the scheduled import's summary %+v", imp)
	}

	// While it awaits approval, the next run skips.
	skip := a.trigger(t, id, 1)
	if skip.State != workflows.ScheduledSkipped || skip.Import != "" {
		t.Fatalf("second run %+v, want a skipped one", skip)
	}
	var res workflows.ScheduledImportResult
	must(t, a.client.GetWorkflow(ctx(t), skip.Run, "").Get(ctx(t), &res))
	if !res.Skipped || res.Running != run.Import || !strings.Contains(res.Reason, "is still running") {
		t.Errorf("skipped run's result %+v", res)
	}
	sum = a.waitSchedule(t, id, "one started and one skipped run", func(s ScheduleSummary) bool { return s.Started == 1 && s.Skipped == 1 })
	if len(sum.RecentRuns) != 2 || sum.RecentRuns[0].Run != skip.Run || sum.RecentRuns[1].Import != run.Import {
		t.Errorf("recent runs %+v, want the skipped run, then the one that started %s", sum.RecentRuns, run.Import)
	}
	if n := a.countImports(t, dsName); n != 1 {
		t.Errorf("%d imports of %s, want 1", n, dsName)
	}

	// Pause and unpause say who and why; doing either twice is refused.
	must(t, a.svc.PauseSchedule(ctx(t), id, "dana", "source under maintenance"))
	sum, err = a.svc.Schedule(ctx(t), id)
	must(t, err)
	if !sum.Paused || sum.Note != "paused by dana: source under maintenance" || len(sum.NextRuns) != 0 {
		t.Errorf("paused schedule %+v", sum)
	}
	var refused *RefusedError
	if err := a.svc.PauseSchedule(ctx(t), id, "dana", ""); !errors.As(err, &refused) || refused.Reason != "schedule "+id+" is already paused (paused by dana: source under maintenance)" {
		t.Errorf("pausing a paused schedule: %v", err)
	}
	must(t, a.svc.UnpauseSchedule(ctx(t), id, "dana", ""))
	sum, err = a.svc.Schedule(ctx(t), id)
	must(t, err)
	if sum.Paused || sum.Note != "unpaused by dana" || len(sum.NextRuns) == 0 {
		t.Errorf("unpaused schedule %+v", sum)
	}
	if err := a.svc.UnpauseSchedule(ctx(t), id, "dana", ""); !errors.As(err, &refused) || refused.Reason != "schedule "+id+" is not paused" {
		t.Errorf("unpausing a running schedule: %v", err)
	}
	var fe *FieldError
	if err := a.svc.PauseSchedule(ctx(t), id, " ", ""); !errors.As(err, &fe) || fe.Field != "requester" {
		t.Errorf("pause by no one: %v, want a requester refusal", err)
	}

	// The id is taken while the schedule exists.
	_, err = a.svc.CreateSchedule(ctx(t), CreateSchedule{Cron: "@daily", Import: StartImport{DataSource: ds, Workspace: "ws-sched", Requester: requester}})
	if !errors.As(err, &fe) || fe.Field != "id" || !strings.Contains(fe.Problem, "a schedule with this id exists") {
		t.Errorf("a second schedule with the same id: %v", err)
	}

	must(t, a.svc.DeleteSchedule(ctx(t), id))
	if _, err := a.svc.Schedule(ctx(t), id); err != ErrNotFound {
		t.Errorf("a deleted schedule: %v, want ErrNotFound", err)
	}
	if err := a.svc.DeleteSchedule(ctx(t), id); err != ErrNotFound {
		t.Errorf("deleting a deleted schedule: %v, want ErrNotFound", err)
	}
	// The import it started goes on.
	if st, err := a.svc.Status(ctx(t), run.Import); err != nil || st.State != model.StateAwaitingApproval {
		t.Errorf("the import after its schedule's deletion: %s, %v", st.State, err)
	}
	_, err = a.svc.Cancel(ctx(t), run.Import, model.CancelRequest{By: requester, Via: "api"})
	must(t, err)
}

// TestScheduleFires lets the server fire a schedule every two seconds: one
// import starts, and every later run skips while it runs.
func TestScheduleFires(t *testing.T) {
	a := newScheduleAirlock(t)
	dsName := unique("fires-source")
	id, err := a.svc.CreateSchedule(ctx(t), CreateSchedule{
		ID: unique("every-two-seconds"), Cron: "*/2 * * * * * *",
		Import: StartImport{DataSource: testDataSource(dsName, "proj-sched"), Workspace: "ws-sched", Requester: "rita", Via: "cli"},
	})
	must(t, err)
	t.Cleanup(func() { _ = a.svc.DeleteSchedule(ctx(t), id) })
	sum := a.waitSchedule(t, id, "a started run and two skipped ones", func(s ScheduleSummary) bool { return s.Started >= 1 && s.Skipped >= 2 })
	must(t, a.svc.PauseSchedule(ctx(t), id, "rita", "test over"))
	if sum.Started != 1 {
		t.Errorf("%d runs started an import, want 1: %+v", sum.Started, sum)
	}
	if n := a.countImports(t, dsName); n != 1 {
		t.Errorf("%d imports of %s, want 1", n, dsName)
	}
	for _, r := range sum.RecentRuns {
		if r.State == workflows.ScheduledStarted {
			_, _ = a.svc.Cancel(ctx(t), r.Import, model.CancelRequest{By: "rita", Via: "api"})
		}
	}
}

// countImports counts the imports of a data source, running or ended.
func (a *airlock) countImports(t *testing.T, ds string) int64 {
	t.Helper()
	resp, err := a.client.CountWorkflow(ctx(t), &workflowservice.CountWorkflowExecutionsRequest{
		Query: workflows.SearchAttrKind + " = 'import' AND " + workflows.SearchAttrDataSource + " = '" + ds + "'",
	})
	must(t, err)
	return resp.GetCount()
}

func indexOf(all []ScheduleSummary, id string) int {
	for i, s := range all {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// TestScheduleRefusals: what StartImport refuses, a bad id, cron or note,
// and (from the server) a cron expression it cannot parse.
func TestScheduleRefusals(t *testing.T) {
	a := newScheduleAirlock(t)
	good := func() CreateSchedule {
		return CreateSchedule{Cron: "0 2 * * *", Import: StartImport{DataSource: testDataSource(unique("refused"), "proj-sched"), Workspace: "ws", Requester: "rita"}}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*CreateSchedule)
		field string
		want  string
	}{
		{"uploaded data source", func(c *CreateSchedule) { c.Import.DataSource.Spec.Type = model.TypeUploaded }, "spec.type", "only Import data sources are imported"},
		{"no requester", func(c *CreateSchedule) { c.Import.Requester = "" }, "requester", "missing"},
		{"bad workspace", func(c *CreateSchedule) { c.Import.Workspace = "../ws" }, "workspace", model.NameRule},
		{"bad binding", func(c *CreateSchedule) { c.Import.Binding = "B B" }, "binding", "not a binding name"},
		{"bad policy", func(c *CreateSchedule) { c.Import.Policy = "Two Person" }, "policy", "not a policy name"},
		{"bad id", func(c *CreateSchedule) { c.ID = "Nightly_Import" }, "id", model.NameRule},
		{"no cron", func(c *CreateSchedule) { c.Cron = "  " }, "cron", "missing: give 5 fields"},
		{"too few fields", func(c *CreateSchedule) { c.Cron = "0 2 *" }, "cron", "3 fields: give 5 fields"},
		{"control character", func(c *CreateSchedule) { c.Cron = "0 2 * * *\n0 3 * * *" }, "cron", "control characters"},
		{"server refuses", func(c *CreateSchedule) { c.Cron = "61 2 * * *" }, "cron", "not a schedule Temporal accepts"},
		{"long note", func(c *CreateSchedule) { c.Note = strings.Repeat("n", 1001) }, "note", "longer than 1000 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := good()
			tc.edit(&in)
			_, err := a.svc.CreateSchedule(ctx(t), in)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Error(), tc.want) {
				t.Errorf("error %v, want a %s refusal mentioning %q", err, tc.field, tc.want)
			}
		})
	}
	in := good()
	in.Import.DataSource.Metadata.Name = ""
	if _, err := a.svc.CreateSchedule(ctx(t), in); err == nil || !strings.Contains(err.Error(), "metadata.name") {
		t.Errorf("an invalid document: %v, want its field errors", err)
	}
}

// TestScheduleNotFound: a missing schedule and another application's are
// ErrNotFound, whatever was asked.
func TestScheduleNotFound(t *testing.T) {
	a := newScheduleAirlock(t)
	other := unique("other-app")
	_, err := a.client.ScheduleClient().Create(ctx(t), client.ScheduleOptions{
		ID: other, Spec: client.ScheduleSpec{CronExpressions: []string{"@yearly"}}, Paused: true,
		Action: &client.ScheduleWorkflowAction{ID: other, Workflow: "OtherWorkflow", TaskQueue: a.svc.TaskQueue},
	})
	must(t, err)
	t.Cleanup(func() { _ = a.client.ScheduleClient().GetHandle(ctx(t), other).Delete(ctx(t)) })
	for _, id := range []string{"no-such-schedule", other} {
		if _, err := a.svc.Schedule(ctx(t), id); err != ErrNotFound {
			t.Errorf("Schedule(%s): %v, want ErrNotFound", id, err)
		}
		if err := a.svc.PauseSchedule(ctx(t), id, "rita", ""); err != ErrNotFound {
			t.Errorf("PauseSchedule(%s): %v, want ErrNotFound", id, err)
		}
		if err := a.svc.UnpauseSchedule(ctx(t), id, "rita", ""); err != ErrNotFound {
			t.Errorf("UnpauseSchedule(%s): %v, want ErrNotFound", id, err)
		}
		if err := a.svc.DeleteSchedule(ctx(t), id); err != ErrNotFound {
			t.Errorf("DeleteSchedule(%s): %v, want ErrNotFound", id, err)
		}
	}
	all, err := a.svc.ListSchedules(ctx(t))
	must(t, err)
	if indexOf(all, other) >= 0 {
		t.Errorf("ListSchedules lists another application's schedule %s", other)
	}
	var fe *FieldError
	if _, err := a.svc.Schedule(ctx(t), ""); !errors.As(err, &fe) || fe.Field != "id" {
		t.Errorf("Schedule of no id: %v, want an id refusal", err)
	}
}

func TestDefaultScheduleID(t *testing.T) {
	if got := DefaultScheduleID("clinic-extract"); got != "import-clinic-extract" {
		t.Errorf("DefaultScheduleID = %q", got)
	}
	long := strings.Repeat("a", 55) + "-" + strings.Repeat("b", 7)
	if got := DefaultScheduleID(long); got != "import-"+strings.Repeat("a", 55) || !model.ValidName(got) {
		t.Errorf("DefaultScheduleID(long) = %q, want a valid name cut before the '-'", got)
	}
}
