package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// ScheduledImportInput is what a schedule starts ScheduledImportWorkflow
// with each time it fires: the schedule's id and the import to start.
type ScheduledImportInput struct {
	Schedule string      `json:"schedule"`
	Import   ImportInput `json:"import"`
}

// ScheduledImportResult is what one run of a schedule did: Started names
// the import it started; or Skipped is true, Running names an import of the
// same data source that was still running and Reason says so.
type ScheduledImportResult struct {
	Started string `json:"started,omitempty"`
	Skipped bool   `json:"skipped"`
	Running string `json:"running,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// States a scheduled run's AirlockState takes: it started an import, it
// skipped (an import of the data source was running), or it failed (its
// input is invalid, or Temporal could not be asked).
const (
	ScheduledStarted = "STARTED"
	ScheduledSkipped = "SKIPPED"
	ScheduledFailed  = "FAILED"
)

// ViaSchedule is the Via of an import a schedule started.
const ViaSchedule = "schedule"

// ErrTypeScheduledImportFailed marks a scheduled run that ended FAILED.
const ErrTypeScheduledImportFailed = "ScheduledImportFailed"

// scheduledIDStamp is the UTC time format at the end of a scheduled
// import's id.
const scheduledIDStamp = "20060102150405"

// ScheduledImportID is the id of the import a scheduled run starts at at:
// import-<data source>-<UTC yyyymmddhhmmss>, the data source's name cut so
// that the id is a valid name (model.ValidName: at most 63 characters). Two
// runs for one data source in the same second would get the same id: the
// second is skipped (Temporal refuses a duplicate id).
func ScheduledImportID(dataSource string, at time.Time) string {
	prefix := string(model.KindImport) + "-"
	room := 63 - len(prefix) - 1 - len(scheduledIDStamp)
	name := dataSource
	if len(name) > room {
		name = strings.TrimRight(name[:room], "-")
	}
	return prefix + name + "-" + at.UTC().Format(scheduledIDStamp)
}

// ScheduledImportWorkflow is one run of an import schedule. It looks for a
// running import of the schedule's data source and, if there is one, skips
// (a schedule never stacks imports of one data source: the running one
// may still await approval for days); otherwise it starts the import as a
// child workflow that outlives it (ParentClosePolicy ABANDON), waits until
// the import has started and returns its id. Either way the run is
// recorded: AirlockState STARTED or SKIPPED, AirlockRequest names the
// import started, and the current details say what happened.
func ScheduledImportWorkflow(ctx workflow.Context, in ScheduledImportInput) (ScheduledImportResult, error) {
	ds := in.Import.DataSource
	in.Import.Via = ViaSchedule
	logger := workflow.GetLogger(ctx)
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		KeyKind.ValueSet(KindScheduledImport),
		KeySchedule.ValueSet(in.Schedule),
		KeyDataSource.ValueSet(ds.Metadata.Name),
		KeyProject.ValueSet(ds.Spec.Project.ID),
		KeyWorkspace.ValueSet(in.Import.Workspace),
		KeyRequester.ValueSet(in.Import.Requester),
	); err != nil {
		return ScheduledImportResult{}, err
	}
	id := ScheduledImportID(ds.Metadata.Name, workflow.Now(ctx))
	if msg := validateScheduled(id, in); msg != "" {
		return scheduledFailed(ctx, in, msg)
	}

	var found activities.FindRunningImportsResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, shortOptions()), a.FindRunningImports,
		activities.FindRunningImportsInput{DataSource: ds.Metadata.Name}).Get(ctx, &found); err != nil {
		return scheduledFailed(ctx, in, "looking for a running import of data source "+ds.Metadata.Name+" failed: "+rootMessage(err, model.KindImport))
	}
	if len(found.Running) > 0 {
		running := found.Running[0]
		res := ScheduledImportResult{Skipped: true, Running: running, Reason: fmt.Sprintf(
			"import %s of data source %s is still running, so this run of schedule %s started no other; the schedule's next run tries again (cancel or decide the running import to let it)",
			running, ds.Metadata.Name, in.Schedule)}
		logger.Info("scheduled import skipped: an import of the data source is running", "schedule", in.Schedule, "datasource", ds.Metadata.Name, "running", running)
		return scheduledEnd(ctx, in, ScheduledSkipped, res)
	}

	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: id,
		// The import outlives this run: it awaits approval for as long as it takes.
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_ABANDON,
		// An id names the request's staging and workspace folders: never reuse one.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			KeyKind.ValueSet(string(model.KindImport)),
			KeyState.ValueSet(string(model.StateExtracting)),
			KeyProject.ValueSet(ds.Spec.Project.ID),
			KeyDataSource.ValueSet(ds.Metadata.Name),
			KeyWorkspace.ValueSet(in.Import.Workspace),
			KeyRequester.ValueSet(in.Import.Requester),
			KeySchedule.ValueSet(in.Schedule),
		),
		StaticSummary: fmt.Sprintf("Import %s into workspace %s (project %s), started by schedule %s for %s",
			ds.Metadata.Name, in.Import.Workspace, ds.Spec.Project.ID, in.Schedule, in.Import.Requester),
	})
	var started workflow.Execution
	if err := workflow.ExecuteChildWorkflow(cctx, ImportWorkflowName, in.Import).GetChildWorkflowExecution().Get(ctx, &started); err != nil {
		if idTaken(err) {
			res := ScheduledImportResult{Skipped: true, Running: id, Reason: fmt.Sprintf(
				"an import with id %s already exists (another run for data source %s started it this second), so this run of schedule %s started no other",
				id, ds.Metadata.Name, in.Schedule)}
			logger.Info("scheduled import skipped: its id is taken", "schedule", in.Schedule, "import", id)
			return scheduledEnd(ctx, in, ScheduledSkipped, res)
		}
		return scheduledFailed(ctx, in, "starting import "+id+" failed: "+rootMessage(err, model.KindImport))
	}
	logger.Info("scheduled import started", "schedule", in.Schedule, "datasource", ds.Metadata.Name, "import", started.ID)
	return scheduledEnd(ctx, in, ScheduledStarted, ScheduledImportResult{Started: started.ID})
}

// idTaken reports a child start refused because its workflow id is taken
// (the server says ChildWorkflowExecutionAlreadyStarted; the test
// environment WorkflowExecutionAlreadyStarted).
func idTaken(err error) bool {
	var dup *temporal.ChildWorkflowExecutionAlreadyStartedError
	var taken *serviceerror.WorkflowExecutionAlreadyStarted
	return errors.As(err, &dup) || errors.As(err, &taken)
}

// validateScheduled checks a run's input as the import would, and that it
// names its schedule, before anything starts.
func validateScheduled(importID string, in ScheduledImportInput) string {
	var problems []string
	if strings.TrimSpace(in.Schedule) == "" {
		problems = append(problems, "schedule: missing: the schedule's action must name its schedule (airlock schedule create does)")
	}
	if msg := validateInput(importID, in.Import); msg != "" {
		problems = append(problems, msg)
	}
	return strings.Join(problems, "; ")
}

// scheduledEnd records how a run ended (AirlockState, AirlockRequest for
// the import it started, the current details) and returns res.
func scheduledEnd(ctx workflow.Context, in ScheduledImportInput, state string, res ScheduledImportResult) (ScheduledImportResult, error) {
	request := KeyRequest.ValueUnset()
	if res.Started != "" {
		request = KeyRequest.ValueSet(res.Started)
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, KeyState.ValueSet(state), request); err != nil {
		return res, err
	}
	workflow.SetCurrentDetails(ctx, ScheduledDetails(in, state, res))
	return res, nil
}

// scheduledFailed ends a run FAILED with reason, without retries: a run
// that cannot start its import says why, and the schedule's next run tries
// again.
func scheduledFailed(ctx workflow.Context, in ScheduledImportInput, reason string) (ScheduledImportResult, error) {
	res := ScheduledImportResult{Reason: reason}
	workflow.GetLogger(ctx).Warn("scheduled import failed", "schedule", in.Schedule, "reason", reason)
	if _, err := scheduledEnd(ctx, in, ScheduledFailed, res); err != nil {
		return res, err
	}
	return res, temporal.NewNonRetryableApplicationError(reason, ErrTypeScheduledImportFailed, nil, res)
}

// ScheduledDetails renders what a scheduled run did as the Markdown the
// Temporal UI shows.
func ScheduledDetails(in ScheduledImportInput, state string, res ScheduledImportResult) string {
	var b strings.Builder
	ds := in.Import.DataSource
	fmt.Fprintf(&b, "**State:** %s\n\n", state)
	switch state {
	case ScheduledStarted:
		fmt.Fprintf(&b, "Schedule `%s` started import `%s` of data source `%s` into workspace `%s`, requested by %s. Follow it with `airlock status %s`.\n", in.Schedule, res.Started, ds.Metadata.Name, in.Import.Workspace, in.Import.Requester, res.Started)
	case ScheduledSkipped:
		fmt.Fprintf(&b, "**Skipped:** %s.\n", res.Reason)
	default:
		fmt.Fprintf(&b, "**Reason:** %s\n", res.Reason)
	}
	return b.String()
}
