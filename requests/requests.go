// Package requests is the client side of Airlock's requests: it starts
// imports and uploads, reads a request's state, lists requests from
// Temporal's visibility store and sends decisions, cancellations and upload
// confirmations to the request's workflow. The airlock CLI and the HTTP API
// both go through it, so they start, find and change requests the same way.
//
// Errors: ErrNotFound for a request that does not exist (never more than
// that), *RefusedError when the workflow refused an Update (its reason is for
// the person who asked), *FieldError or model.FieldErrors for bad input
// refused before anything reached the server, and other errors wrapped with
// what was being done.
package requests

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// Service reaches Airlock's workflows through a Temporal client.
type Service struct {
	Client client.Client
	// TaskQueue is the task queue of the Airlock workers new requests are
	// started on (default workflows.TaskQueue).
	TaskQueue string
}

// ErrNotFound means there is no such request. It deliberately says nothing
// more, so an entry point can answer a request the caller may not see
// exactly as a missing one.
var ErrNotFound = errors.New("no such request")

// RefusedError is a workflow's refusal of an Update (a decision, a
// cancellation, an upload confirmation): Reason says what was wrong and how
// to put it right.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

// FieldError is bad input refused before anything was sent: Field names the
// input (the API's JSON field or query parameter, e.g. "awaiting_role"; an
// entry point may translate it into its own words, such as a CLI flag),
// Value is what was given and Problem says what is wrong and what is valid.
type FieldError struct {
	Field   string
	Value   string
	Problem string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + ": " + e.Problem
	}
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Problem)
}

func (s *Service) taskQueue() string {
	if s.TaskQueue != "" {
		return s.TaskQueue
	}
	return workflows.TaskQueue
}

// checkID refuses an empty request id before it reaches the server.
func checkID(id string) error {
	if strings.TrimSpace(id) == "" {
		return &FieldError{Field: "id", Problem: "missing: give the request id"}
	}
	return nil
}

// Status reads a request's state document from its workflow's state query:
// the document `airlock status -o json` prints and the API serves.
func (s *Service) Status(ctx context.Context, id string) (model.RequestStatus, error) {
	var st model.RequestStatus
	if err := checkID(id); err != nil {
		return st, err
	}
	v, err := s.Client.QueryWorkflow(ctx, id, "", workflows.QueryState)
	if err != nil {
		if isNotFound(err) || isUnknownQuery(err) {
			// A workflow that is not an Airlock request is no request either.
			return st, ErrNotFound
		}
		return st, fmt.Errorf("reading the state of request %s: %w%s", id, err, workerHint(err))
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("decoding the state of request %s: %w", id, err)
	}
	return st, nil
}

// InFlight is what an import's running extractions have copied so far. The
// state query counts an object's bytes once it is staged; this adds the
// bytes of the copies under way, read from their heartbeats.
type InFlight struct {
	BytesDone int64 // bytes copied by the extractions running now
	Running   int   // extractions running now
	// Producing is the latest line of a producer (a query, a pipeline) still
	// making an object's files, if any.
	Producing string
}

// InFlight reads the heartbeats of a request's running extractions.
func (s *Service) InFlight(ctx context.Context, id string) (InFlight, error) {
	var out InFlight
	if err := checkID(id); err != nil {
		return out, err
	}
	desc, err := s.Client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		if isNotFound(err) {
			return out, ErrNotFound
		}
		return out, fmt.Errorf("describing request %s: %w", id, err)
	}
	dc := converter.GetDefaultDataConverter()
	for _, pa := range desc.PendingActivities {
		// The activity type is the method name of activities.Activities.ExtractObject.
		if pa.GetActivityType().GetName() != "ExtractObject" || pa.HeartbeatDetails == nil {
			continue
		}
		var p activities.ExtractProgress
		if dc.FromPayloads(pa.HeartbeatDetails, &p) != nil {
			continue
		}
		out.BytesDone += p.BytesDone
		out.Running++
		if p.Phase == activities.PhaseProducing && p.Message != "" {
			out.Producing = p.Message
		}
	}
	return out, nil
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// isUnknownQuery reports a query the workflow does not answer: the id names
// a workflow that is not an Airlock request.
func isUnknownQuery(err error) bool {
	var qf *serviceerror.QueryFailed
	return errors.As(err, &qf) && strings.Contains(qf.Message, "unknown queryType")
}

// workerHint explains a call that timed out waiting for a worker.
func workerHint(err error) string {
	var dl *serviceerror.DeadlineExceeded
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &dl) {
		return " (no Airlock worker answered in time: is one running and polling the request's task queue?)"
	}
	return ""
}

// ended explains an Update the server could not deliver: the request has
// ended, or there is no such request.
func (s *Service) ended(ctx context.Context, id, what string) error {
	desc, err := s.Client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		if isNotFound(err) {
			return ErrNotFound
		}
		return fmt.Errorf("describing request %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return ErrNotFound
	}
	state := searchAttr(info.GetSearchAttributes().GetIndexedFields(), workflows.SearchAttrState)
	if state == "" {
		state = "workflow " + strings.ToLower(info.GetStatus().String())
	}
	return &RefusedError{Reason: fmt.Sprintf("request %s has ended (%s): it takes no more %s", id, state, what)}
}
