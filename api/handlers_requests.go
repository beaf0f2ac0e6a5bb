package main

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/preview"
	"github.com/airlockhq/airlock/requests"
)

// checkQuery refuses query parameters a route does not take, naming them.
func checkQuery(q url.Values, allowed ...string) error {
	for k := range q {
		if !slices.Contains(allowed, k) {
			return errorf(http.StatusBadRequest, "%s: unknown query parameter (this route takes %s)", k, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// listRequests: GET /api/v1/requests?state=&kind=&project=&awaiting_role=&mine=true&page_size=&page_token=
// Rows the caller may not read are left out.
func (s *server) listRequests(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := checkQuery(q, "state", "kind", "project", "awaiting_role", "mine", "page_size", "page_token"); err != nil {
		return err
	}
	f := requests.Filter{
		State: q.Get("state"), Kind: q.Get("kind"), Project: q.Get("project"),
		AwaitingRole: q.Get("awaiting_role"), PageToken: q.Get("page_token"),
	}
	if v := q.Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > requests.MaxPageSize {
			return errorf(http.StatusBadRequest, "page_size %q: expected a whole number from 1 to %d (default %d)", v, requests.MaxPageSize, requests.DefaultPageSize)
		}
		f.PageSize = n
	}
	if v := q.Get("mine"); v != "" {
		mine, err := strconv.ParseBool(v)
		if err != nil {
			return errorf(http.StatusBadRequest, "mine %q: expected true or false", v)
		}
		if mine {
			f.Requester = ident.Username
		}
	}
	page, err := s.listFor(r, ident, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// listFor lists one page and keeps the rows ident may read. A caller who
// can only read their own requests is listed by requester, so that their
// pages are not emptied by the filtering.
func (s *server) listFor(r *http.Request, ident *auth.Identity, f requests.Filter) (requests.Page, error) {
	if f.Requester == "" && ownOnly(ident) {
		f.Requester = ident.Username
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	page, err := s.requests.List(ctx, f)
	if err != nil {
		return requests.Page{}, s.serviceError("", err)
	}
	rows := make([]requests.Summary, 0, len(page.Requests))
	for _, row := range page.Requests {
		if ident.CanReadSummary(row.Requester, row.Project, row.AwaitingRole) {
			rows = append(rows, row)
		}
	}
	page.Requests = rows
	return page, nil
}

// ownOnly reports whether ident reads nothing but its own requests.
func ownOnly(ident *auth.Identity) bool {
	c := ident.Caps
	return !c.ReadsAll() && len(c.ReadProjects()) == 0 && len(c.ApproveRoles()) == 0
}

// getRequest: GET /api/v1/requests/{id} — the state document.
func (s *server) getRequest(w http.ResponseWriter, r *http.Request) error {
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
	writeJSON(w, http.StatusOK, st)
	return nil
}

// decisionBody is a decision as the API takes it. Who decides is the
// verified caller, never a field.
type decisionBody struct {
	Stage          string `json:"stage"`
	Decision       string `json:"decision"`
	Comment        string `json:"comment"`
	ManifestDigest string `json:"manifest_digest"`
}

// decide: POST /api/v1/requests/{id}/decisions.
func (s *server) decide(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body decisionBody
	if err := decodeBody(w, r, &body, false); err != nil {
		return err
	}
	id := r.PathValue("id")
	res, err := s.decideAs(r, ident, id, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// decideAs checks that ident may decide the stage and sends the decision.
// The workflow applies every other rule (requester, one stage per person,
// manifest digest) and its refusal comes back as 409 with its reason.
func (s *server) decideAs(r *http.Request, ident *auth.Identity, id string, body decisionBody) (any, error) {
	st, err := s.readable(r, ident, id)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(body.Stage) == "" {
		return nil, errorf(http.StatusBadRequest, "stage: missing: name the stage you decide (this request's stages: %s)", stageNames(st))
	}
	for _, stage := range st.Stages {
		if stage.Name == body.Stage && !ident.CanApprove(stage.Role) {
			return nil, errorf(http.StatusForbidden, "%s may not decide stage %q of request %s: it needs the capability approve:%s, which your sign-in does not grant", ident.Username, stage.Name, id, stage.Role)
		}
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	res, err := s.requests.Decide(ctx, id, model.DecisionRequest{
		Stage: body.Stage, By: ident.Username, Decision: body.Decision, Comment: body.Comment,
		ManifestDigest: body.ManifestDigest, Via: via, Roles: ident.ApproveRoles(),
	})
	if err != nil {
		return nil, s.serviceError(id, err)
	}
	return res, nil
}

func stageNames(st model.RequestStatus) string {
	var names []string
	for _, s := range st.Stages {
		names = append(names, s.Name)
	}
	if len(names) == 0 {
		return "none yet"
	}
	return strings.Join(names, ", ")
}

// cancelBody asks to stop a request.
type cancelBody struct {
	Reason string `json:"reason"`
}

// cancel: POST /api/v1/requests/{id}/cancel.
func (s *server) cancel(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body cancelBody
	if err := decodeBody(w, r, &body, true); err != nil {
		return err
	}
	res, err := s.cancelAs(r, ident, r.PathValue("id"), body.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// cancelAs checks that ident may cancel the request (its requester, or
// someone who may approve one of its stages) and sends the cancellation.
func (s *server) cancelAs(r *http.Request, ident *auth.Identity, id, reason string) (any, error) {
	st, err := s.readable(r, ident, id)
	if err != nil {
		return nil, err
	}
	if !mayCancel(ident, st) {
		return nil, errorf(http.StatusForbidden, "%s may not cancel request %s: only its requester (%s) or someone who may approve one of its stages (%s) may", ident.Username, id, st.Requester, stageRoles(st))
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	res, err := s.requests.Cancel(ctx, id, model.CancelRequest{By: ident.Username, Reason: reason, Via: via, Roles: ident.ApproveRoles()})
	if err != nil {
		return nil, s.serviceError(id, err)
	}
	return res, nil
}

func mayCancel(ident *auth.Identity, st model.RequestStatus) bool {
	if ident.Username == st.Requester {
		return true
	}
	for _, stage := range st.Stages {
		if ident.CanApprove(stage.Role) {
			return true
		}
	}
	return false
}

func stageRoles(st model.RequestStatus) string {
	var roles []string
	for _, s := range st.Stages {
		if !slices.Contains(roles, "approve:"+s.Role) {
			roles = append(roles, "approve:"+s.Role)
		}
	}
	if len(roles) == 0 {
		return "none yet"
	}
	return strings.Join(roles, ", ")
}

// crateLocation says where a request's crate is: in its workspace once
// released, in staging before.
func (s *server) crateLocation(st model.RequestStatus) (connectors.Store, string) {
	if st.State == model.StateCompleted {
		return s.workspaces, path.Join(activities.WorkspacePrefix(st.Workspace, st.DataSource, st.ID), activities.CrateFile)
	}
	return s.staging, path.Join(activities.StagingPrefix(st.ID), activities.CrateFile)
}

// fileLocation says where one of a request's files is, as crateLocation.
func (s *server) fileLocation(st model.RequestStatus, file string) (connectors.Store, string) {
	if st.State == model.StateCompleted {
		return s.workspaces, path.Join(activities.WorkspacePrefix(st.Workspace, st.DataSource, st.ID), file)
	}
	return s.staging, path.Join(activities.StagingPrefix(st.ID), file)
}

// crate: GET /api/v1/requests/{id}/crate — ro-crate-metadata.json.
func (s *server) crate(w http.ResponseWriter, r *http.Request) error {
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
	store, key := s.crateLocation(st)
	rc, err := store.Open(r.Context(), key)
	if err != nil {
		if errors.Is(err, connectors.ErrNotFound) {
			return errorf(http.StatusNotFound, "request %s has no crate now (it is %s): a crate is written once the files are in staging and checked, and is removed from staging when a request ends without release", st.ID, st.State)
		}
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/ld+json")
	w.Header().Set("Content-Disposition", `inline; filename="`+activities.CrateFile+`"`)
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, rc)
	if err != nil {
		s.logger.Warn("sending a crate", "request", st.ID, "error", err)
	}
	return nil
}

// preview: GET /api/v1/requests/{id}/preview?path=...&rows=20 — the first
// rows of one of the request's CSV, TSV or Parquet files.
func (s *server) preview(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := checkQuery(q, "path", "rows"); err != nil {
		return err
	}
	rows := preview.DefaultRows
	if v := q.Get("rows"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > preview.MaxRows {
			return errorf(http.StatusBadRequest, "rows %q: expected a whole number from 1 to %d (default %d)", v, preview.MaxRows, preview.DefaultRows)
		}
		rows = n
	}
	st, err := s.readable(r, ident, r.PathValue("id"))
	if err != nil {
		return err
	}
	tab, err := s.previewFile(r, st, q.Get("path"), rows, maxSpoolBytes)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tab)
	return nil
}

// previewFile reads the first rows of one of st's files.
func (s *server) previewFile(r *http.Request, st model.RequestStatus, file string, rows int, spoolLimit int64) (preview.Table, error) {
	if file == "" {
		return preview.Table{}, errorf(http.StatusBadRequest, "path: missing: name one of the request's files (the files list of GET %s/requests/%s)", apiPrefix, st.ID)
	}
	var rec *model.FileRecord
	for i := range st.Files {
		if st.Files[i].Path == file {
			rec = &st.Files[i]
		}
	}
	if rec == nil {
		if len(st.Files) == 0 {
			return preview.Table{}, errorf(http.StatusNotFound, "path %q: request %s has no files to preview yet (it is %s): files are listed once they are in staging and checked", file, st.ID, st.State)
		}
		return preview.Table{}, errorf(http.StatusNotFound, "path %q: not one of request %s's files (the files list of GET %s/requests/%s)", file, st.ID, apiPrefix, st.ID)
	}
	if !preview.Supported(file) {
		return preview.Table{}, errorf(http.StatusUnprocessableEntity, "path %q: no preview for this kind of file: previews are made of .csv, .tsv and .parquet files", file)
	}
	store, key := s.fileLocation(st, file)
	tab, err := readPreview(r.Context(), store, key, file, rec.Size, rows, spoolLimit)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			return preview.Table{}, ae
		}
		if errors.Is(err, connectors.ErrNotFound) {
			return preview.Table{}, errorf(http.StatusNotFound, "path %q: the file is no longer in %s (request %s is %s)", file, storeZone(st), st.ID, st.State)
		}
		return preview.Table{}, errorf(http.StatusUnprocessableEntity, "path %q: cannot preview: %v", file, err)
	}
	return tab, nil
}

func storeZone(st model.RequestStatus) string {
	if st.State == model.StateCompleted {
		return "its workspace"
	}
	return "staging"
}

// previewTooLarge explains a file too large to preview from a store that
// cannot read at offsets.
func previewTooLarge(file string, size, limit int64) *apiError {
	return errorf(http.StatusUnprocessableEntity, "path %q: %s is too large to preview from this store here (at most %s): use GET %s/requests/{id}/preview, which copies up to %s", file, model.FormatBytes(size), model.FormatBytes(limit), apiPrefix, model.FormatBytes(maxSpoolBytes))
}
