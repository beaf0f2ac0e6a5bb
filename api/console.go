package main

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/preview"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/uploads"
)

// Console bounds.
const (
	// consolePreviews is how many of a request's files the request page
	// previews, and consolePreviewRows how many rows of each.
	consolePreviews    = 5
	consolePreviewRows = 10
	// consolePageSize is the rows of a list page.
	consolePageSize = 50
	// refreshSeconds reloads the page of a request whose data is moving.
	refreshSeconds = 3
)

// consoleRoutes adds the console pages to mux.
func (s *server) consoleRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.myRequestsPage)
	mux.HandleFunc("GET /queue", s.queuePage)
	mux.HandleFunc("GET /signin", s.signinPage)
	mux.HandleFunc("GET /requests/{id}", s.requestPage)
	mux.HandleFunc("POST /requests/{id}/decide", s.decideForm)
	mux.HandleFunc("POST /requests/{id}/cancel", s.cancelForm)
	mux.HandleFunc("GET /uploads/new", s.newUploadPage)
	mux.HandleFunc("POST /uploads/new", s.newUploadForm)
	mux.HandleFunc("GET /uploads/{id}", s.uploadPage)
	// Browsers ask for an icon on every page; there is none.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, r, errorf(http.StatusNotFound, "There is no page at %s.", r.URL.Path))
	})
}

// consoleUser returns the signed-in identity, or sends the browser to sign
// in (and back here afterwards).
func (s *server) consoleUser(w http.ResponseWriter, r *http.Request) (*auth.Identity, bool) {
	id, ok := auth.FromContext(r.Context())
	if !ok {
		next := r.URL.Path
		if r.Method != http.MethodGet {
			next = strings.TrimSuffix(strings.TrimSuffix(next, "/decide"), "/cancel")
		}
		http.Redirect(w, r, "/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
		return nil, false
	}
	return id, true
}

// checkForm parses a console form and checks its CSRF token.
func (s *server) checkForm(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return errorf(http.StatusBadRequest, "the form could not be read: %v", err)
	}
	if !s.auth.CheckCSRF(r) {
		return errorf(http.StatusForbidden, "The form is stale or did not come from Airlock (its %s field does not match your session). Go back, reload the page and try again.", auth.CSRFField)
	}
	return nil
}

// signinPage offers the sign-in: the identity provider, or in dev mode
// the directory's users (both through /auth/login).
func (s *server) signinPage(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		next = "/"
	}
	if _, ok := auth.FromContext(r.Context()); ok {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", Data: map[string]any{
		"Mode":     s.auth.Mode(),
		"LoginURL": "/auth/login?next=" + url.QueryEscape(next),
	}})
}

// listData is what the list pages show.
type listData struct {
	Heading   string
	Intro     string
	Rows      []requests.Summary
	Empty     string
	NextURL   string
	ShowQueue bool
}

// myRequestsPage: "/" — the requests the signed-in user asked for.
func (s *server) myRequestsPage(w http.ResponseWriter, r *http.Request) {
	ident, ok := s.consoleUser(w, r)
	if !ok {
		return
	}
	token := r.URL.Query().Get("page_token")
	pg, err := s.listFor(r, ident, requests.Filter{Requester: ident.Username, PageSize: consolePageSize, PageToken: token})
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	d := listData{
		Heading: "My requests",
		Intro:   "Imports and uploads you asked for, newest first.",
		Rows:    pg.Requests,
		Empty:   "You have not asked for any imports or uploads yet.",
	}
	if pg.NextPageToken != "" {
		d.NextURL = "/?page_token=" + url.QueryEscape(pg.NextPageToken)
	}
	s.render(w, r, http.StatusOK, "list", page{Title: "My requests", Data: d})
}

// queuePage: "/queue" — requests waiting on a role the user may approve.
func (s *server) queuePage(w http.ResponseWriter, r *http.Request) {
	ident, ok := s.consoleUser(w, r)
	if !ok {
		return
	}
	roles := ident.ApproveRoles()
	var rows []requests.Summary
	seen := map[string]bool{}
	for _, role := range roles {
		pg, err := s.listFor(r, ident, requests.Filter{State: string(model.StateAwaitingApproval), AwaitingRole: role, PageSize: consolePageSize})
		if err != nil {
			s.errorPage(w, r, err)
			return
		}
		for _, row := range pg.Requests {
			if !seen[row.ID] {
				seen[row.ID] = true
				rows = append(rows, row)
			}
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].StartedAt.After(rows[j].StartedAt) })
	d := listData{
		Heading: "Approval queue",
		Rows:    rows,
		Empty:   "Nothing is waiting for you.",
	}
	if len(roles) == 0 {
		d.Intro = "Your sign-in grants no approval role, so no request waits on you."
	} else {
		d.Intro = "Requests waiting on a stage of role " + strings.Join(roles, ", ") + ", newest first."
	}
	s.render(w, r, http.StatusOK, "list", page{Title: "Approval queue", Data: d})
}

// requestData is what the request page shows.
type requestData struct {
	St          model.RequestStatus
	Crate       crateInfo
	CrateError  string
	TemporalURL string
	Stage       *model.StageStatus // the open stage the user may decide
	Waiting     *model.StageStatus // the open stage
	CanCancel   bool
	IsRequester bool
	UploadURL   string // the upload page, while the requester may upload
	Previews    []filePreview
	Refused     string // the reason a decision just sent was refused
	Comment     string // the refused decision's comment, to edit
}

// filePreview is one previewed file.
type filePreview struct {
	Path  string
	Table preview.Table
	Error string
}

// requestPage: "/requests/{id}".
func (s *server) requestPage(w http.ResponseWriter, r *http.Request) {
	ident, ok := s.consoleUser(w, r)
	if !ok {
		return
	}
	s.showRequest(w, r, ident, r.PathValue("id"), http.StatusOK, "", "", "")
}

// showRequest renders a request's page, with a refusal when a decision or
// cancellation just sent was refused.
func (s *server) showRequest(w http.ResponseWriter, r *http.Request, ident *auth.Identity, id string, status int, refused, comment, pageErr string) {
	st, err := s.readable(r, ident, id)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	d := requestData{
		St:          st,
		TemporalURL: s.temporalUI + "/namespaces/" + url.PathEscape(s.namespace) + "/workflows/" + url.PathEscape(st.ID),
		IsRequester: st.Requester == ident.Username,
		Refused:     refused,
		Comment:     comment,
	}
	if i := st.CurrentStage(); i >= 0 && st.State == model.StateAwaitingApproval {
		d.Waiting = &st.Stages[i]
		if ident.CanApprove(d.Waiting.Role) && !d.IsRequester && !decided(*d.Waiting, ident.Username) {
			d.Stage = d.Waiting
		}
	}
	d.CanCancel = mayCancel(ident, st) && !st.State.Terminal() && st.State != model.StateReleasing
	if st.Kind == model.KindUpload && st.State == model.StateAwaitingUpload && d.IsRequester {
		d.UploadURL = "/uploads/" + url.PathEscape(st.ID)
	}
	store, key := s.crateLocation(st)
	if info, err := readCrate(r.Context(), store, key); err == nil {
		d.Crate = info
	} else if !isNotFound(err) {
		d.CrateError = err.Error()
	}
	for _, f := range st.Files {
		if len(d.Previews) == consolePreviews {
			break
		}
		if !preview.Supported(f.Path) {
			continue
		}
		fp := filePreview{Path: f.Path}
		if tab, err := s.previewFile(r, st, f.Path, consolePreviewRows, consoleSpoolBytes); err != nil {
			fp.Error = err.Error()
		} else {
			fp.Table = tab
		}
		d.Previews = append(d.Previews, fp)
	}
	p := page{Title: title(st), Error: pageErr, Data: d}
	if moving(st.State) {
		p.Refresh = refreshSeconds
	}
	s.render(w, r, status, "request", p)
}

// decided reports whether user has decided stage already.
func decided(stage model.StageStatus, user string) bool {
	return slices.ContainsFunc(stage.Decisions, func(d model.DecisionRecord) bool { return d.By == user })
}

// moving reports a state in which the request changes without anyone
// acting, so its page reloads itself.
func moving(s model.State) bool {
	switch s {
	case model.StateExtracting, model.StateChecking, model.StateReleasing:
		return true
	}
	return false
}

func title(st model.RequestStatus) string {
	if st.DisplayName != "" {
		return st.DisplayName
	}
	return st.ID
}

// decideForm: POST /requests/{id}/decide (stage, decision, comment,
// manifest_digest, csrf_token). A refused decision shows the request page
// again with the reason (409).
func (s *server) decideForm(w http.ResponseWriter, r *http.Request) {
	ident, ok := s.consoleUser(w, r)
	if !ok {
		return
	}
	if err := s.checkForm(r); err != nil {
		s.errorPage(w, r, err)
		return
	}
	id := r.PathValue("id")
	body := decisionBody{
		Stage: r.PostForm.Get("stage"), Decision: r.PostForm.Get("decision"),
		Comment: r.PostForm.Get("comment"), ManifestDigest: r.PostForm.Get("manifest_digest"),
	}
	if _, err := s.decideAs(r, ident, id, body); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status != http.StatusNotFound {
			s.showRequest(w, r, ident, id, ae.Status, ae.Message, body.Comment, "")
			return
		}
		s.errorPage(w, r, err)
		return
	}
	http.Redirect(w, r, "/requests/"+url.PathEscape(id), http.StatusSeeOther)
}

// cancelForm: POST /requests/{id}/cancel (reason, csrf_token).
func (s *server) cancelForm(w http.ResponseWriter, r *http.Request) {
	ident, ok := s.consoleUser(w, r)
	if !ok {
		return
	}
	if err := s.checkForm(r); err != nil {
		s.errorPage(w, r, err)
		return
	}
	id := r.PathValue("id")
	if _, err := s.cancelAs(r, ident, id, r.PostForm.Get("reason")); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status != http.StatusNotFound {
			s.showRequest(w, r, ident, id, ae.Status, "", "", "Cancellation refused: "+ae.Message)
			return
		}
		s.errorPage(w, r, err)
		return
	}
	http.Redirect(w, r, "/requests/"+url.PathEscape(id), http.StatusSeeOther)
}

// newUploadData is the new-upload form's values and choices.
type newUploadData struct {
	Form     uploadBody
	Projects []string // the projects the user may upload to; nil with upload:*
}

// newUploadPage: GET /uploads/new.
func (s *server) newUploadPage(w http.ResponseWriter, r *http.Request) {
	ident, ok := s.consoleUser(w, r)
	if !ok {
		return
	}
	d := newUploadData{Projects: choosableProjects(ident)}
	d.Form.Publisher.Contact.Name = ident.Name
	d.Form.Publisher.Contact.Email = ident.Email
	if len(d.Projects) == 1 {
		d.Form.Project = d.Projects[0]
	}
	status, msg := http.StatusOK, ""
	if !canUploadAny(ident) {
		status, msg = http.StatusForbidden, "Your sign-in grants no upload capability (upload:<project>), so you cannot start an upload. Ask for one."
	}
	s.render(w, r, status, "upload_new", page{Title: "New upload", Error: msg, Data: d})
}

// choosableProjects lists the projects for the form's project choice; nil
// when the user may upload to any (a free-text field then).
func choosableProjects(ident *auth.Identity) []string {
	ps := uploadProjects(ident)
	if slices.Contains(ps, "*") {
		return nil
	}
	return ps
}

// newUploadForm: POST /uploads/new — starts the upload request and goes to
// its upload page.
func (s *server) newUploadForm(w http.ResponseWriter, r *http.Request) {
	ident, ok := s.consoleUser(w, r)
	if !ok {
		return
	}
	if err := s.checkForm(r); err != nil {
		s.errorPage(w, r, err)
		return
	}
	f := r.PostForm
	body := uploadBody{
		Project: strings.TrimSpace(f.Get("project")), Workspace: strings.TrimSpace(f.Get("workspace")),
		DisplayName: f.Get("display_name"), Description: f.Get("description"), License: f.Get("license"),
		Policy: strings.TrimSpace(f.Get("policy")),
		Publisher: model.Publisher{Organisation: f.Get("publisher_organisation"), Contact: model.Contact{
			Name: f.Get("publisher_contact_name"), Role: f.Get("publisher_contact_role"), Email: f.Get("publisher_contact_email"),
		}},
	}
	res, err := s.startUpload(r, ident, body)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = s.unexpected(r, err)
		}
		s.render(w, r, ae.Status, "upload_new", page{Title: "New upload", Error: ae.Message,
			Data: newUploadData{Form: body, Projects: choosableProjects(ident)}})
		return
	}
	http.Redirect(w, r, "/uploads/"+url.PathEscape(res.ID), http.StatusSeeOther)
}

// uploadData is what the upload page shows.
type uploadData struct {
	St         model.RequestStatus
	Files      []uploads.File
	Limits     model.UploadLimits
	Accepting  bool // AWAITING_UPLOAD: files may be added and confirmed
	Endpoint   string
	ConfirmURL string
	FilesURL   string
	RequestURL string
}

// uploadPage: GET /uploads/{id} — the requester's page to send files and
// confirm them.
func (s *server) uploadPage(w http.ResponseWriter, r *http.Request) {
	ident, ok := s.consoleUser(w, r)
	if !ok {
		return
	}
	st, err := s.readable(r, ident, r.PathValue("id"))
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	if st.Kind != model.KindUpload {
		s.errorPage(w, r, errorf(http.StatusNotFound, "Request %s is an %s, not an upload: it has no upload page.", st.ID, st.Kind))
		return
	}
	if st.Requester != ident.Username {
		s.errorPage(w, r, errorf(http.StatusForbidden, "Only the requester of %s (%s) uploads its files.", st.ID, st.Requester))
		return
	}
	files, err := s.uploads.Files(r.Context(), st.ID)
	if err != nil {
		s.errorPage(w, r, err)
		return
	}
	d := uploadData{
		St: st, Files: files, Limits: s.limits, Accepting: st.State == model.StateAwaitingUpload,
		Endpoint:   filesPath,
		ConfirmURL: apiPrefix + "/uploads/" + url.PathEscape(st.ID) + "/confirm",
		FilesURL:   apiPrefix + "/uploads/" + url.PathEscape(st.ID) + "/files",
		RequestURL: "/requests/" + url.PathEscape(st.ID),
	}
	p := page{Title: "Upload: " + title(st), Data: d}
	if st.State == model.StateChecking {
		p.Refresh = refreshSeconds
	}
	s.render(w, r, http.StatusOK, "upload", p)
}
