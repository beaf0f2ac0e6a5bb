package workflows

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

const testSchedule = "import-clinic-extract"

// scheduledEnv is a test environment for ScheduledImportWorkflow: the
// import it starts is a mock that records its input and id, and the
// search attributes the run upserts are collected.
type scheduledEnv struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	mu       sync.Mutex
	attrs    map[string]string // keyword search attributes as upserted last ("" once unset)
	imports  []ImportInput     // inputs of the imports started
	importID []string          // their workflow ids
	parents  []string          // the workflow id of their parent
	childSA  []temporal.SearchAttributes
}

func newScheduledEnv(t *testing.T) *scheduledEnv {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))))
	e := &scheduledEnv{t: t, env: s.NewTestWorkflowEnvironment(), attrs: map[string]string{}}
	e.env.RegisterWorkflowWithOptions(ScheduledImportWorkflow, workflow.RegisterOptions{Name: ScheduledImportWorkflowName})
	e.env.RegisterWorkflowWithOptions(ImportWorkflow, workflow.RegisterOptions{Name: ImportWorkflowName})
	e.env.RegisterActivity(&activities.Activities{})
	e.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "scheduled-" + testSchedule + "-2025-05-01T09:00:00Z", TaskQueue: TaskQueue})
	e.env.SetStartTime(time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC))
	e.env.SetTestTimeout(15 * time.Second)
	e.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, key := range []temporal.SearchAttributeKeyKeyword{KeyKind, KeyState, KeyProject, KeyDataSource, KeyWorkspace, KeyRequester, KeySchedule, KeyRequest} {
			if !sa.ContainsKey(key) {
				continue
			}
			v, _ := sa.GetKeyword(key)
			e.attrs[key.GetName()] = v
		}
	}).Return(nil)
	e.env.OnWorkflow(ImportWorkflowName, mock.Anything, mock.Anything).Return(func(ctx workflow.Context, in ImportInput) (ImportResult, error) {
		info := workflow.GetInfo(ctx)
		e.mu.Lock()
		e.imports = append(e.imports, in)
		e.importID = append(e.importID, info.WorkflowExecution.ID)
		parent := ""
		if info.ParentWorkflowExecution != nil {
			parent = info.ParentWorkflowExecution.ID
		}
		e.parents = append(e.parents, parent)
		e.childSA = append(e.childSA, workflow.GetTypedSearchAttributes(ctx))
		e.mu.Unlock()
		return ImportResult{State: model.StateAwaitingApproval}, nil
	})
	return e
}

func scheduledInput() ScheduledImportInput {
	in := testInput()
	in.Via = "cli" // the workflow makes it "schedule"
	return ScheduledImportInput{Schedule: testSchedule, Import: in}
}

// runningImports mocks FindRunningImports: it answers running for the
// test's data source.
func (e *scheduledEnv) runningImports(running ...string) {
	e.env.OnActivity("FindRunningImports", mock.Anything, activities.FindRunningImportsInput{DataSource: testDataSource}).
		Return(activities.FindRunningImportsResult{Running: running}, nil)
}

func (e *scheduledEnv) run(in ScheduledImportInput) (ScheduledImportResult, error) {
	e.t.Helper()
	e.env.ExecuteWorkflow(ScheduledImportWorkflowName, in)
	require.True(e.t, e.env.IsWorkflowCompleted(), "the scheduled run did not complete")
	var res ScheduledImportResult
	if err := e.env.GetWorkflowError(); err != nil {
		return res, err
	}
	require.NoError(e.t, e.env.GetWorkflowResult(&res))
	return res, nil
}

func TestScheduledImportStartsTheImport(t *testing.T) {
	e := newScheduledEnv(t)
	e.runningImports()
	res, err := e.run(scheduledInput())
	require.NoError(t, err)

	wantID := "import-" + testDataSource + "-20250501090000"
	assert.Equal(t, ScheduledImportResult{Started: wantID}, res)
	require.Len(t, e.imports, 1, "one import started")
	assert.Equal(t, wantID, e.importID[0])
	assert.Equal(t, "scheduled-"+testSchedule+"-2025-05-01T09:00:00Z", e.parents[0], "the import is the run's child")
	got := e.imports[0]
	assert.Equal(t, ViaSchedule, got.Via)
	assert.Equal(t, testRequester, got.Requester)
	assert.Equal(t, testWorkspace, got.Workspace)
	assert.Equal(t, testDataSource, got.DataSource.Metadata.Name)
	// The import is listed from the moment it starts, and names its schedule.
	for key, want := range map[temporal.SearchAttributeKeyKeyword]string{
		KeyKind: "import", KeyState: string(model.StateExtracting), KeyDataSource: testDataSource,
		KeyProject: testProject, KeyWorkspace: testWorkspace, KeyRequester: testRequester, KeySchedule: testSchedule,
	} {
		v, ok := e.childSA[0].GetKeyword(key)
		assert.True(t, ok && v == want, "the import's %s is %q, want %q", key.GetName(), v, want)
	}
	assert.Equal(t, map[string]string{
		SearchAttrKind: KindScheduledImport, SearchAttrSchedule: testSchedule, SearchAttrState: ScheduledStarted,
		SearchAttrDataSource: testDataSource, SearchAttrProject: testProject, SearchAttrWorkspace: testWorkspace,
		SearchAttrRequester: testRequester, SearchAttrRequest: wantID,
	}, e.attrs)
}

func TestScheduledImportSkipsWhileAnImportRuns(t *testing.T) {
	e := newScheduledEnv(t)
	e.runningImports("import-clinic-extract-x7k2m9")
	res, err := e.run(scheduledInput())
	require.NoError(t, err)
	assert.True(t, res.Skipped)
	assert.Empty(t, res.Started)
	assert.Equal(t, "import-clinic-extract-x7k2m9", res.Running)
	assert.Contains(t, res.Reason, "import import-clinic-extract-x7k2m9 of data source clinic-extract is still running")
	assert.Contains(t, res.Reason, "schedule "+testSchedule)
	assert.Empty(t, e.imports, "no import may start while one runs")
	assert.Equal(t, ScheduledSkipped, e.attrs[SearchAttrState])
	assert.Equal(t, "", e.attrs[SearchAttrRequest])
	assert.Equal(t, KindScheduledImport, e.attrs[SearchAttrKind])
}

func TestScheduledImportRefusesInvalidInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*ScheduledImportInput)
		want string
	}{
		{"no requester", func(in *ScheduledImportInput) { in.Import.Requester = " " }, "requester: missing"},
		{"no schedule", func(in *ScheduledImportInput) { in.Schedule = "" }, "schedule: missing"},
		{"uploaded data source", func(in *ScheduledImportInput) { in.Import.DataSource.Spec.Type = model.TypeUploaded },
			"spec.type: an import needs a data source of type Import"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newScheduledEnv(t)
			in := scheduledInput()
			tc.edit(&in)
			_, err := e.run(in)
			var app *temporal.ApplicationError
			require.ErrorAs(t, err, &app)
			assert.Equal(t, ErrTypeScheduledImportFailed, app.Type())
			assert.True(t, app.NonRetryable())
			assert.Contains(t, app.Message(), tc.want)
			assert.Empty(t, e.imports)
			assert.Equal(t, ScheduledFailed, e.attrs[SearchAttrState])
		})
	}
}

func TestScheduledImportFailsWhenTemporalCannotBeAsked(t *testing.T) {
	e := newScheduledEnv(t)
	e.env.OnActivity("FindRunningImports", mock.Anything, mock.Anything).
		Return(activities.FindRunningImportsResult{}, temporal.NewNonRetryableApplicationError("visibility is down", "Test", nil))
	_, err := e.run(scheduledInput())
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	assert.Equal(t, ErrTypeScheduledImportFailed, app.Type())
	assert.Contains(t, app.Message(), "looking for a running import of data source clinic-extract failed: visibility is down")
	assert.Empty(t, e.imports)
	assert.Equal(t, ScheduledFailed, e.attrs[SearchAttrState])
}

// twoRunsWorkflow holds an import under the id a scheduled run is about
// to use, then runs the scheduled run: as when two runs for one data
// source fire in the same second.
func twoRunsWorkflow(ctx workflow.Context, in ScheduledImportInput) (ScheduledImportResult, error) {
	first := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        ScheduledImportID(in.Import.DataSource.Metadata.Name, workflow.Now(ctx)),
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
	}), ImportWorkflowName, in.Import)
	if err := first.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return ScheduledImportResult{}, err
	}
	var res ScheduledImportResult
	err := workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: "second-run"}),
		ScheduledImportWorkflowName, in).Get(ctx, &res)
	return res, err
}

func TestScheduledImportSkipsWhenItsIDIsTaken(t *testing.T) {
	e := newScheduledEnv(t)
	e.env.RegisterWorkflow(twoRunsWorkflow)
	e.runningImports() // visibility does not show the first import yet
	e.env.ExecuteWorkflow(twoRunsWorkflow, scheduledInput())
	require.True(t, e.env.IsWorkflowCompleted())
	require.NoError(t, e.env.GetWorkflowError())
	var res ScheduledImportResult
	require.NoError(t, e.env.GetWorkflowResult(&res))
	wantID := "import-" + testDataSource + "-20250501090000"
	assert.True(t, res.Skipped, "result %+v", res)
	assert.Equal(t, wantID, res.Running)
	assert.Contains(t, res.Reason, "an import with id "+wantID+" already exists")
	assert.Len(t, e.imports, 1, "only the first import started")
	assert.Equal(t, ScheduledSkipped, e.attrs[SearchAttrState])
}

func TestScheduledImportID(t *testing.T) {
	at := time.Date(2025, 12, 31, 23, 59, 58, 0, time.FixedZone("CET", 3600))
	assert.Equal(t, "import-clinic-extract-20251231225958", ScheduledImportID("clinic-extract", at), "the time is UTC")
	// A long name is cut so the id stays a valid name, without a '-' before the time's.
	long := strings.Repeat("a", 40) + "-" + strings.Repeat("b", 22)
	require.True(t, model.ValidName(long))
	id := ScheduledImportID(long, at)
	assert.Equal(t, "import-"+strings.Repeat("a", 40)+"-20251231225958", id)
	for _, name := range []string{"a", long, strings.Repeat("x", 63), "ds-782b4a1f07234229980f75f2f651412a"} {
		id := ScheduledImportID(name, at)
		assert.True(t, model.ValidName(id), "id %q is not a valid name", id)
		assert.Empty(t, validateRequest(id, model.KindImport, model.TypeImport, testDataSourceDoc(), testWorkspace, testRequester, ""), "id %q", id)
	}
}

// The running-imports query of the activities package names this
// package's import workflow type and data source attribute.
func TestRunningImportsQueryNames(t *testing.T) {
	q := activities.RunningImportsQuery("clinic-extract")
	assert.Equal(t, "WorkflowType = '"+ImportWorkflowName+"' AND "+SearchAttrDataSource+" = 'clinic-extract' AND ExecutionStatus = 'Running'", q)
}

func TestScheduledDetails(t *testing.T) {
	in := scheduledInput()
	d := ScheduledDetails(in, ScheduledStarted, ScheduledImportResult{Started: "import-x-1"})
	assert.Contains(t, d, "**State:** STARTED")
	assert.Contains(t, d, "started import `import-x-1` of data source `clinic-extract`")
	d = ScheduledDetails(in, ScheduledSkipped, ScheduledImportResult{Skipped: true, Reason: "import y is still running"})
	assert.Contains(t, d, "**Skipped:** import y is still running.")
	d = ScheduledDetails(in, ScheduledFailed, ScheduledImportResult{Reason: "bad"})
	assert.Contains(t, d, "**Reason:** bad")
}
