package requests

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// EgressStart asks for an egress: files of a workspace to leave it for a
// destination named in the configuration, after automatic checks and
// output checking.
type EgressStart struct {
	// ID is the request id to use; empty makes a fresh one
	// (egress-<workspace>-<6 random characters>). A given id that another
	// request holds is refused, never reused.
	ID        string
	Input     model.EgressRequestInput
	Requester string // who asks; never reviews
	Via       string // the entry point: cli, api
	Policy    string // egress policy; empty: the project's default
}

// StartEgress starts an egress request and returns its id. The request
// starts CHECKING: its files are snapshotted into staging and checked.
// Input the workflow would refuse is a *FieldError naming the field.
func (s *Service) StartEgress(ctx context.Context, in EgressStart) (string, error) {
	if err := CheckEgressStart(in); err != nil {
		return "", err
	}
	e := in.Input
	opts := client.StartWorkflowOptions{
		TaskQueue: s.taskQueue(),
		// The id names the request's staging and destination folders:
		// never attach to, or reuse the id of, another request.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.KeyKind.ValueSet(string(model.KindEgress)),
			workflows.KeyState.ValueSet(string(model.StateChecking)),
			workflows.KeyProject.ValueSet(e.Project),
			workflows.KeyWorkspace.ValueSet(e.Workspace),
			workflows.KeyRequester.ValueSet(in.Requester),
		),
		StaticSummary: fmt.Sprintf("Egress of %d file(s) from workspace %s (project %s) to %s, asked by %s", len(e.Files), e.Workspace, e.Project, e.Destination, in.Requester),
		StaticDetails: egressDetails(in),
	}
	input := workflows.EgressInput{Request: e, Requester: in.Requester, Policy: in.Policy, Via: in.Via}
	for attempt := 1; ; attempt++ {
		opts.ID = in.ID
		if opts.ID == "" {
			opts.ID = NewRequestID(model.KindEgress, e.Workspace)
		}
		_, err := s.Client.ExecuteWorkflow(ctx, opts, workflows.EgressWorkflowName, input)
		if err == nil {
			return opts.ID, nil
		}
		var taken *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &taken) {
			if in.ID != "" {
				return "", &RefusedError{Reason: fmt.Sprintf("id %q is taken by another request: choose another id, or leave it out for a fresh one", in.ID)}
			}
			if attempt < idAttempts {
				continue
			}
		}
		return "", fmt.Errorf("starting the egress: %w%s", err, searchAttrHint(err))
	}
}

// requestIDRE is what a request id given by a caller may look like: it
// names folders in staging and at the destination.
var requestIDRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// maxRequestIDLen bounds a request id given by a caller.
const maxRequestIDLen = 128

// CheckEgressStart refuses, before anything starts, what the egress
// workflow would refuse by failing the request (model.CheckEgressRequest,
// the rules the workflow applies). Errors are *FieldError naming the JSON
// field of the API's POST /api/v1/egress body (workspace, project,
// destination, files, files[i], justification, requester, policy, id).
func CheckEgressStart(in EgressStart) error {
	e := in.Input
	if in.ID != "" && (len(in.ID) > maxRequestIDLen || !requestIDRE.MatchString(in.ID)) {
		return &FieldError{Field: "id", Value: in.ID, Problem: fmt.Sprintf("not a request id: use lower-case letters, digits and '-', starting and ending with a letter or digit, at most %d characters (or leave it out for a fresh one)", maxRequestIDLen)}
	}
	for _, f := range []struct{ field, value, missing string }{
		{"workspace", e.Workspace, "name the workspace the files are in"},
		{"project", e.Project, "name the project the workspace belongs to (its egress policy applies)"},
		{"destination", e.Destination, "name one of the destinations the configuration agrees (GET /api/v1/egress/destinations lists them)"},
	} {
		if strings.TrimSpace(f.value) == "" {
			return &FieldError{Field: f.field, Problem: "missing: " + f.missing}
		}
	}
	if len(e.Files) == 0 {
		return &FieldError{Field: "files", Problem: "missing: list at least one file, by its path relative to the workspace's root (such as results/table1.csv)"}
	}
	if problems := model.CheckEgressRequest(e); len(problems) > 0 {
		return problemError(problems[0])
	}
	if strings.TrimSpace(in.Requester) == "" {
		return &FieldError{Field: "requester", Problem: "missing: say who is asking"}
	}
	if in.Policy != "" && !model.ValidName(in.Policy) {
		return &FieldError{Field: "policy", Value: in.Policy, Problem: "not a policy name: " + model.NameRule}
	}
	return nil
}

// problemError turns one of the model's "field: problem" sentences into a
// *FieldError.
func problemError(problem string) error {
	field, rest, ok := strings.Cut(problem, ": ")
	if !ok {
		return &FieldError{Field: "request", Problem: problem}
	}
	return &FieldError{Field: field, Problem: rest}
}

// egressDetails is the Markdown the Temporal UI shows for an egress.
func egressDetails(in EgressStart) string {
	e := in.Input
	var b strings.Builder
	fmt.Fprintf(&b, "**Egress to `%s`**\n\n%s\n\n", e.Destination, strings.TrimSpace(e.Justification))
	fmt.Fprintf(&b, "- project: `%s`\n- workspace: `%s`\n- requested by: %s\n", e.Project, e.Workspace, in.Requester)
	if in.Policy != "" {
		fmt.Fprintf(&b, "- policy requested: `%s`\n", in.Policy)
	}
	// The details are kept in the run's history: list a bounded number.
	const shown = 50
	fmt.Fprintf(&b, "\nFiles (%d):\n", len(e.Files))
	for i, f := range e.Files {
		if i == shown {
			fmt.Fprintf(&b, "- ... and %d more\n", len(e.Files)-shown)
			break
		}
		fmt.Fprintf(&b, "- `%s`\n", f)
	}
	return b.String()
}

// Review sends an output checker's review of one turn (a verdict on every
// file still open in it) to an egress and waits for the workflow's answer.
// The caller fills r.Via and, when it verified them, r.Roles. A review the
// rules refuse is a *RefusedError saying why; nothing is recorded then.
func (s *Service) Review(ctx context.Context, id string, r model.EgressReview) (workflows.ReviewResult, error) {
	var res workflows.ReviewResult
	if err := CheckReview(r); err != nil {
		return res, err
	}
	err := s.update(ctx, id, workflows.UpdateReview, r, &res, "reviews")
	return res, err
}

// CheckReview refuses a review that cannot be right whatever the request
// holds; the workflow applies the rest (model.RequestStatus.CheckReview).
// Errors are *FieldError naming the JSON field of the API's review body
// (by, turn, manifest_digest, files, files[i].path, files[i].verdict,
// files[i].comment).
func CheckReview(r model.EgressReview) error {
	switch {
	case strings.TrimSpace(r.By) == "":
		return &FieldError{Field: "by", Problem: "missing: say who is reviewing"}
	case r.Turn < 1:
		return &FieldError{Field: "turn", Value: fmt.Sprint(r.Turn), Problem: "missing or not a turn: give the turn you reviewed (egress.turn in the request's status; the first is 1)"}
	case strings.TrimSpace(r.ManifestDigest) == "":
		return &FieldError{Field: "manifest_digest", Problem: "missing: give the manifest digest of the files you reviewed (manifest_digest in the request's status)"}
	case len(r.Files) == 0:
		return &FieldError{Field: "files", Problem: "missing: give a verdict (" + strings.Join(model.Verdicts, ", ") + ") on every file open in the turn"}
	}
	seen := map[string]int{}
	for i, f := range r.Files {
		field := fmt.Sprintf("files[%d]", i)
		if j, dup := seen[f.Path]; dup {
			return &FieldError{Field: field + ".path", Value: f.Path, Problem: fmt.Sprintf("reviewed twice (also files[%d]): give each file one verdict", j)}
		}
		seen[f.Path] = i
		if !slices.Contains(model.Verdicts, f.Verdict) {
			return &FieldError{Field: field + ".verdict", Value: f.Verdict, Problem: "not a verdict: use " + strings.Join(model.Verdicts, ", ")}
		}
		if f.Verdict != model.VerdictApprove && strings.TrimSpace(f.Comment) == "" && strings.TrimSpace(r.Comment) == "" {
			return &FieldError{Field: field + ".comment", Problem: fmt.Sprintf("missing: a verdict of %s on %s needs a comment saying why and what to change", f.Verdict, f.Path)}
		}
	}
	return nil
}

// Resubmit answers a RETURNED egress with its files for a new turn (an
// empty r.Files keeps the same paths, snapshotted again) and waits for the
// workflow's answer: the new turn, CHECKING. A resubmission the rules
// refuse is a *RefusedError saying why.
func (s *Service) Resubmit(ctx context.Context, id string, r model.Resubmission) (workflows.ResubmitResult, error) {
	var res workflows.ResubmitResult
	if err := CheckResubmission(r); err != nil {
		return res, err
	}
	err := s.update(ctx, id, workflows.UpdateResubmit, r, &res, "resubmissions")
	return res, err
}

// CheckResubmission refuses a resubmission that cannot be right whatever
// the request holds. Errors are *FieldError naming the JSON field (by,
// files[i]).
func CheckResubmission(r model.Resubmission) error {
	if strings.TrimSpace(r.By) == "" {
		return &FieldError{Field: "by", Problem: "missing: say who is resubmitting (the requester)"}
	}
	if len(r.Files) > 0 {
		if msg := model.CheckEgressPaths(r.Files, "files"); msg != "" {
			return problemError(msg)
		}
	}
	return nil
}

// Withdraw withdraws an egress before its release and waits for the
// workflow's answer. A withdrawal the rules refuse is a *RefusedError.
func (s *Service) Withdraw(ctx context.Context, id string, w model.Withdrawal) (workflows.WithdrawResult, error) {
	var res workflows.WithdrawResult
	if strings.TrimSpace(w.By) == "" {
		return res, &FieldError{Field: "by", Problem: "missing: say who is withdrawing the request"}
	}
	err := s.update(ctx, id, workflows.UpdateWithdraw, w, &res, "withdrawals")
	return res, err
}

// Revoke revokes a released egress: its released copies are removed where
// the destination allows it. It waits until the revocation is done and
// recorded. A revocation the rules refuse is a *RefusedError.
func (s *Service) Revoke(ctx context.Context, id string, r model.Revocation) (workflows.RevokeResult, error) {
	var res workflows.RevokeResult
	if strings.TrimSpace(r.By) == "" {
		return res, &FieldError{Field: "by", Problem: "missing: say who is revoking the release"}
	}
	if strings.TrimSpace(r.Reason) == "" {
		return res, &FieldError{Field: "reason", Problem: "missing: say why the release is revoked; it is recorded with the revocation"}
	}
	err := s.update(ctx, id, workflows.UpdateRevoke, r, &res, "revocations")
	return res, err
}
