package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/uploads"
)

// UploadedLabel marks a data source made for an upload, as the platform's
// upload front end labels them.
const (
	typeLabel     = "xlscsde.nhs.uk/type"
	uploadedLabel = "uploaded"
)

// uploadBody starts an upload request: what the data is and who publishes
// it, the project and workspace it is for, and optionally an approval
// policy.
type uploadBody struct {
	Workspace   string          `json:"workspace"`
	Project     string          `json:"project"`
	DisplayName string          `json:"display_name"`
	Description string          `json:"description"`
	License     string          `json:"license"`
	Publisher   model.Publisher `json:"publisher"`
	Policy      string          `json:"policy"`
}

// uploadCreated answers a new upload request: its id, where its files go
// (the tus endpoint) and where to follow it.
type uploadCreated struct {
	ID    string      `json:"id"`
	State model.State `json:"state"`
	// FilesURL is the tus endpoint: create each file there with metadata
	// request=<id> and filename=<path>.
	FilesURL string `json:"files_url"`
	// StatusURL is the request's state document; ConfirmURL confirms the
	// upload once every file is there; PageURL is its console page.
	StatusURL  string `json:"status_url"`
	ConfirmURL string `json:"confirm_url"`
	PageURL    string `json:"page_url"`
}

// createUpload: POST /api/v1/uploads -> 201 uploadCreated.
func (s *server) createUpload(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body uploadBody
	if err := decodeBody(w, r, &body, false); err != nil {
		return err
	}
	res, err := s.startUpload(r, ident, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}

// startUpload checks an upload request, builds its data source and starts
// it with the configured limits and expiry.
func (s *server) startUpload(r *http.Request, ident *auth.Identity, body uploadBody) (uploadCreated, error) {
	ds, err := uploadDataSource(body, ident)
	if err != nil {
		return uploadCreated{}, err
	}
	if !ident.CanUpload(body.Project) {
		return uploadCreated{}, errorf(http.StatusForbidden, "%s may not upload data for project %s: it needs the capability upload:%s (or upload:*), which your sign-in does not grant", ident.Username, body.Project, body.Project)
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	id, err := s.requests.StartUpload(ctx, requests.StartUpload{
		DataSource: ds, Workspace: body.Workspace, Requester: ident.Username, Policy: body.Policy, Via: via,
		Limits: s.limits, ExpireAfter: s.expireAfter,
	})
	if err != nil {
		return uploadCreated{}, s.serviceError("", err)
	}
	return uploadCreated{
		ID: id, State: model.StateAwaitingUpload,
		FilesURL:   s.publicURL + filesPath,
		StatusURL:  s.publicURL + apiPrefix + "/requests/" + id,
		ConfirmURL: s.publicURL + apiPrefix + "/uploads/" + id + "/confirm",
		PageURL:    s.publicURL + "/uploads/" + id,
	}, nil
}

// uploadDataSource builds the AnalyticsWorkspaceDataSource of an upload,
// shaped as the platform's upload front end writes one: named ds-<32 hex>,
// labelled uploaded, type Uploaded, one pvc connection pvc-<same hex>. The
// publisher's contact defaults to the uploader.
func uploadDataSource(body uploadBody, ident *auth.Identity) (model.DataSource, error) {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	switch {
	case body.Project == "":
		bad("project: missing: give the id of the project the data is for")
	case !model.ValidName(body.Project):
		bad("project %q: not a project id: %s", body.Project, model.NameRule)
	}
	switch {
	case body.Workspace == "":
		bad("workspace: missing: name the workspace the data is for")
	case !model.ValidName(body.Workspace):
		bad("workspace %q: %s", body.Workspace, model.NameRule)
	}
	if strings.TrimSpace(body.DisplayName) == "" {
		bad("display_name: missing: give the dataset a human-readable name")
	}
	if strings.TrimSpace(body.Publisher.Organisation) == "" {
		bad("publisher.organisation: missing: name the organisation that publishes the data")
	}
	if body.Policy != "" && !model.ValidName(body.Policy) {
		bad("policy %q: not a policy name: %s", body.Policy, model.NameRule)
	}
	if len(problems) > 0 {
		return model.DataSource{}, errorf(http.StatusBadRequest, "%s", strings.Join(problems, "; "))
	}
	pub := body.Publisher
	if strings.TrimSpace(pub.Contact.Name) == "" {
		pub.Contact.Name = ident.Name
		if pub.Contact.Name == "" {
			pub.Contact.Name = ident.Username
		}
		if pub.Contact.Email == "" {
			pub.Contact.Email = ident.Email
		}
	}
	suffix := randomHex()
	ds := model.DataSource{
		APIVersion: model.APIVersion,
		Kind:       model.KindDataSource,
		Metadata:   model.ObjectMeta{Name: "ds-" + suffix, Labels: map[string]string{typeLabel: uploadedLabel}},
		Spec: model.DataSourceSpec{
			Type:        model.TypeUploaded,
			Publisher:   pub,
			Project:     model.Project{ID: body.Project},
			DisplayName: strings.TrimSpace(body.DisplayName),
			Description: body.Description,
			License:     body.License,
			Connections: []model.Connection{{Type: model.ConnPVC, Name: "pvc-" + suffix}},
		},
	}
	if errs := ds.Validate(); len(errs) > 0 {
		return model.DataSource{}, errorf(http.StatusBadRequest, "%s", joinFieldErrors(errs))
	}
	return ds, nil
}

// randomHex is 32 random hex digits, as the platform names uploads.
func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// uploadFiles: GET /api/v1/uploads/{id}/files — the files uploaded so far
// (finished or not) and their offsets.
func (s *server) uploadFiles(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	st, err := s.readable(r, ident, r.PathValue("id"))
	if err != nil {
		return err
	}
	if st.Kind != model.KindUpload {
		return errorf(http.StatusNotFound, "request %s is an %s, not an upload: it has no uploaded files", st.ID, st.Kind)
	}
	files, err := s.uploads.Files(r.Context(), st.ID)
	if err != nil {
		return err
	}
	if files == nil {
		files = []uploads.File{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"files": files, "state": st.State, "limits": s.limits})
	return nil
}

// confirmBody is empty: the files confirmed are those uploaded. It is a
// struct so that fields such as by are refused by name.
type confirmBody struct{}

// confirmUpload: POST /api/v1/uploads/{id}/confirm — the uploader says
// every file is there; the request moves on to CHECKING.
func (s *server) confirmUpload(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body confirmBody
	if err := decodeBody(w, r, &body, true); err != nil {
		return err
	}
	res, err := s.confirmAs(r, ident, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// confirmAs confirms an upload for its requester with the files uploaded.
func (s *server) confirmAs(r *http.Request, ident *auth.Identity, id string) (any, error) {
	st, err := s.readable(r, ident, id)
	if err != nil {
		return nil, err
	}
	if st.Kind != model.KindUpload {
		return nil, errorf(http.StatusConflict, "request %s is an %s, not an upload: there is nothing to confirm", st.ID, st.Kind)
	}
	if st.Requester != ident.Username {
		return nil, errorf(http.StatusForbidden, "%s may not confirm request %s: only its requester (%s), who uploads the files, confirms them", ident.Username, st.ID, st.Requester)
	}
	if st.State != model.StateAwaitingUpload {
		return nil, errorf(http.StatusConflict, "request %s is %s: an upload is confirmed only while it is %s", st.ID, st.State, model.StateAwaitingUpload)
	}
	files, err := s.uploads.Expected(r.Context(), st.ID)
	if err != nil {
		// An unfinished file is a refusal that names it (409); anything
		// else is a failure to read the bookkeeping.
		var hs interface{ HTTPStatus() int }
		if errors.As(err, &hs) {
			return nil, errorf(hs.HTTPStatus(), "%v", err)
		}
		return nil, fmt.Errorf("listing the uploaded files of request %s: %w", st.ID, err)
	}
	if len(files) == 0 {
		return nil, errorf(http.StatusConflict, "request %s has no uploaded files: upload at least one file (tus, at %s) before confirming", st.ID, filesPath)
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	res, err := s.requests.ConfirmUpload(ctx, st.ID, model.UploadConfirmation{By: ident.Username, Files: files, Via: via})
	if err != nil {
		return nil, s.serviceError(st.ID, err)
	}
	return res, nil
}

// authorizeUpload lets a tus request through only for an upload request
// the caller started and that is waiting for its files. A request the
// caller may not read answers as a missing one.
func (s *server) authorizeUpload(r *http.Request, requestID string) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	// Every PATCH of every chunk passes here, so the request is read from
	// the server's record of the run (its search attributes), not queried
	// from a worker.
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	st, err := s.requests.Summary(ctx, requestID)
	if err != nil {
		return s.serviceError(requestID, err)
	}
	if !ident.CanReadSummary(st.Requester, st.Project, st.AwaitingRole) {
		return notFound(requestID)
	}
	switch {
	case st.Kind != string(model.KindUpload):
		return errorf(http.StatusConflict, "request %s is an %s, not an upload: it takes no uploaded files", st.ID, st.Kind)
	case st.Requester != ident.Username:
		return errorf(http.StatusForbidden, "%s may not upload files to request %s: only its requester (%s) uploads", ident.Username, st.ID, st.Requester)
	case st.State != string(model.StateAwaitingUpload):
		return errorf(http.StatusConflict, "request %s is %s: files are accepted only while it is %s", st.ID, st.State, model.StateAwaitingUpload)
	}
	return nil
}
