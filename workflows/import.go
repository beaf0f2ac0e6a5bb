package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// ImportInput starts an import. It carries the data source document (secret
// key names only, never values) and who asked.
type ImportInput struct {
	DataSource model.DataSource `json:"datasource"`
	Workspace  string           `json:"workspace"`
	Requester  string           `json:"requester"`
	// Policy names the approval policy to use; empty means the project's default.
	Policy string `json:"policy,omitempty"`
	// Binding names the AnalyticsWorkspaceDataBinding recorded at release.
	Binding string `json:"binding"`
	// Via names the entry point that started the import (cli, api).
	Via string `json:"via,omitempty"`
	// Parallelism bounds how many objects are extracted at once (default 4).
	Parallelism int `json:"parallelism,omitempty"`
}

// ImportResult is how an import ended.
type ImportResult struct {
	State          model.State `json:"state"`
	Location       string      `json:"location,omitempty"`
	ManifestDigest string      `json:"manifest_digest,omitempty"`
	Files          int         `json:"files"`
	Bytes          int64       `json:"bytes"`
	Error          string      `json:"error,omitempty"`
}

// DecisionResult answers an accepted decide Update.
type DecisionResult struct {
	Stage      string      `json:"stage"`
	StageState string      `json:"stage_state"`
	Approvals  int         `json:"approvals"`
	Required   int         `json:"required"`
	State      model.State `json:"state"`
}

// CancelResult answers an accepted cancel Update.
type CancelResult struct {
	State model.State `json:"state"`
}

// DefaultParallelism bounds concurrent object extractions.
const DefaultParallelism = 4

// ErrTypeImportFailed marks an import that ended FAILED.
const ErrTypeImportFailed = "ImportFailed"

// Activity timeouts. A copy heartbeats every few seconds, so a worker that
// dies is noticed within ExtractHeartbeatTimeout and its copy resumes on
// another worker from the last checkpoint.
const (
	ExtractHeartbeatTimeout = 15 * time.Second
	ExtractStartToClose     = 24 * time.Hour
)

var a *activities.Activities // method values name the activities; never called here

type importRun struct {
	in          ImportInput
	status      model.RequestStatus
	policy      model.Policy
	dir         model.Directory
	extractions []activities.Extraction
	cancelReq   *model.CancelRequest
	stopExtract workflow.CancelFunc
}

// ImportWorkflow moves one data source through the airlock:
// EXTRACTING -> AWAITING_APPROVAL -> RELEASING -> COMPLETED, or REJECTED,
// FAILED, CANCELLED, EXPIRED. See docs/architecture.md.
func ImportWorkflow(ctx workflow.Context, in ImportInput) (ImportResult, error) {
	info := workflow.GetInfo(ctx)
	r := &importRun{in: in}
	spec := in.DataSource.Spec
	r.status = model.RequestStatus{
		ID: info.WorkflowExecution.ID, Kind: model.KindImport, State: model.StateExtracting,
		DataSource: in.DataSource.Metadata.Name, DisplayName: spec.DisplayName, Project: spec.Project.ID,
		Workspace: in.Workspace, Requester: in.Requester, Via: in.Via, Stages: []model.StageStatus{}, Files: []model.FileRecord{},
		CreatedAt: workflow.Now(ctx),
	}
	r.status.UpdatedAt = r.status.CreatedAt
	if err := r.registerHandlers(ctx); err != nil {
		return ImportResult{}, err
	}
	if err := r.transition(ctx, model.StateExtracting); err != nil {
		return ImportResult{}, err
	}
	if msg := validateInput(r.status.ID, in); msg != "" {
		return r.finish(ctx, model.StateFailed, msg)
	}

	// The policy and directory snapshot govern this request from now on.
	var pol activities.ResolvePolicyResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, shortOptions()), a.ResolvePolicy,
		activities.ResolvePolicyInput{Project: spec.Project.ID, Kind: model.KindImport, Requested: in.Policy}).Get(ctx, &pol); err != nil {
		return r.ended(ctx, err, "choosing the approval policy")
	}
	r.policy, r.dir = pol.Policy, pol.Directory
	r.status.Policy = pol.Policy.Name + "@" + pol.Policy.Version
	r.status.Stages = model.NewStages(pol.Policy)
	r.refreshDetails(ctx)

	if err := r.extract(ctx); err != nil {
		return r.ended(ctx, err, "extracting")
	}
	if r.cancelReq != nil {
		return r.finish(ctx, model.StateCancelled, "")
	}

	// Approval gates, in order.
	r.status.State = model.StateAwaitingApproval
	for i := range r.status.Stages {
		st := &r.status.Stages[i]
		def := r.policy.Stages[i]
		now := workflow.Now(ctx)
		st.State, st.OpenedAt = model.StageWaiting, &now
		if def.Deadline > 0 {
			dl := now.Add(time.Duration(def.Deadline))
			st.DeadlineAt = &dl
		}
		if err := r.transition(ctx, model.StateAwaitingApproval); err != nil {
			return ImportResult{}, err
		}
		settled := func() bool { return st.State != model.StageWaiting || r.cancelReq != nil }
		if def.Deadline > 0 {
			ok, err := workflow.AwaitWithTimeout(ctx, time.Duration(def.Deadline), settled)
			if err != nil {
				return r.ended(ctx, err, "awaiting approval")
			}
			if !ok {
				st.State = model.StageExpired
				return r.finish(ctx, model.StateExpired, fmt.Sprintf("stage %s (role %s) was not decided within its deadline of %s; start a new import to try again", st.Name, st.Role, def.Deadline))
			}
		} else if err := workflow.Await(ctx, settled); err != nil {
			return r.ended(ctx, err, "awaiting approval")
		}
		switch {
		case r.cancelReq != nil:
			return r.finish(ctx, model.StateCancelled, "")
		case st.State == model.StageRejected:
			last := st.Decisions[len(st.Decisions)-1]
			return r.finish(ctx, model.StateRejected, fmt.Sprintf("rejected at stage %s by %s: %s", st.Name, last.By, last.Comment))
		}
	}

	// Release exactly what was approved.
	if err := r.transition(ctx, model.StateReleasing); err != nil {
		return ImportResult{}, err
	}
	var rel activities.ReleaseResult
	relCtx := workflow.WithActivityOptions(ctx, copyOptions())
	if err := workflow.ExecuteActivity(relCtx, a.Release, activities.ReleaseInput{Crate: r.crate(true)}).Get(ctx, &rel); err != nil {
		r.deleteArea(ctx, activities.ZoneWorkspace, activities.WorkspacePrefix(in.Workspace, r.status.DataSource, r.status.ID))
		return r.ended(ctx, err, "releasing")
	}
	r.status.Location = rel.Location
	return r.finish(ctx, model.StateCompleted, "")
}

// validateInput re-checks the document inside the workflow, so a run started
// by hand (from the Temporal UI, say) obeys the same rules as the CLI.
func validateInput(id string, in ImportInput) string {
	var problems []string
	// The request id names its staging and workspace folders.
	if _, err := model.CleanRelPath(id); err != nil || strings.Contains(id, "/") {
		problems = append(problems, fmt.Sprintf("workflow id %q cannot name a request's folder: use letters, digits and '-' (airlock import makes one)", id))
	}
	if errs := in.DataSource.Validate(); len(errs) > 0 {
		problems = append(problems, errs.Error())
	}
	if in.DataSource.Spec.Type != model.TypeImport {
		problems = append(problems, fmt.Sprintf("spec.type: an import needs a data source of type %s, found %q", model.TypeImport, in.DataSource.Spec.Type))
	}
	if !model.ValidName(in.Workspace) {
		problems = append(problems, fmt.Sprintf("workspace: invalid workspace %q: %s", in.Workspace, model.NameRule))
	}
	if strings.TrimSpace(in.Requester) == "" {
		problems = append(problems, "requester: missing: say who asks for the import (--as)")
	}
	if in.Binding != "" && !model.ValidName(in.Binding) {
		problems = append(problems, fmt.Sprintf("binding: invalid binding name %q: %s", in.Binding, model.NameRule))
	}
	return strings.Join(problems, "; ")
}

func (r *importRun) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (model.RequestStatus, error) {
		return r.status, nil
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecide,
		func(ctx workflow.Context, d model.DecisionRequest) (DecisionResult, error) {
			if d.Via == "" {
				d.Via = "update"
			}
			if err := r.status.CheckDecision(d, r.dir); err != nil {
				return DecisionResult{}, err
			}
			return r.apply(ctx, d), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d model.DecisionRequest) error {
			err := r.status.CheckDecision(d, r.dir)
			if err != nil {
				// A refused Update leaves no history: the worker's log is its record.
				workflow.GetLogger(ctx).Warn("decision update refused", "by", d.By, "stage", d.Stage, "decision", d.Decision, "via", d.Via, "reason", err.Error())
			}
			return err
		}}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateCancel,
		func(ctx workflow.Context, c model.CancelRequest) (CancelResult, error) {
			if err := r.status.CheckCancel(c, r.dir); err != nil {
				return CancelResult{}, err
			}
			if c.Via == "" {
				c.Via = "update"
			}
			r.cancelReq = &c
			r.status.CancelledBy = c.By
			r.status.CancelReason = c.Reason
			if r.stopExtract != nil {
				r.stopExtract()
			}
			if err := workflow.Await(ctx, func() bool { return r.status.State.Terminal() }); err != nil {
				return CancelResult{}, err
			}
			return CancelResult{State: r.status.State}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, c model.CancelRequest) error {
			err := r.status.CheckCancel(c, r.dir)
			if err != nil {
				workflow.GetLogger(ctx).Warn("cancel update refused", "by", c.By, "reason", err.Error())
			}
			return err
		}}); err != nil {
		return err
	}
	signals := workflow.GetSignalChannel(ctx, SignalDecide)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var raw json.RawMessage
			if !signals.Receive(gctx, &raw) {
				return
			}
			r.onSignal(ctx, raw)
		}
	})
	return nil
}

// onSignal applies a decision sent as a Signal. A refused one changes
// nothing but is kept on record with its reason.
func (r *importRun) onSignal(ctx workflow.Context, raw json.RawMessage) {
	var d model.DecisionRequest
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	err := dec.Decode(&d)
	if err != nil {
		err = fmt.Errorf("the signal's payload is not a decision (%v); send JSON like {\"stage\":\"...\",\"by\":\"...\",\"decision\":\"approve\",\"comment\":\"...\",\"manifest_digest\":\"%s\"}", err, r.status.ManifestDigest)
	} else {
		d.Via = "signal"
		err = r.status.CheckDecision(d, r.dir)
	}
	if err != nil {
		r.status.Refused = append(r.status.Refused, model.RefusedDecision{DecisionRequest: d, At: workflow.Now(ctx), Reason: err.Error()})
		workflow.GetLogger(ctx).Warn("decision signal refused", "by", d.By, "stage", d.Stage, "reason", err.Error())
		r.refreshDetails(ctx)
		return
	}
	r.apply(ctx, d)
}

func (r *importRun) apply(ctx workflow.Context, d model.DecisionRequest) DecisionResult {
	r.status.ApplyDecision(d, workflow.Now(ctx))
	r.status.UpdatedAt = workflow.Now(ctx)
	r.refreshDetails(ctx)
	_, i, _ := r.policy.Stage(d.Stage)
	s := r.status.Stages[i]
	return DecisionResult{Stage: s.Name, StageState: s.State, Approvals: s.Approvals(), Required: s.Required, State: r.status.State}
}

// extract plans the import, copies every object in parallel (bounded), and
// writes the staged crate.
func (r *importRun) extract(ctx workflow.Context) error {
	var plan activities.PlanImportResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, planOptions()), a.PlanImport,
		activities.PlanImportInput{DataSource: r.in.DataSource}).Get(ctx, &plan); err != nil {
		return err
	}
	r.status.Progress = model.Progress{ObjectsTotal: len(plan.Objects), FilesTotal: plan.Files, BytesTotal: plan.TotalBytes}
	r.refreshDetails(ctx)

	ectx, stop := workflow.WithCancel(ctx)
	r.stopExtract = stop
	defer func() { r.stopExtract = nil }()
	actx := workflow.WithActivityOptions(ectx, copyOptions())
	bound := r.in.Parallelism
	if bound <= 0 {
		bound = DefaultParallelism
	}
	results := make([]activities.ExtractObjectResult, len(plan.Objects))
	var firstErr error
	sel := workflow.NewSelector(ctx)
	next, inflight := 0, 0
	for next < len(plan.Objects) || inflight > 0 {
		for inflight < bound && next < len(plan.Objects) && firstErr == nil && r.cancelReq == nil {
			i := next
			obj := plan.Objects[i]
			o := r.in.DataSource.Spec.Objects[obj.Object]
			conn, _ := r.in.DataSource.Connection(o.ConnectionName())
			f := workflow.ExecuteActivity(actx, a.ExtractObject, activities.ExtractObjectInput{
				RequestID: r.status.ID, Connection: conn, Object: o, Index: obj.Object, Items: obj.Items,
			})
			next++
			inflight++
			sel.AddFuture(f, func(f workflow.Future) {
				inflight--
				if err := f.Get(ctx, &results[i]); err != nil {
					if firstErr == nil {
						firstErr = err
						stop()
					}
					return
				}
				r.status.Progress.ObjectsDone++
				r.status.Progress.BytesDone += results[i].Bytes
				r.refreshDetails(ctx)
			})
		}
		if inflight == 0 {
			break
		}
		sel.Select(ctx)
	}
	if r.cancelReq != nil {
		return nil
	}
	if firstErr != nil {
		return firstErr
	}
	for _, res := range results {
		r.status.Files = append(r.status.Files, res.Files...)
		r.extractions = append(r.extractions, res.Extraction)
	}
	r.status.ManifestDigest = model.ManifestDigest(r.status.Files)
	now := workflow.Now(ctx)
	r.status.ExtractedAt = &now
	var crate activities.WriteCrateResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, shortOptions()), a.WriteCrate,
		activities.WriteCrateInput{Crate: r.crate(false)}).Get(ctx, &crate); err != nil {
		return err
	}
	r.status.Location = strings.TrimSuffix(crate.URL, "/"+activities.CrateFile)
	return nil
}

func (r *importRun) crate(release bool) activities.CrateInput {
	in := activities.CrateInput{Request: r.status, DataSource: r.in.DataSource, Extractions: r.extractions}
	if release {
		in.Release = &activities.CrateRelease{Workspace: r.in.Workspace, Binding: r.bindingName()}
	}
	return in
}

func (r *importRun) bindingName() string {
	if r.in.Binding != "" {
		return r.in.Binding
	}
	name := "dsb-" + r.status.DataSource
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}

// ended turns an error from an activity or a cancelled context into the
// request's final state.
func (r *importRun) ended(ctx workflow.Context, err error, during string) (ImportResult, error) {
	if temporal.IsCanceledError(err) || errors.Is(ctx.Err(), workflow.ErrCanceled) {
		if r.cancelReq == nil {
			r.status.CancelledBy = "temporal-cancel"
		}
		res, ferr := r.finish(ctx, model.StateCancelled, "")
		if ferr == nil && ctx.Err() != nil {
			ferr = temporal.NewCanceledError()
		}
		return res, ferr
	}
	return r.finish(ctx, model.StateFailed, fmt.Sprintf("%s failed: %s", during, rootMessage(err)))
}

// rootMessage strips Temporal's wrapping ("activity error (type: ...)") so a
// person reads the activity's own explanation.
func rootMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out (" + timeout.TimeoutType().String() + "); the worker may have stopped: check the worker logs and start the import again"
	}
	return err.Error()
}

// finish ends the request in state, cleans the staging area, and returns.
func (r *importRun) finish(ctx workflow.Context, state model.State, reason string) (ImportResult, error) {
	// Cleanup must run even if the workflow itself was cancelled.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	now := workflow.Now(ctx)
	r.status.Error = reason
	r.status.FinishedAt = &now
	for i := range r.status.Stages {
		if r.status.Stages[i].State == model.StageWaiting {
			r.status.Stages[i].State = model.StageClosed
		}
	}
	if err := r.transition(dctx, state); err != nil {
		return ImportResult{}, err
	}
	r.deleteArea(dctx, activities.ZoneStaging, activities.StagingPrefix(r.status.ID))
	if state != model.StateCompleted {
		r.status.Location = ""
	}
	r.refreshDetails(dctx)
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
	res := ImportResult{State: state, Location: r.status.Location, ManifestDigest: r.status.ManifestDigest, Files: len(r.status.Files), Error: reason}
	for _, f := range r.status.Files {
		res.Bytes += f.Size
	}
	if state == model.StateFailed {
		return res, temporal.NewNonRetryableApplicationError(reason, ErrTypeImportFailed, nil, res)
	}
	return res, nil
}

// deleteArea removes a staging or workspace area. Deletion is retried until it
// succeeds: it is never dropped.
func (r *importRun) deleteArea(ctx workflow.Context, zone, prefix string) {
	// Disconnected: a cancelled workflow must still remove what it wrote.
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute},
	}
	var res activities.DeleteAreaResult
	_ = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), a.DeleteArea,
		activities.DeleteAreaInput{Zone: zone, Prefix: prefix}).Get(ctx, &res)
}

// transition records a new state: search attributes, current details.
func (r *importRun) transition(ctx workflow.Context, state model.State) error {
	r.status.State = state
	r.status.UpdatedAt = workflow.Now(ctx)
	awaiting := KeyAwaitingRole.ValueUnset()
	if role := r.status.AwaitingRole(); role != "" {
		awaiting = KeyAwaitingRole.ValueSet(role)
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		KeyKind.ValueSet(string(r.status.Kind)),
		KeyState.ValueSet(string(state)),
		KeyProject.ValueSet(r.status.Project),
		KeyDataSource.ValueSet(r.status.DataSource),
		KeyWorkspace.ValueSet(r.status.Workspace),
		KeyRequester.ValueSet(r.status.Requester),
		awaiting,
	); err != nil {
		return err
	}
	r.refreshDetails(ctx)
	return nil
}

// refreshDetails keeps the run's current details (shown in the Temporal UI)
// saying what the request is waiting for.
func (r *importRun) refreshDetails(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, Details(r.status))
}

// Details renders a request's state as the Markdown the Temporal UI shows.
func Details(s model.RequestStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**State:** %s\n\n", s.State)
	switch s.State {
	case model.StateExtracting:
		fmt.Fprintf(&b, "Copying data source `%s` into quarantine: %d of %d objects done (%s of %s); objects in flight report progress in their ExtractObject activities' heartbeat details.\n\n", s.DataSource, s.Progress.ObjectsDone, s.Progress.ObjectsTotal, model.FormatBytes(s.Progress.BytesDone), model.FormatBytes(s.Progress.BytesTotal))
	case model.StateAwaitingApproval:
		if i := s.CurrentStage(); i >= 0 {
			st := s.Stages[i]
			fmt.Fprintf(&b, "**Waiting on:** stage `%s`: a member of role `%s` (%d of %d approvals)", st.Name, st.Role, st.Approvals(), st.Required)
			if st.DeadlineAt != nil {
				fmt.Fprintf(&b, ", deadline %s", st.DeadlineAt.UTC().Format(time.RFC3339))
			}
			b.WriteString("\n\n")
			fmt.Fprintf(&b, "Decide with `airlock approve %s --stage %s --as USER`, or send the `%s` signal with {\"stage\":\"%s\",\"by\":\"USER\",\"decision\":\"approve\",\"manifest_digest\":\"%s\"}.\n\n", s.ID, st.Name, SignalDecide, st.Name, s.ManifestDigest)
		}
	case model.StateReleasing:
		fmt.Fprintf(&b, "Copying the approved files into workspace `%s`.\n\n", s.Workspace)
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "**Reason:** %s\n\n", s.Error)
	}
	if len(s.Files) > 0 {
		var total int64
		for _, f := range s.Files {
			total += f.Size
		}
		fmt.Fprintf(&b, "**Files:** %d (%s), manifest `%s`\n\n", len(s.Files), model.FormatBytes(total), s.ManifestDigest)
	}
	for _, st := range s.Stages {
		fmt.Fprintf(&b, "- stage `%s` (role `%s`, %d needed): %s", st.Name, st.Role, st.Required, st.State)
		for _, d := range st.Decisions {
			fmt.Fprintf(&b, "; %s by %s at %s", d.Decision, d.By, d.At.UTC().Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	if n := len(s.Refused); n > 0 {
		last := s.Refused[n-1]
		fmt.Fprintf(&b, "\n%d refused decision(s); last: %s\n", n, last.Reason)
	}
	if s.Location != "" {
		fmt.Fprintf(&b, "\n**Location:** %s\n", s.Location)
	}
	return b.String()
}

func shortOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10},
	}
}

func planOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10},
	}
}

func copyOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: ExtractStartToClose,
		HeartbeatTimeout:    ExtractHeartbeatTimeout,
		WaitForCancellation: true,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 2 * time.Minute, MaximumAttempts: 10},
	}
}
