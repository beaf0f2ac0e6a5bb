package requests

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// Decide sends a decision (approve or reject a stage) to a request and
// waits for the workflow's answer. The caller fills d.Via (cli, api) and,
// when it verified them, d.Roles. A decision the rules refuse is a
// *RefusedError saying why; nothing is recorded then.
func (s *Service) Decide(ctx context.Context, id string, d model.DecisionRequest) (workflows.DecisionResult, error) {
	var res workflows.DecisionResult
	err := s.update(ctx, id, workflows.UpdateDecide, d, &res, "decisions")
	return res, err
}

// Cancel asks a request's workflow to cancel the request and waits until
// the request has ended CANCELLED; its workflow removes the staged data as
// it closes, a moment later. A cancellation the rules refuse is a
// *RefusedError saying why.
func (s *Service) Cancel(ctx context.Context, id string, c model.CancelRequest) (workflows.CancelResult, error) {
	var res workflows.CancelResult
	err := s.update(ctx, id, workflows.UpdateCancel, c, &res, "cancellations")
	return res, err
}

// update sends one Update and waits for its result. what names, in the
// plural, what the Update brings ("decisions"), for refusals.
func (s *Service) update(ctx context.Context, id, name string, arg, result any, what string) error {
	if err := checkID(id); err != nil {
		return err
	}
	h, err := s.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   name,
		WaitForStage: client.WorkflowUpdateStageCompleted,
		Args:         []any{arg},
	})
	if err == nil {
		err = h.Get(ctx, result)
	}
	if err == nil {
		return nil
	}
	// Whatever the workflow's validator or handler returned reaches the
	// client as an ApplicationError whose message is the reason.
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		if strings.HasPrefix(app.Message(), "unknown update") {
			return &RefusedError{Reason: fmt.Sprintf("request %s takes no %s", id, what)}
		}
		return &RefusedError{Reason: app.Message()}
	}
	if isNotFound(err) {
		// The server answers NotFound for a request that has ended too.
		return s.ended(ctx, id, what)
	}
	return fmt.Errorf("sending %s update to request %s: %w%s", name, id, err, workerHint(err))
}
