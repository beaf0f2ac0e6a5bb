package main

import (
	"net/http"
	"strings"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/requests"
)

// importBody starts an import: the data source document (YAML, as the
// platform writes it, optionally with its AnalyticsWorkspaceDataBinding),
// the workspace (unless the binding names it) and an approval policy.
type importBody struct {
	Document  string `json:"document"`
	Workspace string `json:"workspace"`
	Policy    string `json:"policy"`
}

// createImport: POST /api/v1/imports -> 201 {"id", "state"}.
func (s *server) createImport(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body importBody
	if err := decodeBody(w, r, &body, false); err != nil {
		return err
	}
	start, err := importFromDocument(body)
	if err != nil {
		return err
	}
	project := start.DataSource.Spec.Project.ID
	if !ident.CanImport(project) {
		return errorf(http.StatusForbidden, "%s may not start imports for project %s: it needs the capability import:%s (or import:*), which your sign-in does not grant", ident.Username, project, project)
	}
	start.Requester, start.Via = ident.Username, via
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	id, err := s.requests.StartImport(ctx, start)
	if err != nil {
		return s.serviceError("", err)
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id, "state": string(model.StateExtracting)})
	return nil
}

// importFromDocument parses and checks an import's document the way the
// CLI does (model.ParseDocuments): exactly one data source, of type Import,
// and a workspace from the body or from a binding for it, not both unless
// they agree.
func importFromDocument(body importBody) (requests.StartImport, error) {
	var out requests.StartImport
	if strings.TrimSpace(body.Document) == "" {
		return out, errorf(http.StatusBadRequest, "document: missing: send the AnalyticsWorkspaceDataSource YAML (and optionally its AnalyticsWorkspaceDataBinding) as a string")
	}
	docs, err := model.ParseDocuments("document", []byte(body.Document))
	if err != nil {
		if fe, ok := model.AsFieldErrors(err); ok {
			return out, errorf(http.StatusBadRequest, "%s", joinFieldErrors(fe))
		}
		return out, errorf(http.StatusBadRequest, "document: %v", err)
	}
	if len(docs.DataSources) != 1 {
		return out, errorf(http.StatusBadRequest, "document: expected exactly one %s, found %d: import one data source at a time", model.KindDataSource, len(docs.DataSources))
	}
	ds := docs.DataSources[0]
	if ds.Spec.Type != model.TypeImport {
		return out, errorf(http.StatusBadRequest, "document: spec.type is %s: only %s data sources are imported; %s ones arrive by upload (POST %s/uploads)", ds.Spec.Type, model.TypeImport, model.TypeUploaded, apiPrefix)
	}
	workspace, binding := body.Workspace, ""
	for _, b := range docs.Bindings {
		if b.Spec.DataSource != ds.Metadata.Name {
			return out, errorf(http.StatusBadRequest, "document: binding %s binds data source %s, not %s: send the binding of this data source, or none", b.Metadata.Name, b.Spec.DataSource, ds.Metadata.Name)
		}
		if workspace != "" && workspace != b.Spec.Workspace {
			return out, errorf(http.StatusBadRequest, "workspace %q contradicts binding %s, which binds %s to workspace %s: drop one of them", workspace, b.Metadata.Name, ds.Metadata.Name, b.Spec.Workspace)
		}
		workspace, binding = b.Spec.Workspace, b.Metadata.Name
	}
	switch {
	case workspace == "":
		return out, errorf(http.StatusBadRequest, "workspace: missing: name the workspace the data is for, or include an AnalyticsWorkspaceDataBinding in the document")
	case !model.ValidName(workspace):
		return out, errorf(http.StatusBadRequest, "workspace %q: %s", workspace, model.NameRule)
	}
	if body.Policy != "" && !model.ValidName(body.Policy) {
		return out, errorf(http.StatusBadRequest, "policy %q: not a policy name: %s", body.Policy, model.NameRule)
	}
	return requests.StartImport{DataSource: ds, Workspace: workspace, Binding: binding, Policy: body.Policy}, nil
}
