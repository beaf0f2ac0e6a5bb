package requests

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// StartImport asks for an import of an Import data source.
type StartImport struct {
	DataSource model.DataSource
	Workspace  string // the workspace the data is for
	Binding    string // the AnalyticsWorkspaceDataBinding that names the workspace, if any
	Requester  string // who asks; never approves
	Policy     string // approval policy; empty: the project's default
	Via        string // the entry point: cli, api
}

// StartImport starts an import request and returns its id. The request
// starts EXTRACTING; Status follows it.
func (s *Service) StartImport(ctx context.Context, in StartImport) (string, error) {
	if err := checkStart(in.DataSource, model.TypeImport, in.Workspace, in.Requester); err != nil {
		return "", err
	}
	if in.Binding != "" && !model.ValidName(in.Binding) {
		return "", &FieldError{Field: "binding", Value: in.Binding, Problem: "not a binding name: " + model.NameRule}
	}
	ds := in.DataSource
	return s.start(ctx, started{
		kind:      model.KindImport,
		state:     model.StateExtracting,
		workflow:  workflows.ImportWorkflowName,
		ds:        ds,
		workspace: in.Workspace,
		requester: in.Requester,
		summary:   fmt.Sprintf("Import %s into workspace %s (project %s), asked by %s", ds.Metadata.Name, in.Workspace, ds.Spec.Project.ID, in.Requester),
		details:   importDetails(ds, in.Workspace, in.Requester, in.Policy),
		input: workflows.ImportInput{
			DataSource: ds, Workspace: in.Workspace, Requester: in.Requester,
			Policy: in.Policy, Binding: in.Binding, Via: in.Via,
		},
	})
}

// checkStart refuses, before anything starts, what the workflow would
// refuse by failing the request.
func checkStart(ds model.DataSource, typ, workspace, requester string) error {
	if errs := ds.Validate(); len(errs) > 0 {
		return errs
	}
	if ds.Spec.Type != typ {
		how := map[string]string{
			model.TypeImport:   "only " + model.TypeImport + " data sources are imported; " + model.TypeUploaded + " ones arrive by upload",
			model.TypeUploaded: "only " + model.TypeUploaded + " data sources arrive by upload; " + model.TypeImport + " ones are imported",
		}[typ]
		return &FieldError{Field: "spec.type", Value: ds.Spec.Type, Problem: how}
	}
	if strings.TrimSpace(workspace) == "" {
		return &FieldError{Field: "workspace", Problem: "missing: name the workspace the data is for"}
	}
	if !model.ValidName(workspace) {
		return &FieldError{Field: "workspace", Value: workspace, Problem: model.NameRule}
	}
	if strings.TrimSpace(requester) == "" {
		return &FieldError{Field: "requester", Problem: "missing: say who is asking"}
	}
	return nil
}

// started is what start needs to start a request's workflow.
type started struct {
	kind                 model.Kind
	state                model.State // the state the request starts in
	workflow             string
	ds                   model.DataSource
	workspace, requester string
	summary, details     string // shown by the Temporal UI
	input                any
}

// idAttempts bounds how many fresh ids start tries when one is taken.
const idAttempts = 3

// start starts a request's workflow under a fresh id, with the search
// attributes lists read and the summary and details the Temporal UI shows.
func (s *Service) start(ctx context.Context, r started) (string, error) {
	opts := client.StartWorkflowOptions{
		TaskQueue: s.taskQueue(),
		// An id names the request's staging and workspace folders: never
		// attach to, or reuse the id of, another request.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.KeyKind.ValueSet(string(r.kind)),
			workflows.KeyState.ValueSet(string(r.state)),
			workflows.KeyProject.ValueSet(r.ds.Spec.Project.ID),
			workflows.KeyDataSource.ValueSet(r.ds.Metadata.Name),
			workflows.KeyWorkspace.ValueSet(r.workspace),
			workflows.KeyRequester.ValueSet(r.requester),
		),
		StaticSummary: r.summary,
		StaticDetails: r.details,
	}
	for attempt := 1; ; attempt++ {
		opts.ID = NewRequestID(r.kind, r.ds.Metadata.Name)
		_, err := s.Client.ExecuteWorkflow(ctx, opts, r.workflow, r.input)
		if err == nil {
			return opts.ID, nil
		}
		var taken *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &taken) && attempt < idAttempts {
			continue
		}
		return "", fmt.Errorf("starting the %s: %w%s", r.kind, err, searchAttrHint(err))
	}
}

// searchAttrHint says how to register Airlock's search attributes when the
// server does not know them.
func searchAttrHint(err error) string {
	if !strings.Contains(err.Error(), "search attribute") {
		return ""
	}
	return fmt.Sprintf(" (register Airlock's search attributes: `make dev` does, or run `temporal operator search-attribute create --name %s --type Keyword` for each of %s)",
		workflows.SearchAttrKind, strings.Join(workflows.SearchAttributeNames, ", "))
}

// NewRequestID makes a readable, unique request id:
// <kind>-<datasource>-<6 random chars>, e.g. import-clinic-extract-x7k2m9.
func NewRequestID(kind model.Kind, datasource string) string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789" // 32 letters: every byte maps evenly
	buf := make([]byte, 6)
	_, _ = rand.Read(buf)
	for i := range buf {
		buf[i] = alphabet[int(buf[i])%len(alphabet)]
	}
	return string(kind) + "-" + datasource + "-" + string(buf)
}

// importDetails is the Markdown the Temporal UI shows for an import.
func importDetails(ds model.DataSource, workspace, requester, policy string) string {
	var b strings.Builder
	writeDataSource(&b, ds, workspace, requester, policy)
	b.WriteString("\nObjects:\n")
	for _, o := range ds.Spec.Objects {
		conn, _ := ds.Connection(o.ConnectionName())
		fmt.Fprintf(&b, "- %s from %s connection `%s`\n", o.Describe(), conn.Type, conn.Name)
	}
	return b.String()
}

func writeDataSource(b *strings.Builder, ds model.DataSource, workspace, requester, policy string) {
	s := ds.Spec
	fmt.Fprintf(b, "**%s**\n\n%s\n\n", s.DisplayName, strings.TrimSpace(s.Description))
	fmt.Fprintf(b, "- data source: `%s`\n- publisher: %s (contact %s)\n- project: `%s`\n- workspace: `%s`\n- requested by: %s\n", ds.Metadata.Name, s.Publisher.Organisation, s.Publisher.Contact.Name, s.Project.ID, workspace, requester)
	if policy != "" {
		fmt.Fprintf(b, "- policy requested: `%s`\n", policy)
	}
}
