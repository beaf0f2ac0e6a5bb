package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// RetentionInput is one deletion a request's retention scheduled.
type RetentionInput struct {
	Request    string                  `json:"request"`
	Kind       model.Kind              `json:"kind"`
	Project    string                  `json:"project"`
	DataSource string                  `json:"datasource,omitempty"`
	Workspace  string                  `json:"workspace"`
	Deletion   model.ScheduledDeletion `json:"deletion"`
	// Rounds carries the failed rounds of deletion over a continue-as-new.
	Rounds int `json:"rounds,omitempty"`
}

// RetentionResult records a deletion: when it was due, when it was done,
// how many files it removed and how many rounds it took, or that it was
// cancelled (a revocation already removed the data).
type RetentionResult struct {
	Request     string     `json:"request"`
	Zone        string     `json:"zone"`
	Destination string     `json:"destination,omitempty"`
	Prefix      string     `json:"prefix"`
	DueAt       time.Time  `json:"due_at"`
	DeletedAt   *time.Time `json:"deleted_at,omitempty"`
	Removed     int        `json:"removed"`
	Rounds      int        `json:"rounds"`
	Note        string     `json:"note,omitempty"`
	Cancelled   bool       `json:"cancelled,omitempty"`
}

// RetentionStatus is what a RetentionWorkflow's state query answers.
type RetentionStatus struct {
	State     string                  `json:"state"`
	Request   string                  `json:"request"`
	Deletion  model.ScheduledDeletion `json:"deletion"`
	Rounds    int                     `json:"rounds"`
	LastError string                  `json:"last_error,omitempty"`
	Result    *RetentionResult        `json:"result,omitempty"`
}

// A RetentionWorkflow's states (its AirlockState search attribute):
// SCHEDULED until due, DELETING, RETRYING after a failed round (the error
// is in its details and state query), then DELETED or CANCELLED.
const (
	RetentionScheduled = "SCHEDULED"
	RetentionDeleting  = "DELETING"
	RetentionRetrying  = "RETRYING"
	RetentionDeleted   = "DELETED"
	RetentionCancelled = "CANCELLED"
)

// Retention's retry schedule: each round is an activity with its own
// retries; between failed rounds the workflow waits, doubling from
// RetentionRetryFirst up to RetentionRetryMax, and never gives up. After
// retentionRoundsPerRun rounds it continues as new, so its history stays
// small however long the store refuses.
const (
	RetentionRetryFirst   = time.Minute
	RetentionRetryMax     = time.Hour
	retentionRoundsPerRun = 100
)

// RetentionWorkflow deletes one area of a request (its staging area, its
// workspace copy, an egress destination's copy) when it is due, on a
// durable timer: a worker restart, or every worker being down, only delays
// it until a worker polls again. Its AirlockDeletionDue search attribute
// and its summary show operators in the Temporal UI when it is due; a
// deletion that fails is retried without end and reported (AirlockState
// RETRYING, the error in its details and state). Cancelling it (as a
// revocation that already removed the data does) records that and ends it.
func RetentionWorkflow(ctx workflow.Context, in RetentionInput) (RetentionResult, error) {
	st := RetentionStatus{State: RetentionScheduled, Request: in.Request, Deletion: in.Deletion, Rounds: in.Rounds}
	res := RetentionResult{Request: in.Request, Zone: in.Deletion.Zone, Destination: in.Deletion.Destination,
		Prefix: in.Deletion.Prefix, DueAt: in.Deletion.DueAt, Rounds: in.Rounds}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (RetentionStatus, error) { return st, nil }); err != nil {
		return res, err
	}
	set := func(state string) error {
		st.State = state
		workflow.SetCurrentDetails(ctx, retentionDetails(in, st))
		return workflow.UpsertTypedSearchAttributes(ctx, retentionUpdates(in, state)...)
	}
	if err := set(st.State); err != nil {
		return res, err
	}
	if msg := checkRetentionInput(in); msg != "" {
		return res, temporal.NewNonRetryableApplicationError(msg, activities.ErrTypeBadInput, nil)
	}
	if wait := in.Deletion.DueAt.Sub(workflow.Now(ctx)); wait > 0 {
		if err := workflow.Sleep(ctx, wait); err != nil {
			if temporal.IsCanceledError(err) {
				res.Cancelled = true
				res.Note = "cancelled before it was due"
				st.Result = &res
				dctx, _ := workflow.NewDisconnectedContext(ctx)
				_ = set(RetentionCancelled)
				workflow.SetCurrentDetails(dctx, retentionDetails(in, st))
				return res, nil
			}
			return res, err
		}
	}
	if err := set(RetentionDeleting); err != nil {
		return res, err
	}
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5},
	}
	actx := workflow.WithActivityOptions(ctx, opts)
	for round := 1; ; round++ {
		var del activities.DeleteAreaResult
		err := workflow.ExecuteActivity(actx, a.DeleteArea, activities.DeleteAreaInput{
			Zone: in.Deletion.Zone, Destination: in.Deletion.Destination, Prefix: in.Deletion.Prefix,
		}).Get(ctx, &del)
		if err == nil {
			now := workflow.Now(ctx)
			res.DeletedAt, res.Removed, res.Note = &now, del.Removed, del.Note
			st.Result, st.LastError = &res, ""
			workflow.GetLogger(ctx).Info("retention deletion done", "request", in.Request, "zone", in.Deletion.Zone, "prefix", in.Deletion.Prefix, "removed", del.Removed, "rounds", st.Rounds)
			return res, set(RetentionDeleted)
		}
		if errors.Is(ctx.Err(), workflow.ErrCanceled) {
			return res, err
		}
		st.Rounds++
		res.Rounds = st.Rounds
		st.LastError = rootMessage(err, in.Kind)
		workflow.GetLogger(ctx).Error("retention deletion failed; retrying", "request", in.Request, "zone", in.Deletion.Zone, "prefix", in.Deletion.Prefix, "rounds", st.Rounds, "error", st.LastError)
		if err := set(RetentionRetrying); err != nil {
			return res, err
		}
		if round >= retentionRoundsPerRun {
			in.Rounds = st.Rounds
			return res, workflow.NewContinueAsNewError(ctx, RetentionWorkflowName, in)
		}
		if err := workflow.Sleep(ctx, retentionBackoff(st.Rounds)); err != nil {
			return res, err
		}
		if err := set(RetentionDeleting); err != nil {
			return res, err
		}
	}
}

// retentionBackoff is the wait after the n-th failed round.
func retentionBackoff(n int) time.Duration {
	d := RetentionRetryFirst
	for i := 1; i < n && d < RetentionRetryMax; i++ {
		d *= 2
	}
	return min(d, RetentionRetryMax)
}

func checkRetentionInput(in RetentionInput) string {
	d := in.Deletion
	switch {
	case d.Zone != activities.ZoneStaging && d.Zone != activities.ZoneWorkspace && d.Zone != activities.ZoneDestination:
		return fmt.Sprintf("deletion.zone: unknown zone %q (expected %s, %s or %s)", d.Zone, activities.ZoneStaging, activities.ZoneWorkspace, activities.ZoneDestination)
	case d.Zone == activities.ZoneDestination && d.Destination == "":
		return "deletion.destination: missing: name the egress destination to delete from"
	case strings.Trim(d.Prefix, "/") == "":
		return "deletion.prefix: missing: a deletion names the request's folder, never a whole store"
	case d.DueAt.IsZero():
		return "deletion.due_at: missing: say when the deletion is due"
	}
	return ""
}

// retentionAttributes are a RetentionWorkflow's search attributes: its
// kind and state, when it is due, and the request it belongs to.
func retentionAttributes(in RetentionInput, state string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(retentionUpdates(in, state)...)
}

func retentionUpdates(in RetentionInput, state string) []temporal.SearchAttributeUpdate {
	keys := []temporal.SearchAttributeUpdate{
		KeyKind.ValueSet(KindRetention),
		KeyState.ValueSet(state),
		KeyDeletionDue.ValueSet(in.Deletion.DueAt),
		KeyRequest.ValueSet(in.Request),
		KeyProject.ValueSet(in.Project),
		KeyWorkspace.ValueSet(in.Workspace),
	}
	if in.DataSource != "" {
		keys = append(keys, KeyDataSource.ValueSet(in.DataSource))
	}
	return keys
}

// retentionSummary is the one line the Temporal UI shows for the run.
func retentionSummary(in RetentionInput) string {
	return fmt.Sprintf("Delete %s of request %s at %s", retentionWhat(in.Deletion), in.Request, in.Deletion.DueAt.UTC().Format(time.RFC3339))
}

func retentionWhat(d model.ScheduledDeletion) string {
	switch d.Zone {
	case activities.ZoneDestination:
		return "the released copy at destination " + d.Destination
	case activities.ZoneWorkspace:
		return "the workspace copy"
	}
	return "the staging area"
}

func retentionDetails(in RetentionInput, st RetentionStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**State:** %s\n\n", st.State)
	fmt.Fprintf(&b, "Deletes %s (`%s`) of %s `%s`.\n\n", retentionWhat(in.Deletion), in.Deletion.Prefix, in.Kind, in.Request)
	fmt.Fprintf(&b, "**Due:** %s\n\n**Why:** %s\n\n", in.Deletion.DueAt.UTC().Format(time.RFC3339), in.Deletion.Reason)
	if st.Rounds > 0 {
		fmt.Fprintf(&b, "**Failed rounds:** %d; last error: %s\n\n", st.Rounds, st.LastError)
	}
	if r := st.Result; r != nil {
		switch {
		case r.Cancelled:
			fmt.Fprintf(&b, "Cancelled: %s\n", r.Note)
		case r.DeletedAt != nil:
			fmt.Fprintf(&b, "Deleted %d file(s) at %s", r.Removed, r.DeletedAt.UTC().Format(time.RFC3339))
			if r.Note != "" {
				fmt.Fprintf(&b, "; %s", r.Note)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}
