package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// requestResult is how a request ended: ImportResult and UploadResult are
// its names for each kind.
type requestResult struct {
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

var a *activities.Activities // method values name the activities; never called here

// requestRun is what every kind of request shares once its files are in
// staging: its status (the state query's answer), the policy and directory
// snapshot that govern it, the decide and cancel handlers, the approval
// gates, the release, and the way it ends. ImportWorkflow and
// UploadWorkflow each embed one and add how the files arrive.
type requestRun struct {
	status    model.RequestStatus
	policy    model.Policy
	dir       model.Directory
	cancelReq *model.CancelRequest
	// interrupt, while set, stops the step that brings the files in (an
	// extraction, an upload's checks) when a cancel is accepted.
	interrupt workflow.CancelFunc
	// failType is the error type of a run that ends FAILED.
	failType string
	// workspace and binding say where an approved request is released.
	workspace string
	binding   string
	// ds is the data source an import or upload brings in (nil for an
	// egress), for its retention annotation.
	ds *model.DataSource
}

// newRequestRun lays out a request's status as it starts, in state.
func newRequestRun(ctx workflow.Context, kind model.Kind, state model.State, ds model.DataSource, workspace, requester, via, binding, failType string) *requestRun {
	spec := ds.Spec
	r := &requestRun{failType: failType, workspace: workspace, binding: binding, ds: &ds}
	r.status = model.RequestStatus{
		ID: workflow.GetInfo(ctx).WorkflowExecution.ID, Kind: kind, State: state,
		DataSource: ds.Metadata.Name, DisplayName: spec.DisplayName, Project: spec.Project.ID,
		Workspace: workspace, Requester: requester, Via: via, Stages: []model.StageStatus{}, Files: []model.FileRecord{},
		CreatedAt: workflow.Now(ctx),
	}
	r.status.UpdatedAt = r.status.CreatedAt
	return r
}

// validateRequest re-checks, inside the workflow, what every request needs,
// so a run started by hand (from the Temporal UI, say) obeys the same rules
// as the CLI and the API.
func validateRequest(id string, kind model.Kind, wantType string, ds model.DataSource, workspace, requester, binding string) []string {
	var problems []string
	// The request id names its staging and workspace folders.
	if msg := validRequestID(id); msg != "" {
		problems = append(problems, msg)
	}
	if errs := ds.Validate(); len(errs) > 0 {
		problems = append(problems, errs.Error())
	}
	if ds.Spec.Type != wantType {
		problems = append(problems, fmt.Sprintf("spec.type: an %s needs a data source of type %s, found %q", kind, wantType, ds.Spec.Type))
	}
	if !model.ValidName(workspace) {
		problems = append(problems, fmt.Sprintf("workspace: invalid workspace %q: %s", workspace, model.NameRule))
	}
	if strings.TrimSpace(requester) == "" {
		problems = append(problems, fmt.Sprintf("requester: missing: say who asks for the %s (--as)", kind))
	}
	if binding != "" && !model.ValidName(binding) {
		problems = append(problems, fmt.Sprintf("binding: invalid binding name %q: %s", binding, model.NameRule))
	}
	if _, err := model.RetentionFor(model.Policy{}, &ds); err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}

// validRequestID says why id cannot name a request's folders, or "".
func validRequestID(id string) string {
	if _, err := model.CleanRelPath(id); err != nil || strings.Contains(id, "/") {
		return fmt.Sprintf("workflow id %q cannot name a request's folder: use letters, digits and '-' (the CLI and the API make one)", id)
	}
	return ""
}

// registerHandlers serves the state query, the decide and cancel Updates
// and the decide Signal.
func (r *requestRun) registerHandlers(ctx workflow.Context) error {
	if err := r.registerQuery(ctx); err != nil {
		return err
	}
	if err := r.registerDecide(ctx); err != nil {
		return err
	}
	return r.registerCancel(ctx)
}

// registerQuery serves the state query: the request's status as it stands.
func (r *requestRun) registerQuery(ctx workflow.Context) error {
	return workflow.SetQueryHandler(ctx, QueryState, func() (model.RequestStatus, error) {
		return r.status, nil
	})
}

// registerDecide serves the decide Update and Signal of an import's or an
// upload's approval stages.
func (r *requestRun) registerDecide(ctx workflow.Context) error {
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
	onSignals(ctx, SignalDecide, r.onSignal)
	return nil
}

// onSignals hands every Signal named name, undecoded, to handle, in a
// workflow goroutine: the handler decodes it and keeps a refusal on record.
func onSignals(ctx workflow.Context, name string, handle func(workflow.Context, json.RawMessage)) {
	signals := workflow.GetSignalChannel(ctx, name)
	workflow.Go(ctx, func(gctx workflow.Context) {
		for {
			var raw json.RawMessage
			if !signals.Receive(gctx, &raw) {
				return
			}
			handle(ctx, raw)
		}
	})
}

// registerCancel serves the cancel Update.
func (r *requestRun) registerCancel(ctx workflow.Context) error {
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
			if r.interrupt != nil {
				r.interrupt()
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
	return nil
}

// onSignal applies a decision sent as a Signal. A refused one changes
// nothing but is kept on record with its reason. No entry point vouches for
// a Signal's roles, so only the directory's members count.
func (r *requestRun) onSignal(ctx workflow.Context, raw json.RawMessage) {
	var d model.DecisionRequest
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	err := dec.Decode(&d)
	if err != nil {
		err = fmt.Errorf("the signal's payload is not a decision (%v); send JSON like {\"stage\":\"...\",\"by\":\"...\",\"decision\":\"approve\",\"comment\":\"...\",\"manifest_digest\":\"%s\"}", err, r.status.ManifestDigest)
	} else {
		d.Via = "signal"
		d.Roles = nil
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

func (r *requestRun) apply(ctx workflow.Context, d model.DecisionRequest) DecisionResult {
	r.status.ApplyDecision(d, workflow.Now(ctx))
	r.status.UpdatedAt = workflow.Now(ctx)
	r.refreshDetails(ctx)
	_, i, _ := r.policy.Stage(d.Stage)
	s := r.status.Stages[i]
	return DecisionResult{Stage: s.Name, StageState: s.State, Approvals: s.Approvals(), Required: s.Required, State: r.status.State}
}

// resolvePolicy snapshots the policy and directory that govern this
// request from now on, and lays out its stages.
func (r *requestRun) resolvePolicy(ctx workflow.Context, requested string) error {
	var pol activities.ResolvePolicyResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, shortOptions()), a.ResolvePolicy,
		activities.ResolvePolicyInput{Project: r.status.Project, Kind: r.status.Kind, Requested: requested}).Get(ctx, &pol); err != nil {
		return err
	}
	r.policy, r.dir = pol.Policy, pol.Directory
	r.status.Policy = pol.Policy.Name + "@" + pol.Policy.Version
	r.status.Stages = model.NewStages(pol.Policy)
	r.refreshDetails(ctx)
	return nil
}

// awaitApprovals opens the approval gates in order and waits on each. It
// returns ended=false once every stage has approved; otherwise the request
// has ended (rejected, expired, cancelled) and res and err are the run's.
func (r *requestRun) awaitApprovals(ctx workflow.Context) (ended bool, res requestResult, err error) {
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
			return true, requestResult{}, err
		}
		settled := func() bool { return st.State != model.StageWaiting || r.cancelReq != nil }
		if def.Deadline > 0 {
			ok, err := workflow.AwaitWithTimeout(ctx, time.Duration(def.Deadline), settled)
			if err != nil {
				res, err := r.ended(ctx, err, "awaiting approval")
				return true, res, err
			}
			if !ok {
				st.State = model.StageExpired
				res, err := r.finish(ctx, model.StateExpired, fmt.Sprintf("stage %s (role %s) was not decided within its deadline of %s; start a new %s to try again", st.Name, st.Role, def.Deadline, r.status.Kind))
				return true, res, err
			}
		} else if err := workflow.Await(ctx, settled); err != nil {
			res, err := r.ended(ctx, err, "awaiting approval")
			return true, res, err
		}
		switch {
		case r.cancelReq != nil:
			res, err := r.finish(ctx, model.StateCancelled, "")
			return true, res, err
		case st.State == model.StageRejected:
			last := st.Decisions[len(st.Decisions)-1]
			res, err := r.finish(ctx, model.StateRejected, fmt.Sprintf("rejected at stage %s by %s: %s", st.Name, last.By, last.Comment))
			return true, res, err
		}
	}
	return false, requestResult{}, nil
}

// release copies exactly what was approved into the workspace and ends the
// request: COMPLETED, or FAILED with whatever the release copied removed.
// crate describes the request once it is RELEASING.
func (r *requestRun) release(ctx workflow.Context, crate func() activities.CrateInput) (requestResult, error) {
	if err := r.transition(ctx, model.StateReleasing); err != nil {
		return requestResult{}, err
	}
	var rel activities.ReleaseResult
	relCtx := workflow.WithActivityOptions(ctx, copyOptions())
	if err := workflow.ExecuteActivity(relCtx, a.Release, activities.ReleaseInput{Crate: crate()}).Get(ctx, &rel); err != nil {
		r.deleteArea(ctx, activities.ZoneWorkspace, activities.WorkspacePrefix(r.workspace, r.status.DataSource, r.status.ID))
		return r.ended(ctx, err, "releasing")
	}
	r.status.Location = rel.Location
	return r.finish(ctx, model.StateCompleted, "")
}

// crateRelease names the workspace and binding of a release, for the crate.
func (r *requestRun) crateRelease() *activities.CrateRelease {
	return &activities.CrateRelease{Workspace: r.workspace, Binding: r.bindingName()}
}

func (r *requestRun) bindingName() string {
	if r.binding != "" {
		return r.binding
	}
	name := "dsb-" + r.status.DataSource
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	return name
}

// ended turns an error from an activity or a cancelled context into the
// request's final state.
func (r *requestRun) ended(ctx workflow.Context, err error, during string) (requestResult, error) {
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
	return r.finish(ctx, model.StateFailed, fmt.Sprintf("%s failed: %s", during, rootMessage(err, r.status.Kind)))
}

// rootMessage strips Temporal's wrapping ("activity error (type: ...)") so a
// person reads the activity's own explanation.
func rootMessage(err error, kind model.Kind) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out (" + timeout.TimeoutType().String() + "); the worker may have stopped: check the worker logs and start the " + string(kind) + " again"
	}
	return err.Error()
}

// finish ends the request in state and returns. Its staging area is
// removed at once, or, when the request did not succeed and its policy
// keeps staging for a grace period, by a RetentionWorkflow when that ends.
// A completed import's or upload's workspace copy is deleted by a
// RetentionWorkflow when its retention (policy or data source) ends.
func (r *requestRun) finish(ctx workflow.Context, state model.State, reason string) (requestResult, error) {
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
		return requestResult{}, err
	}
	stagingPrefix := activities.StagingPrefix(r.status.ID)
	if grace := time.Duration(r.policy.Retention.StagingGrace); grace > 0 && state != model.StateCompleted {
		r.scheduleDeletion(dctx, model.ScheduledDeletion{Zone: activities.ZoneStaging, Prefix: stagingPrefix, Location: r.status.Location,
			DueAt: now.Add(grace), Reason: fmt.Sprintf("the request ended %s; its policy keeps staging for %s (spec.retention.stagingGrace)", state, grace)})
	} else {
		r.deleteArea(dctx, activities.ZoneStaging, stagingPrefix)
	}
	if state == model.StateCompleted {
		if keep, _ := model.RetentionFor(r.policy, r.ds); keep > 0 {
			r.scheduleDeletion(dctx, model.ScheduledDeletion{Zone: activities.ZoneWorkspace,
				Prefix: activities.WorkspacePrefix(r.workspace, r.status.DataSource, r.status.ID), Location: r.status.Location,
				DueAt: now.Add(keep), Reason: fmt.Sprintf("released data is kept for %s (%s)", keep, r.retentionSource())})
		}
	}
	if state != model.StateCompleted {
		r.status.Location = ""
	}
	return r.close(dctx, state, reason)
}

// retentionSource says where a released retention period came from.
func (r *requestRun) retentionSource() string {
	if r.ds != nil {
		if _, ok := r.ds.Metadata.Annotations[model.RetentionAnnotation]; ok {
			return "the data source's " + model.RetentionAnnotation + " annotation"
		}
	}
	return "policy " + r.status.Policy + " spec.retention.released"
}

// close waits for the handlers still running and returns the run's result.
func (r *requestRun) close(dctx workflow.Context, state model.State, reason string) (requestResult, error) {
	r.refreshDetails(dctx)
	_ = workflow.Await(dctx, func() bool { return workflow.AllHandlersFinished(dctx) })
	res := requestResult{State: state, Location: r.status.Location, ManifestDigest: r.status.ManifestDigest, Files: len(r.status.Files), Error: reason}
	for _, f := range r.status.Files {
		res.Bytes += f.Size
	}
	if state == model.StateFailed {
		return res, temporal.NewNonRetryableApplicationError(reason, r.failType, nil, res)
	}
	return res, nil
}

// scheduleDeletion starts the RetentionWorkflow that deletes d when it is
// due, and records it. The RetentionWorkflow outlives the request (its
// parent close policy is ABANDON); it is started before this returns, so a
// request never ends with a deletion it only meant to schedule.
func (r *requestRun) scheduleDeletion(ctx workflow.Context, d model.ScheduledDeletion) {
	zone := d.Zone
	if d.Destination != "" {
		zone = d.Zone + "-" + d.Destination
	}
	d.WorkflowID = r.status.ID + "-delete-" + zone
	in := RetentionInput{Request: r.status.ID, Kind: r.status.Kind, Project: r.status.Project, DataSource: r.status.DataSource,
		Workspace: r.status.Workspace, Deletion: d}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            d.WorkflowID,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		StaticSummary:         retentionSummary(in),
		TypedSearchAttributes: retentionAttributes(in, RetentionScheduled),
	})
	child := workflow.ExecuteChildWorkflow(cctx, RetentionWorkflowName, in)
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		// It could not be started (an id in use): delete now rather than
		// keep data past its time with nothing to delete it.
		workflow.GetLogger(ctx).Error("could not schedule a deletion; deleting now", "zone", d.Zone, "prefix", d.Prefix, "error", err.Error())
		r.deleteArea(ctx, d.Zone, d.Prefix)
		return
	}
	r.status.Deletions = append(r.status.Deletions, d)
	r.refreshDetails(ctx)
}

// deleteArea removes a staging or workspace area. Deletion is retried until it
// succeeds: it is never dropped.
func (r *requestRun) deleteArea(ctx workflow.Context, zone, prefix string) {
	r.deleteAreaResult(ctx, activities.DeleteAreaInput{Zone: zone, Prefix: prefix})
}

// deleteAreaResult removes an area, retrying until it succeeds, and says
// what it removed. It runs disconnected: a cancelled workflow must still
// remove what it wrote.
func (r *requestRun) deleteAreaResult(ctx workflow.Context, in activities.DeleteAreaInput) activities.DeleteAreaResult {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute},
	}
	var res activities.DeleteAreaResult
	_ = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), a.DeleteArea, in).Get(ctx, &res)
	return res
}

// transition records a new state: search attributes, current details.
func (r *requestRun) transition(ctx workflow.Context, state model.State) error {
	r.status.State = state
	r.status.UpdatedAt = workflow.Now(ctx)
	awaiting := KeyAwaitingRole.ValueUnset()
	if role := r.status.AwaitingRole(); role != "" {
		awaiting = KeyAwaitingRole.ValueSet(role)
	}
	dataSource := KeyDataSource.ValueUnset()
	if r.status.DataSource != "" {
		dataSource = KeyDataSource.ValueSet(r.status.DataSource)
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		KeyKind.ValueSet(string(r.status.Kind)),
		KeyState.ValueSet(string(state)),
		KeyProject.ValueSet(r.status.Project),
		dataSource,
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
func (r *requestRun) refreshDetails(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, Details(r.status))
}

// Details renders a request's state as the Markdown the Temporal UI shows.
func Details(s model.RequestStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**State:** %s\n\n", s.State)
	switch s.State {
	case model.StateExtracting:
		fmt.Fprintf(&b, "Copying data source `%s` into quarantine: %d of %d objects done (%s of %s); objects in flight report progress in their ExtractObject activities' heartbeat details.\n\n", s.DataSource, s.Progress.ObjectsDone, s.Progress.ObjectsTotal, model.FormatBytes(s.Progress.BytesDone), model.FormatBytes(s.Progress.BytesTotal))
	case model.StateAwaitingUpload:
		fmt.Fprintf(&b, "**Waiting on:** %s to upload the files (resumable tus uploads, through the API) and confirm them with the `%s` Update, e.g. {\"by\":\"%s\",\"files\":[{\"path\":\"data/visits.csv\",\"size\":1234}]}", s.Requester, UpdateConfirmUpload, s.Requester)
		if s.ExpiresAt != nil {
			fmt.Fprintf(&b, ", by %s: unconfirmed, the request then expires and its uploaded files are removed", s.ExpiresAt.UTC().Format(time.RFC3339))
		}
		b.WriteString(".\n\n")
	case model.StateChecking:
		b.WriteString("Checking the uploaded files: that they are the ones confirmed, at their sizes, within the upload limits, and fingerprinting each with SHA-256; the CheckUpload activity's heartbeat details show its progress.\n\n")
	case model.StateAwaitingApproval:
		if i := s.CurrentStage(); i >= 0 && s.Egress != nil {
			st := s.Stages[i]
			fmt.Fprintf(&b, "**Waiting on:** stage `%s`: output checkers of role `%s` (%d of %d reviews in turn %d; reviews are revealed when all are in)", st.Name, st.Role, s.Egress.ReviewsIn, s.Egress.ReviewsNeeded, s.Egress.Turn)
			if st.DeadlineAt != nil {
				fmt.Fprintf(&b, ", deadline %s", st.DeadlineAt.UTC().Format(time.RFC3339))
			}
			b.WriteString("\n\n")
			fmt.Fprintf(&b, "Review with `airlock egress review %s --as USER --approve PATH --request-changes PATH=WHY --reject PATH=WHY`, or send the `%s` signal with {\"stage\":\"%s\",\"by\":\"USER\",\"turn\":%d,\"manifest_digest\":\"%s\",\"files\":[{\"path\":\"...\",\"verdict\":\"approve\"}]} (a verdict for each of: %s).\n\n",
				s.ID, SignalReview, st.Name, s.Egress.Turn, s.ManifestDigest, strings.Join(s.Egress.OpenFiles(), ", "))
		} else if i >= 0 {
			st := s.Stages[i]
			fmt.Fprintf(&b, "**Waiting on:** stage `%s`: a member of role `%s` (%d of %d approvals)", st.Name, st.Role, st.Approvals(), st.Required)
			if st.DeadlineAt != nil {
				fmt.Fprintf(&b, ", deadline %s", st.DeadlineAt.UTC().Format(time.RFC3339))
			}
			b.WriteString("\n\n")
			fmt.Fprintf(&b, "Decide with `airlock approve %s --stage %s --as USER`, or send the `%s` signal with {\"stage\":\"%s\",\"by\":\"USER\",\"decision\":\"approve\",\"manifest_digest\":\"%s\"}.\n\n", s.ID, st.Name, SignalDecide, st.Name, s.ManifestDigest)
		}
	case model.StateReleasing:
		if s.Egress != nil {
			fmt.Fprintf(&b, "Copying the approved files to destination `%s`, checking each digest again, then writing the signed release manifest.\n\n", s.Egress.Destination)
		} else {
			fmt.Fprintf(&b, "Copying the approved files into workspace `%s`.\n\n", s.Workspace)
		}
	case model.StateReturned:
		fmt.Fprintf(&b, "**Waiting on:** %s to change the files in workspace `%s` and resubmit (`airlock egress resubmit %s --as %s`), or withdraw the request.\n\n", s.Requester, s.Workspace, s.ID, s.Requester)
	case model.StateReleased:
		if s.Egress != nil && s.Egress.Release != nil {
			rel := s.Egress.Release
			fmt.Fprintf(&b, "Released %d file(s) (%s) to destination `%s` at %s; signed manifest %s (key %s). Revocable with `airlock revoke %s --as USER --reason WHY`.\n\n",
				rel.Files, model.FormatBytes(rel.Bytes), s.Egress.Destination, rel.At.UTC().Format(time.RFC3339), rel.ManifestURL, rel.KeyID, s.ID)
		}
	case model.StateRevoked:
		if s.Egress != nil && s.Egress.Revocation != nil {
			v := s.Egress.Revocation
			fmt.Fprintf(&b, "Revoked by %s at %s: %s. Removed %d released file(s).", v.By, v.At.UTC().Format(time.RFC3339), v.Reason, v.Removed)
			if v.Note != "" {
				fmt.Fprintf(&b, " %s", v.Note)
			}
			b.WriteString("\n\n")
		}
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
	for _, c := range s.Checks {
		outcome := "passed"
		if !c.Passed {
			outcome = "FAILED"
		}
		fmt.Fprintf(&b, "- check `%s`: %s: %s\n", c.Name, outcome, c.Message)
	}
	if len(s.Checks) > 0 {
		b.WriteString("\n")
	}
	if e := s.Egress; e != nil {
		fmt.Fprintf(&b, "**Destination:** `%s`; **turn** %d; **justification:** %s\n\n", e.Destination, e.Turn, e.Justification)
		for _, f := range e.Files {
			fmt.Fprintf(&b, "- `%s` (%s, turn %d): %s", f.Path, model.FormatBytes(f.Size), f.Turn, f.Verdict)
			if len(f.Flags) > 0 {
				fmt.Fprintf(&b, "; flagged by %s", strings.Join(f.Flags, ", "))
			}
			b.WriteString("\n")
		}
		if len(e.Files) > 0 {
			b.WriteString("\n")
		}
	}
	for _, d := range s.Deletions {
		fmt.Fprintf(&b, "- deletion of %s `%s` due %s (run `%s`)\n", d.Zone, d.Prefix, d.DueAt.UTC().Format(time.RFC3339), d.WorkflowID)
	}
	if len(s.Deletions) > 0 {
		b.WriteString("\n")
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
