package requests

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// CreateSchedule asks for imports of a data source on a timetable: each
// time the schedule fires, ScheduledImportWorkflow starts an import of the
// data source unless one is still running.
type CreateSchedule struct {
	// ID names the schedule; empty means import-<data source>.
	ID string
	// Cron says when it fires, in UTC unless it starts with CRON_TZ=<zone>:
	// 5 fields (minute hour day-of-month month day-of-week), 6 (with a
	// year) or 7 (seconds first); or @hourly, @daily, @weekly, @monthly,
	// @yearly, @every <interval> (e.g. @every 6h).
	Cron string
	// Import is what each run imports, checked exactly as StartImport
	// checks it; Requester is who asked for the schedule and is recorded
	// as the requester of every import it starts, Via the entry point that
	// created the schedule.
	Import StartImport
	// Note says why the schedule exists (shown by ListSchedules until a
	// pause or unpause replaces it).
	Note string
}

// ScheduleSummary is a schedule as ListSchedules and Schedule describe it.
type ScheduleSummary struct {
	ID         string `json:"id"`
	Cron       string `json:"cron"`
	Paused     bool   `json:"paused"`
	Note       string `json:"note,omitempty"`
	DataSource string `json:"datasource"`
	Project    string `json:"project"`
	Workspace  string `json:"workspace"`
	Requester  string `json:"requester"`
	Policy     string `json:"policy,omitempty"`
	Binding    string `json:"binding,omitempty"`
	// CreatedVia is the entry point that created the schedule (cli, api).
	CreatedVia string    `json:"created_via,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	// NextRuns are the next times the schedule fires (up to 10; none
	// while it is paused).
	NextRuns []time.Time `json:"next_runs"`
	// RecentRuns are its latest runs, newest first (up to RecentRunsShown).
	RecentRuns []ScheduledRun `json:"recent_runs"`
	// Counts of its runs in the visibility store (runs of a deleted
	// schedule of the same id count too): those that started an import,
	// those skipped because an import of the data source was running,
	// and those that failed.
	Started int64 `json:"started"`
	Skipped int64 `json:"skipped"`
	Failed  int64 `json:"failed"`
}

// ScheduledRun is one run of a schedule: when it ran, how it ended
// (workflows.ScheduledStarted, ScheduledSkipped, ScheduledFailed; empty
// while it runs) and the import it started.
type ScheduledRun struct {
	Run       string    `json:"run"`
	StartedAt time.Time `json:"started_at"`
	State     string    `json:"state,omitempty"`
	Import    string    `json:"import,omitempty"`
}

// RecentRunsShown is how many recent runs a ScheduleSummary lists.
const RecentRunsShown = 5

// scheduleRunPrefix starts the workflow id of each scheduled run
// (Temporal appends the time it fires).
const scheduleRunPrefix = "scheduled-"

// Memo fields of a schedule.
const (
	memoCron       = "cron"
	memoCreatedVia = "created_via"
)

// DefaultScheduleID is the id of a data source's schedule when none is
// given: import-<data source>, cut to a valid name.
func DefaultScheduleID(dataSource string) string {
	id := string(model.KindImport) + "-" + dataSource
	if len(id) > 63 {
		id = strings.TrimRight(id[:63], "-")
	}
	return id
}

// CreateSchedule creates an import schedule and returns its id. The
// document, workspace and requester are refused as StartImport refuses
// them, a bad cron expression as a *FieldError for "cron", a taken id as
// a *FieldError for "id". Runs that overlap (one still looking for a
// running import when the next fires) are skipped.
func (s *Service) CreateSchedule(ctx context.Context, in CreateSchedule) (string, error) {
	imp := in.Import
	if err := checkStart(imp.DataSource, model.TypeImport, imp.Workspace, imp.Requester); err != nil {
		return "", err
	}
	if imp.Binding != "" && !model.ValidName(imp.Binding) {
		return "", &FieldError{Field: "binding", Value: imp.Binding, Problem: "not a binding name: " + model.NameRule}
	}
	if imp.Policy != "" && !model.ValidName(imp.Policy) {
		return "", &FieldError{Field: "policy", Value: imp.Policy, Problem: "not a policy name: " + model.NameRule}
	}
	ds := imp.DataSource
	id := in.ID
	if id == "" {
		id = DefaultScheduleID(ds.Metadata.Name)
	}
	if err := checkScheduleID(id); err != nil {
		return "", err
	}
	cron := strings.TrimSpace(in.Cron)
	if err := checkCron(cron); err != nil {
		return "", err
	}
	if err := checkNote(in.Note); err != nil {
		return "", err
	}
	attrs := func(kind string) temporal.SearchAttributes {
		return temporal.NewSearchAttributes(
			workflows.KeyKind.ValueSet(kind),
			workflows.KeySchedule.ValueSet(id),
			workflows.KeyProject.ValueSet(ds.Spec.Project.ID),
			workflows.KeyDataSource.ValueSet(ds.Metadata.Name),
			workflows.KeyWorkspace.ValueSet(imp.Workspace),
			workflows.KeyRequester.ValueSet(imp.Requester),
		)
	}
	_, err := s.Client.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   id,
		Spec: client.ScheduleSpec{CronExpressions: []string{cron}},
		Action: &client.ScheduleWorkflowAction{
			ID:       scheduleRunPrefix + id,
			Workflow: workflows.ScheduledImportWorkflowName,
			Args: []any{workflows.ScheduledImportInput{Schedule: id, Import: workflows.ImportInput{
				DataSource: ds, Workspace: imp.Workspace, Requester: imp.Requester,
				Policy: imp.Policy, Binding: imp.Binding, Via: workflows.ViaSchedule,
			}}},
			TaskQueue:             s.taskQueue(),
			TypedSearchAttributes: attrs(workflows.KindScheduledImport),
			StaticSummary:         fmt.Sprintf("Scheduled import of %s into workspace %s (project %s), schedule %s, for %s", ds.Metadata.Name, imp.Workspace, ds.Spec.Project.ID, id, imp.Requester),
			StaticDetails:         importDetails(ds, imp.Workspace, imp.Requester, imp.Policy),
		},
		// A run only looks and starts: a run still doing so when the next
		// fires is skipped. The imports themselves are never stacked: each
		// run skips while one of the data source runs.
		Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    in.Note,
		Memo:    map[string]any{memoCron: cron, memoCreatedVia: imp.Via},
		// The schedule itself is found by the same attributes as its runs.
		TypedSearchAttributes: attrs(workflows.KindScheduledImport),
	})
	if err != nil {
		if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			return "", &FieldError{Field: "id", Value: id, Problem: "a schedule with this id exists: give another id, or delete that schedule first"}
		}
		var invalid *serviceerror.InvalidArgument
		if errors.As(err, &invalid) && strings.Contains(strings.ToLower(invalid.Message), "spec") {
			return "", &FieldError{Field: "cron", Value: cron, Problem: "not a schedule Temporal accepts (" + invalid.Message + "): give 5 fields (minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\" for 02:00 UTC daily), or @daily, @every 6h"}
		}
		return "", fmt.Errorf("creating schedule %s: %w%s", id, err, searchAttrHint(err))
	}
	return id, nil
}

// checkScheduleID refuses a schedule id Airlock would not make.
func checkScheduleID(id string) error {
	switch {
	case strings.TrimSpace(id) == "":
		return &FieldError{Field: "id", Problem: "missing: give the schedule id (airlock schedule list shows them)"}
	case !model.ValidName(id):
		return &FieldError{Field: "id", Value: id, Problem: "not a schedule id: " + model.NameRule}
	}
	return nil
}

// checkCron refuses what cannot be a cron expression before the server
// parses it: empty, a control character, or a field count other than 5 to
// 7 (after an optional CRON_TZ= or TZ= zone and before a # comment).
func checkCron(cron string) error {
	how := "give 5 fields (minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\" for 02:00 UTC daily), 6 (with a year) or 7 (seconds first), or @hourly, @daily, @weekly, @monthly, @yearly, @every 6h; prefix CRON_TZ=Europe/London for another time zone than UTC"
	if cron == "" {
		return &FieldError{Field: "cron", Problem: "missing: " + how}
	}
	for _, r := range cron {
		if unicode.IsControl(r) {
			return &FieldError{Field: "cron", Value: cron, Problem: "control characters are not allowed: " + how}
		}
	}
	fields := strings.Fields(cron)
	if len(fields) > 0 && (strings.HasPrefix(fields[0], "CRON_TZ=") || strings.HasPrefix(fields[0], "TZ=")) {
		fields = fields[1:]
	}
	for i, f := range fields {
		if strings.HasPrefix(f, "#") {
			fields = fields[:i]
			break
		}
	}
	if len(fields) > 0 && strings.HasPrefix(fields[0], "@") {
		return nil
	}
	if len(fields) < 5 || len(fields) > 7 {
		return &FieldError{Field: "cron", Value: cron, Problem: fmt.Sprintf("%d fields: %s", len(fields), how)}
	}
	return nil
}

// checkNote refuses a note that is too long to be one.
func checkNote(note string) error {
	if len(note) > 1000 {
		return &FieldError{Field: "note", Value: strings.ToValidUTF8(note[:32], "") + "...", Problem: "longer than 1000 bytes: say why in a sentence"}
	}
	return nil
}

// Schedule describes one import schedule. A missing schedule, or one that
// is not an Airlock import schedule, is ErrNotFound.
func (s *Service) Schedule(ctx context.Context, id string) (ScheduleSummary, error) {
	if err := checkScheduleID(id); err != nil {
		return ScheduleSummary{}, err
	}
	desc, err := s.describeSchedule(ctx, id)
	if err != nil {
		return ScheduleSummary{}, err
	}
	return s.summarise(ctx, id, desc)
}

// ListSchedules describes every import schedule, sorted by id. The list
// of schedules trails a creation or deletion by a moment (it is read from
// the visibility store); each schedule's state is current.
func (s *Service) ListSchedules(ctx context.Context) ([]ScheduleSummary, error) {
	it, err := s.Client.ScheduleClient().List(ctx, client.ScheduleListOptions{PageSize: 100})
	if err != nil {
		return nil, fmt.Errorf("listing schedules: %w", err)
	}
	var ids []string
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("listing schedules: %w", err)
		}
		if e.WorkflowType.Name == workflows.ScheduledImportWorkflowName && model.ValidName(e.ID) {
			ids = append(ids, e.ID)
		}
	}
	sort.Strings(ids)
	out := make([]ScheduleSummary, 0, len(ids))
	for _, id := range ids {
		sum, err := s.Schedule(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since it was listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sum)
	}
	return out, nil
}

// PauseSchedule stops a schedule from firing until UnpauseSchedule; its
// note becomes "paused by <by>: <note>". Imports it started go on. A
// paused schedule refuses (*RefusedError).
func (s *Service) PauseSchedule(ctx context.Context, id, by, note string) error {
	return s.setPaused(ctx, id, by, note, true)
}

// UnpauseSchedule lets a paused schedule fire again; its note becomes
// "unpaused by <by>: <note>". A schedule that is not paused refuses
// (*RefusedError).
func (s *Service) UnpauseSchedule(ctx context.Context, id, by, note string) error {
	return s.setPaused(ctx, id, by, note, false)
}

func (s *Service) setPaused(ctx context.Context, id, by, note string, pause bool) error {
	verb := map[bool]string{true: "paused", false: "unpaused"}[pause]
	if err := checkScheduleID(id); err != nil {
		return err
	}
	if strings.TrimSpace(by) == "" {
		return &FieldError{Field: "requester", Problem: "missing: say who " + strings.TrimSuffix(verb, "d") + "s the schedule"}
	}
	if err := checkNote(note); err != nil {
		return err
	}
	desc, err := s.describeSchedule(ctx, id)
	if err != nil {
		return err
	}
	if st := desc.Schedule.State; st != nil && st.Paused == pause {
		state := "not paused"
		if st.Paused {
			state = "already paused"
			if st.Note != "" {
				state += " (" + st.Note + ")"
			}
		}
		return &RefusedError{Reason: fmt.Sprintf("schedule %s is %s", id, state)}
	}
	full := verb + " by " + by
	if strings.TrimSpace(note) != "" {
		full += ": " + strings.TrimSpace(note)
	}
	h := s.Client.ScheduleClient().GetHandle(ctx, id)
	if pause {
		err = h.Pause(ctx, client.SchedulePauseOptions{Note: full})
	} else {
		err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: full})
	}
	if err != nil {
		if isNotFound(err) {
			return ErrNotFound
		}
		return fmt.Errorf("%s schedule %s: %w", map[bool]string{true: "pausing", false: "unpausing"}[pause], id, err)
	}
	return nil
}

// DeleteSchedule deletes an import schedule: it fires no more. The imports
// it started go on, and its runs stay in the visibility store.
func (s *Service) DeleteSchedule(ctx context.Context, id string) error {
	if err := checkScheduleID(id); err != nil {
		return err
	}
	if _, err := s.describeSchedule(ctx, id); err != nil {
		return err
	}
	if err := s.Client.ScheduleClient().GetHandle(ctx, id).Delete(ctx); err != nil {
		if isNotFound(err) {
			return ErrNotFound
		}
		return fmt.Errorf("deleting schedule %s: %w", id, err)
	}
	return nil
}

// describeSchedule reads an Airlock import schedule; anything else
// (missing, or another application's schedule) is ErrNotFound.
func (s *Service) describeSchedule(ctx context.Context, id string) (*client.ScheduleDescription, error) {
	desc, err := s.Client.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("describing schedule %s: %w", id, err)
	}
	action, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !ok || action.Workflow != workflows.ScheduledImportWorkflowName {
		return nil, ErrNotFound
	}
	return desc, nil
}

// summarise turns a description into a summary, with the schedule's runs
// from the visibility store.
func (s *Service) summarise(ctx context.Context, id string, desc *client.ScheduleDescription) (ScheduleSummary, error) {
	sum := ScheduleSummary{
		ID: id, CreatedAt: desc.Info.CreatedAt,
		NextRuns: []time.Time{}, RecentRuns: []ScheduledRun{},
	}
	if st := desc.Schedule.State; st != nil {
		sum.Paused, sum.Note = st.Paused, st.Note
	}
	if !sum.Paused {
		sum.NextRuns = append(sum.NextRuns, desc.Info.NextActionTimes...)
	}
	fields := desc.Memo.GetFields()
	sum.Cron = payloadString(fields[memoCron])
	sum.CreatedVia = payloadString(fields[memoCreatedVia])
	action := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	if len(action.Args) > 0 {
		var in workflows.ScheduledImportInput
		if p, ok := action.Args[0].(*commonpb.Payload); ok && converter.GetDefaultDataConverter().FromPayload(p, &in) == nil {
			sum.DataSource, sum.Project = in.Import.DataSource.Metadata.Name, in.Import.DataSource.Spec.Project.ID
			sum.Workspace, sum.Requester = in.Import.Workspace, in.Import.Requester
			sum.Policy, sum.Binding = in.Import.Policy, in.Import.Binding
		}
	}
	runs := fmt.Sprintf("WorkflowType = '%s' AND %s = '%s'", workflows.ScheduledImportWorkflowName, workflows.SearchAttrSchedule, id)
	resp, err := s.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: runs, PageSize: RecentRunsShown})
	if err != nil {
		return sum, fmt.Errorf("listing the runs of schedule %s: %w%s", id, err, searchAttrHint(err))
	}
	for _, e := range resp.Executions {
		f := e.GetSearchAttributes().GetIndexedFields()
		sum.RecentRuns = append(sum.RecentRuns, ScheduledRun{
			Run: e.GetExecution().GetWorkflowId(), StartedAt: e.GetStartTime().AsTime(),
			State:  searchAttr(f, workflows.SearchAttrState),
			Import: searchAttr(f, workflows.SearchAttrRequest),
		})
	}
	for _, c := range []struct {
		state string
		n     *int64
	}{{workflows.ScheduledStarted, &sum.Started}, {workflows.ScheduledSkipped, &sum.Skipped}, {workflows.ScheduledFailed, &sum.Failed}} {
		q := fmt.Sprintf("%s AND %s = '%s'", runs, workflows.SearchAttrState, c.state)
		resp, err := s.Client.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: q})
		if err != nil {
			return sum, fmt.Errorf("counting the runs of schedule %s: %w%s", id, err, searchAttrHint(err))
		}
		*c.n = resp.GetCount()
	}
	return sum, nil
}

// payloadString decodes a string payload ("" when absent).
func payloadString(p *commonpb.Payload) string {
	var s string
	if p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
	}
	return s
}
