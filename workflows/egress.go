package workflows

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// egressRun is an egress: outputs of a workspace on their way to a
// destination.
type egressRun struct {
	*requestRun
	in EgressInput
	e  *model.EgressStatus
	// inRound are the open stage's reviews in the current turn. While the
	// stage is independent they stay here, out of the status, until the
	// stage has all it needs.
	inRound []model.EgressReviewRecord
	// settled counts the rounds settled, so a review's Update can wait for
	// the outcome of the round it completed.
	settled     int
	resubmitted *model.Resubmission
	withdrawal  *model.Withdrawal
	revocation  *model.Revocation
}

// egress outcomes of a turn's checks and reviews.
type turnOutcome int

const (
	turnApproved turnOutcome = iota // every stage settled without changes asked
	turnReturned                    // back to the requester
	turnEnded                       // the request ended (res, err hold how)
)

// EgressWorkflow takes outputs out of a workspace to a destination named in
// the configuration: CHECKING (the files are snapshotted into staging and
// checked automatically) -> AWAITING_APPROVAL (output checkers review each
// file; by default two, independently) -> RELEASING (exactly the approved
// files are copied, digests checked again, with a signed release manifest
// and a crate) -> RELEASED, open for revocation (REVOKED) until its
// retention ends. A blocking check or a checker's request for changes
// sends it RETURNED: the requester replaces files in the workspace and
// resubmits, and a new turn begins in which only the files that changed
// (or had changes asked) are reviewed again. It can also end REJECTED
// (every file rejected), WITHDRAWN (by its requester), CANCELLED, EXPIRED
// (a stage's deadline, or the policy's resubmitWithin) or FAILED.
func EgressWorkflow(ctx workflow.Context, in EgressInput) (EgressResult, error) {
	now := workflow.Now(ctx)
	r := &egressRun{in: in, requestRun: &requestRun{failType: ErrTypeEgressFailed, workspace: in.Request.Workspace}}
	r.e = &model.EgressStatus{Destination: in.Request.Destination, Justification: in.Request.Justification,
		Paths: append([]string(nil), in.Request.Files...), Files: []model.EgressFile{}, Turns: []model.EgressTurn{}, Reviews: []model.EgressReviewRecord{}}
	r.status = model.RequestStatus{
		ID: workflow.GetInfo(ctx).WorkflowExecution.ID, Kind: model.KindEgress, State: model.StateChecking,
		DisplayName: "Egress to " + in.Request.Destination, Project: in.Request.Project, Workspace: in.Request.Workspace,
		Requester: in.Requester, Via: in.Via, Stages: []model.StageStatus{}, Files: []model.FileRecord{},
		CreatedAt: now, UpdatedAt: now, Egress: r.e,
	}
	res, err := r.run(ctx)
	return EgressResult(res), err
}

func (r *egressRun) run(ctx workflow.Context) (requestResult, error) {
	if err := r.registerEgressHandlers(ctx); err != nil {
		return requestResult{}, err
	}
	if err := r.transition(ctx, model.StateChecking); err != nil {
		return requestResult{}, err
	}
	if msg := r.validate(); msg != "" {
		return r.finish(ctx, model.StateFailed, msg)
	}
	if err := r.resolvePolicy(ctx, r.in.Policy); err != nil {
		return r.ended(ctx, err, "choosing the egress policy")
	}
	by, comment := r.status.Requester, ""
	for {
		outcome, res, err := r.turn(ctx, by, comment)
		switch outcome {
		case turnEnded:
			return res, err
		case turnApproved:
			return r.release(ctx)
		}
		// Returned: wait for the requester.
		if ended, res, err := r.awaitResubmission(ctx); ended {
			return res, err
		}
		by, comment = r.resubmitted.By, r.resubmitted.Comment
		if len(r.resubmitted.Files) > 0 {
			r.e.Paths = append([]string(nil), r.resubmitted.Files...)
		}
		r.resubmitted = nil
	}
}

// validate re-checks the input inside the workflow, so a run started by
// hand obeys the same rules as the CLI and the API.
func (r *egressRun) validate() string {
	problems := model.CheckEgressRequest(r.in.Request)
	if msg := validRequestID(r.status.ID); msg != "" {
		problems = append(problems, msg)
	}
	if strings.TrimSpace(r.in.Requester) == "" {
		problems = append(problems, "requester: missing: say who asks for the egress (--as)")
	}
	return strings.Join(problems, "; ")
}

// stopped reports whether the requester withdrew or someone cancelled.
func (r *egressRun) stopped() bool { return r.withdrawal != nil || r.cancelReq != nil }

// endStopped ends a withdrawn or cancelled request.
func (r *egressRun) endStopped(ctx workflow.Context) (requestResult, error) {
	if r.withdrawal != nil {
		return r.finish(ctx, model.StateWithdrawn, "")
	}
	return r.finish(ctx, model.StateCancelled, "")
}

// turn checks and reviews one submission of the files.
func (r *egressRun) turn(ctx workflow.Context, by, comment string) (turnOutcome, requestResult, error) {
	if err := r.transition(ctx, model.StateChecking); err != nil {
		return turnEnded, requestResult{}, err
	}
	blocked, err := r.snapshotAndCheck(ctx, by, comment)
	if r.stopped() {
		res, err := r.endStopped(ctx)
		return turnEnded, res, err
	}
	if err != nil {
		res, err := r.ended(ctx, err, "checking the outputs")
		return turnEnded, res, err
	}
	if blocked {
		return turnReturned, requestResult{}, nil
	}
	return r.review(ctx)
}

// snapshotAndCheck copies the named workspace files into staging (a new
// turn), carries settled verdicts over for unchanged files, and runs the
// policy's automatic checks. It reports whether a check blocked the turn.
func (r *egressRun) snapshotAndCheck(ctx workflow.Context, by, comment string) (bool, error) {
	cctx, stop := workflow.WithCancel(ctx)
	r.interrupt = stop
	defer func() { r.interrupt = nil }()
	var staged activities.StageEgressResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(cctx, copyOptions()), a.StageEgress,
		activities.StageEgressInput{RequestID: r.status.ID, Workspace: r.status.Workspace, Paths: r.e.Paths}).Get(ctx, &staged); err != nil {
		return false, err
	}
	turn := r.e.Turn + 1
	files, changed := r.e.NextTurn(turn, staged.Files)
	if changed == nil {
		changed = []string{}
	}
	r.e.Turn, r.e.Files = turn, files
	r.e.ReviewsIn, r.e.ReviewsNeeded = 0, 0
	r.status.Files = staged.Files
	r.status.ManifestDigest = model.ManifestDigest(staged.Files)
	r.status.Error, r.status.Checks = "", nil
	r.e.Turns = append(r.e.Turns, model.EgressTurn{Turn: turn, By: by, At: workflow.Now(ctx), Comment: comment,
		ManifestDigest: r.status.ManifestDigest, Changed: changed})
	r.refreshDetails(ctx)

	var checked activities.CheckEgressResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(cctx, copyOptions()), a.CheckEgress,
		activities.CheckEgressInput{RequestID: r.status.ID, Files: staged.Files, Checks: r.policy.Checks}).Get(ctx, &checked); err != nil {
		return false, err
	}
	r.status.Checks = checked.Checks
	for _, c := range checked.Checks {
		if c.Passed || c.OnFail != model.OnFailFlag {
			continue
		}
		for _, p := range c.Files {
			if f, ok := r.e.File(p); ok {
				f.Flags = append(f.Flags, c.Name)
			}
		}
	}
	if checked.Blocked {
		var failed []string
		for _, c := range checked.Checks {
			if !c.Passed && c.OnFail == model.OnFailBlock {
				failed = append(failed, fmt.Sprintf("check %s failed: %s", c.Name, c.Message))
			}
		}
		r.status.Error = "blocked by the automatic checks: " + strings.Join(failed, "; ") + "; fix the files in the workspace and resubmit, or withdraw the request"
	}
	r.refreshDetails(ctx)
	return checked.Blocked, nil
}

// review runs the policy's stages over the files open in this turn.
func (r *egressRun) review(ctx workflow.Context) (turnOutcome, requestResult, error) {
	for i := range r.status.Stages {
		st := &r.status.Stages[i]
		st.State, st.OpenedAt, st.DeadlineAt = model.StagePending, nil, nil
	}
	for i := range r.status.Stages {
		if len(r.e.OpenFiles()) == 0 {
			break
		}
		st := &r.status.Stages[i]
		def := r.policy.Stages[i]
		now := workflow.Now(ctx)
		st.State, st.OpenedAt = model.StageWaiting, &now
		if def.Deadline > 0 {
			dl := now.Add(time.Duration(def.Deadline))
			st.DeadlineAt = &dl
		}
		r.inRound = nil
		r.e.ReviewsIn, r.e.ReviewsNeeded = 0, st.Required
		if err := r.transition(ctx, model.StateAwaitingApproval); err != nil {
			return turnEnded, requestResult{}, err
		}
		settled := func() bool { return len(r.inRound) >= st.Required || r.stopped() }
		if def.Deadline > 0 {
			ok, err := workflow.AwaitWithTimeout(ctx, time.Duration(def.Deadline), settled)
			if err != nil {
				res, err := r.ended(ctx, err, "awaiting output checking")
				return turnEnded, res, err
			}
			if !ok {
				st.State = model.StageExpired
				res, err := r.finish(ctx, model.StateExpired, fmt.Sprintf("stage %s (role %s) had %d of %d reviews when its deadline of %s passed; start a new egress to try again", st.Name, st.Role, len(r.inRound), st.Required, def.Deadline))
				return turnEnded, res, err
			}
		} else if err := workflow.Await(ctx, settled); err != nil {
			res, err := r.ended(ctx, err, "awaiting output checking")
			return turnEnded, res, err
		}
		if r.stopped() {
			res, err := r.endStopped(ctx)
			return turnEnded, res, err
		}
		if r.settleStage(ctx, i) {
			return turnReturned, requestResult{}, nil
		}
	}
	if len(r.e.ApprovedFiles()) == 0 {
		var why []string
		for _, rv := range r.e.Reviews {
			for _, f := range rv.Files {
				if f.Verdict == model.VerdictReject {
					why = append(why, fmt.Sprintf("%s rejected %s: %s", rv.By, f.Path, firstNonEmpty(f.Comment, rv.Comment)))
				}
			}
		}
		res, err := r.finish(ctx, model.StateRejected, "every file was rejected: "+strings.Join(why, "; "))
		return turnEnded, res, err
	}
	return turnApproved, requestResult{}, nil
}

// settleStage reveals a stage's reviews and gives each open file the
// stage's verdict. It reports whether a checker asked for changes.
func (r *egressRun) settleStage(ctx workflow.Context, i int) (returned bool) {
	st := &r.status.Stages[i]
	last := i == len(r.status.Stages)-1
	if r.policy.Stages[i].Independent {
		r.e.Reviews = append(r.e.Reviews, r.inRound...)
	}
	var changes []string
	for _, p := range r.e.OpenFiles() {
		f, _ := r.e.File(p)
		switch v := model.CombineVerdicts(r.inRound, p); v {
		case model.VerdictReject:
			f.Verdict = v
		case model.VerdictRequestChanges:
			f.Verdict = v
			changes = append(changes, p)
		case model.VerdictApprove:
			if last {
				f.Verdict = v
			}
		}
	}
	r.settled++
	if len(changes) > 0 {
		st.State = model.StageReturned
		// Files this stage approved still need the later stages: they are
		// reviewed again in the next turn.
		r.status.Error = fmt.Sprintf("changes requested at stage %s for %s: %s; change the files in the workspace (or answer in the resubmission's comment) and resubmit, or withdraw the request",
			st.Name, strings.Join(changes, ", "), r.changeComments(changes))
		r.refreshDetails(ctx)
		return true
	}
	st.State = model.StageApproved
	r.refreshDetails(ctx)
	return false
}

// changeComments gathers what the checkers said about files they want
// changed.
func (r *egressRun) changeComments(paths []string) string {
	var out []string
	for _, rv := range r.inRound {
		for _, f := range rv.Files {
			if f.Verdict == model.VerdictRequestChanges && slices.Contains(paths, f.Path) {
				out = append(out, fmt.Sprintf("%s on %s: %q", rv.By, f.Path, firstNonEmpty(f.Comment, rv.Comment)))
			}
		}
	}
	return strings.Join(out, "; ")
}

// awaitResubmission holds the request RETURNED until its requester
// resubmits, withdraws, someone cancels, or the policy's resubmitWithin
// passes.
func (r *egressRun) awaitResubmission(ctx workflow.Context) (bool, requestResult, error) {
	if err := r.transition(ctx, model.StateReturned); err != nil {
		return true, requestResult{}, err
	}
	ready := func() bool { return r.resubmitted != nil || r.stopped() }
	if within := time.Duration(r.policy.ResubmitWithin); within > 0 {
		ok, err := workflow.AwaitWithTimeout(ctx, within, ready)
		if err != nil {
			res, err := r.ended(ctx, err, "awaiting the resubmission")
			return true, res, err
		}
		if !ok {
			res, err := r.finish(ctx, model.StateExpired, fmt.Sprintf("the request was not resubmitted within %s of being returned (policy %s spec.resubmitWithin); start a new egress", within, r.status.Policy))
			return true, res, err
		}
	} else if err := workflow.Await(ctx, ready); err != nil {
		res, err := r.ended(ctx, err, "awaiting the resubmission")
		return true, res, err
	}
	if r.stopped() {
		res, err := r.endStopped(ctx)
		return true, res, err
	}
	return false, requestResult{}, nil
}

// release copies the approved files to the destination, then holds the
// request RELEASED, open for revocation, until its retention ends.
func (r *egressRun) release(ctx workflow.Context) (requestResult, error) {
	if err := r.transition(ctx, model.StateReleasing); err != nil {
		return requestResult{}, err
	}
	var rel activities.ReleaseEgressResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, copyOptions()), a.ReleaseEgress,
		activities.ReleaseEgressInput{Request: r.status}).Get(ctx, &rel); err != nil {
		r.deleteDestination(ctx)
		return r.ended(ctx, err, "releasing")
	}
	r.e.Release = &rel.Release
	r.status.Location = rel.Release.Location
	released := r.e.ApprovedFiles()
	now := workflow.Now(ctx)
	r.status.FinishedAt = &now
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err := r.transition(dctx, model.StateReleased); err != nil {
		return requestResult{}, err
	}
	r.deleteArea(dctx, activities.ZoneStaging, activities.StagingPrefix(r.status.ID))
	var due *time.Time
	if keep := time.Duration(r.policy.Retention.Released); keep > 0 {
		t := rel.Release.At.Add(keep)
		if t.Before(now) {
			t = now
		}
		due = &t
		r.scheduleDeletion(dctx, model.ScheduledDeletion{Zone: activities.ZoneDestination, Destination: r.e.Destination,
			Prefix: rel.Release.Prefix, Location: rel.Release.Location, DueAt: t,
			Reason: fmt.Sprintf("released outputs are kept for %s (policy %s spec.retention.released)", keep, r.status.Policy)})
	}
	// Open for revocation until the released copy is deleted.
	revoked := func() bool { return r.revocation != nil }
	if due != nil {
		if _, err := workflow.AwaitWithTimeout(ctx, due.Sub(workflow.Now(ctx)), revoked); err != nil {
			return r.releasedResult(dctx, released)
		}
	} else if err := workflow.Await(ctx, revoked); err != nil {
		return r.releasedResult(dctx, released)
	}
	if r.revocation == nil {
		return r.releasedResult(dctx, released)
	}
	return r.revoke(dctx)
}

// releasedResult ends the run RELEASED: its retention deletion (if any)
// goes on in its own RetentionWorkflow.
func (r *egressRun) releasedResult(ctx workflow.Context, released []model.FileRecord) (requestResult, error) {
	res, err := r.close(ctx, model.StateReleased, "")
	res.ManifestDigest = model.ManifestDigest(released)
	res.Files, res.Bytes = len(released), 0
	for _, f := range released {
		res.Bytes += f.Size
	}
	return res, err
}

// revoke removes the released copies (where the destination allows),
// records the revocation, cancels the retention deletion it made
// unnecessary, and ends the request REVOKED.
func (r *egressRun) revoke(ctx workflow.Context) (requestResult, error) {
	v := *r.revocation
	del := r.deleteAreaResult(ctx, activities.DeleteAreaInput{Zone: activities.ZoneDestination, Destination: r.e.Destination, Prefix: r.e.Release.Prefix})
	r.e.Revocation = &model.RevocationRecord{By: v.By, Reason: v.Reason, Via: v.Via, At: workflow.Now(ctx), Removed: del.Removed, Note: del.Note}
	for _, d := range r.status.Deletions {
		if d.Zone == activities.ZoneDestination {
			// Nothing left for it to delete; it records its cancellation.
			_ = workflow.RequestCancelExternalWorkflow(ctx, d.WorkflowID, "").Get(ctx, nil)
		}
	}
	reason := fmt.Sprintf("revoked by %s: %s", v.By, v.Reason)
	r.status.Error = reason
	if err := r.transition(ctx, model.StateRevoked); err != nil {
		return requestResult{}, err
	}
	return r.close(ctx, model.StateRevoked, reason)
}

// deleteDestination removes what a failed release copied.
func (r *egressRun) deleteDestination(ctx workflow.Context) {
	r.deleteAreaResult(ctx, activities.DeleteAreaInput{Zone: activities.ZoneDestination, Destination: r.e.Destination,
		Prefix: activities.EgressDestinationPrefix(r.status.ID)})
}

// registerEgressHandlers serves the state query, cancel, and the egress
// Updates (review, resubmit, withdraw, revoke) and review Signal.
func (r *egressRun) registerEgressHandlers(ctx workflow.Context) error {
	if err := r.registerQuery(ctx); err != nil {
		return err
	}
	if err := r.registerCancel(ctx); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateReview,
		func(ctx workflow.Context, rv model.EgressReview) (ReviewResult, error) {
			if rv.Via == "" {
				rv.Via = "update"
			}
			if err := r.status.CheckReview(rv, r.dir, r.inRound); err != nil {
				return ReviewResult{}, err
			}
			return r.applyReview(ctx, rv, true)
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, rv model.EgressReview) error {
			err := r.status.CheckReview(rv, r.dir, r.inRound)
			if err != nil {
				workflow.GetLogger(ctx).Warn("review update refused", "by", rv.By, "stage", rv.Stage, "turn", rv.Turn, "via", rv.Via, "reason", err.Error())
			}
			return err
		}}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateResubmit,
		func(ctx workflow.Context, s model.Resubmission) (ResubmitResult, error) {
			if err := r.status.CheckResubmission(s); err != nil {
				return ResubmitResult{}, err
			}
			if s.Via == "" {
				s.Via = "update"
			}
			r.resubmitted = &s
			turn := r.e.Turn
			if err := workflow.Await(ctx, func() bool { return r.e.Turn > turn || r.status.State.Terminal() }); err != nil {
				return ResubmitResult{}, err
			}
			return ResubmitResult{Turn: r.e.Turn, State: r.status.State}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, s model.Resubmission) error {
			err := r.status.CheckResubmission(s)
			if err == nil && r.resubmitted != nil {
				err = fmt.Errorf("request %s has already been resubmitted; its new turn is starting", r.status.ID)
			}
			if err != nil {
				workflow.GetLogger(ctx).Warn("resubmit update refused", "by", s.By, "reason", err.Error())
			}
			return err
		}}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateWithdraw,
		func(ctx workflow.Context, w model.Withdrawal) (WithdrawResult, error) {
			if err := r.status.CheckWithdrawal(w); err != nil {
				return WithdrawResult{}, err
			}
			if w.Via == "" {
				w.Via = "update"
			}
			r.withdrawal = &w
			r.e.Withdrawn = &w
			if r.interrupt != nil {
				r.interrupt()
			}
			if err := workflow.Await(ctx, func() bool { return r.status.State.Terminal() }); err != nil {
				return WithdrawResult{}, err
			}
			return WithdrawResult{State: r.status.State}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, w model.Withdrawal) error {
			err := r.status.CheckWithdrawal(w)
			if err != nil {
				workflow.GetLogger(ctx).Warn("withdraw update refused", "by", w.By, "reason", err.Error())
			}
			return err
		}}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRevoke,
		func(ctx workflow.Context, v model.Revocation) (RevokeResult, error) {
			if err := r.status.CheckRevocation(v, r.dir); err != nil {
				return RevokeResult{}, err
			}
			if v.Via == "" {
				v.Via = "update"
			}
			r.revocation = &v
			if err := workflow.Await(ctx, func() bool { return r.status.State == model.StateRevoked }); err != nil {
				return RevokeResult{}, err
			}
			return RevokeResult{State: r.status.State, Revocation: *r.e.Revocation}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, v model.Revocation) error {
			err := r.status.CheckRevocation(v, r.dir)
			if err == nil && r.revocation != nil {
				err = fmt.Errorf("request %s is already being revoked by %s", r.status.ID, r.revocation.By)
			}
			if err != nil {
				workflow.GetLogger(ctx).Warn("revoke update refused", "by", v.By, "reason", err.Error())
			}
			return err
		}}); err != nil {
		return err
	}
	onSignals(ctx, SignalReview, r.onReviewSignal)
	return nil
}

// applyReview records an accepted review. While the stage is independent
// the review stays out of the status until the stage has all its reviews;
// an Update's caller who completes the round waits for its outcome.
func (r *egressRun) applyReview(ctx workflow.Context, rv model.EgressReview, wait bool) (ReviewResult, error) {
	cur := r.status.CurrentStage()
	rec := model.EgressReviewRecord{Stage: r.status.Stages[cur].Name, By: rv.By, Turn: rv.Turn, At: workflow.Now(ctx),
		Files: rv.Files, Comment: rv.Comment, ManifestDigest: rv.ManifestDigest, Via: rv.Via}
	sort.Slice(rec.Files, func(i, j int) bool { return rec.Files[i].Path < rec.Files[j].Path })
	r.inRound = append(r.inRound, rec)
	r.e.ReviewsIn = len(r.inRound)
	if !r.policy.Stages[cur].Independent {
		r.e.Reviews = append(r.e.Reviews, rec)
	}
	r.status.UpdatedAt = workflow.Now(ctx)
	r.refreshDetails(ctx)
	out := ReviewResult{Turn: rv.Turn, ReviewsIn: r.e.ReviewsIn, ReviewsNeeded: r.e.ReviewsNeeded, State: r.status.State}
	if !wait || len(r.inRound) < r.status.Stages[cur].Required {
		return out, nil
	}
	before := r.settled
	if err := workflow.Await(ctx, func() bool { return r.settled > before || r.status.State.Terminal() }); err != nil {
		return out, err
	}
	out.State = r.status.State
	out.Files = append([]model.EgressFile(nil), r.e.Files...)
	return out, nil
}

// onReviewSignal applies a review sent as a Signal (from the Temporal UI);
// a refused one is kept on record with its reason.
func (r *egressRun) onReviewSignal(ctx workflow.Context, raw json.RawMessage) {
	var rv model.EgressReview
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	err := dec.Decode(&rv)
	if err != nil {
		err = fmt.Errorf("the signal's payload is not a review (%v); send JSON like {\"stage\":\"...\",\"by\":\"...\",\"turn\":%d,\"manifest_digest\":\"%s\",\"files\":[{\"path\":\"...\",\"verdict\":\"approve\"}]}", err, r.e.Turn, r.status.ManifestDigest)
	} else {
		rv.Via, rv.Roles = "signal", nil
		err = r.status.CheckReview(rv, r.dir, r.inRound)
	}
	if err != nil {
		r.status.Refused = append(r.status.Refused, model.RefusedDecision{
			DecisionRequest: model.DecisionRequest{Stage: rv.Stage, By: rv.By, Decision: "review", Comment: rv.Comment, ManifestDigest: rv.ManifestDigest, Via: "signal"},
			At:              workflow.Now(ctx), Reason: err.Error()})
		workflow.GetLogger(ctx).Warn("review signal refused", "by", rv.By, "stage", rv.Stage, "reason", err.Error())
		r.refreshDetails(ctx)
		return
	}
	_, _ = r.applyReview(ctx, rv, false)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
