package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/uploads"
	"github.com/airlockhq/airlock/workflows"
)

// requestService is what the server needs of the requests package: the
// operations on requests through Temporal. Handler tests give it an
// in-memory stand-in that applies the same model rules.
type requestService interface {
	StartImport(ctx context.Context, in requests.StartImport) (string, error)
	StartUpload(ctx context.Context, in requests.StartUpload) (string, error)
	Status(ctx context.Context, id string) (model.RequestStatus, error)
	// Summary reads a request's search attributes without asking a
	// worker: what every tus request's authorisation needs, quickly.
	Summary(ctx context.Context, id string) (requests.Summary, error)
	List(ctx context.Context, f requests.Filter) (requests.Page, error)
	Decide(ctx context.Context, id string, d model.DecisionRequest) (workflows.DecisionResult, error)
	Cancel(ctx context.Context, id string, c model.CancelRequest) (workflows.CancelResult, error)
	ConfirmUpload(ctx context.Context, id string, c model.UploadConfirmation) (workflows.ConfirmUploadResult, error)
	egressService
}

// uploadReceiver is the tus endpoint that receives an upload request's
// files into staging, and what it can say about them.
type uploadReceiver interface {
	http.Handler
	Files(ctx context.Context, requestID string) ([]uploads.File, error)
	Expected(ctx context.Context, requestID string) ([]model.ExpectedFile, error)
}

// Paths of the API.
const (
	apiPrefix = "/api/v1"
	// filesPath is where the tus endpoint is mounted (uploads.Options.BasePath).
	filesPath = apiPrefix + "/files/"
	// maxBodyBytes bounds a JSON request body (an import's YAML document
	// travels inside one).
	maxBodyBytes = 1 << 20
	// via names this entry point in requests, decisions and cancellations.
	via = "api"
)

// server holds the API's dependencies. Build it with newServer, then set
// uploads (the tus handler needs the server's authorizeUpload).
type server struct {
	requests   requestService
	auth       *auth.Authenticator
	uploads    uploadReceiver
	staging    connectors.Store
	workspaces connectors.Store
	// limits and expireAfter are given to every upload request started.
	limits      model.UploadLimits
	expireAfter time.Duration
	// publicURL is the API's address as browsers reach it (no trailing /).
	publicURL string
	// temporalUI and namespace make "Open in Temporal UI" links.
	temporalUI string
	namespace  string
	// ready reports whether Temporal answers (for /readyz).
	ready  func(ctx context.Context) error
	logger *slog.Logger
	pages  *pages
	// apiPaths lists the methods each API path takes, for 405 answers.
	apiPaths map[string][]string
	// schedules manages import schedules (nil: no schedule routes).
	schedules scheduleService
	// egress is the configuration's egress block.
	egress egressSettings
}

// serverConfig is what newServer needs.
type serverConfig struct {
	Requests    requestService
	Auth        *auth.Authenticator
	Staging     connectors.Store
	Workspaces  connectors.Store
	Limits      model.UploadLimits
	ExpireAfter time.Duration
	PublicURL   string
	TemporalUI  string
	Namespace   string
	Ready       func(ctx context.Context) error
	Logger      *slog.Logger
	Schedules   scheduleService
	Egress      egressSettings
}

// newServer builds the server and its tus endpoint.
func newServer(c serverConfig) (*server, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	pg, err := loadPages()
	if err != nil {
		return nil, err
	}
	s := &server{
		requests: c.Requests, auth: c.Auth, staging: c.Staging, workspaces: c.Workspaces,
		limits: c.Limits, expireAfter: c.ExpireAfter,
		publicURL:  strings.TrimSuffix(c.PublicURL, "/"),
		temporalUI: strings.TrimSuffix(c.TemporalUI, "/"), namespace: c.Namespace,
		ready: c.Ready, logger: c.Logger, pages: pg, egress: c.Egress,
	}
	s.schedules = c.Schedules
	h, err := uploads.NewHandler(uploads.Options{
		Store:     c.Staging,
		Limits:    c.Limits,
		BasePath:  filesPath,
		Authorize: s.authorizeUpload,
		Logger:    c.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the upload endpoint: %w", err)
	}
	s.uploads = h
	return s, nil
}

// routes is the whole HTTP surface: the JSON API, the tus endpoint, the
// sign-in handler, the console and its static files.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)

	api := func(pattern string, h apiFunc) {
		mux.Handle(pattern, s.api(h))
		// The same path with any other method answers 405 in JSON.
		if method, path, ok := strings.Cut(pattern, " "); ok {
			if _, dup := s.apiPaths[path]; !dup {
				s.apiPaths[path] = []string{}
				mux.Handle(path, s.api(s.methodNotAllowed(path)))
			}
			s.apiPaths[path] = append(s.apiPaths[path], method)
		}
	}
	s.apiPaths = map[string][]string{}
	api("POST "+apiPrefix+"/imports", s.createImport)
	api("GET "+apiPrefix+"/requests", s.listRequests)
	api("GET "+apiPrefix+"/requests/{id}", s.getRequest)
	api("POST "+apiPrefix+"/requests/{id}/decisions", s.decide)
	api("POST "+apiPrefix+"/requests/{id}/cancel", s.cancel)
	api("GET "+apiPrefix+"/requests/{id}/crate", s.crate)
	api("GET "+apiPrefix+"/requests/{id}/preview", s.preview)
	api("POST "+apiPrefix+"/uploads", s.createUpload)
	api("GET "+apiPrefix+"/uploads/{id}/files", s.uploadFiles)
	api("POST "+apiPrefix+"/uploads/{id}/confirm", s.confirmUpload)
	api("GET "+apiPrefix+"/me", s.me)
	s.scheduleRoutes(api)
	s.egressRoutes(api)
	mux.Handle(apiPrefix+"/", s.api(func(w http.ResponseWriter, r *http.Request) error {
		return errorf(http.StatusNotFound, "no API route %s %s: see the routes under %s (docs/architecture.md)", r.Method, r.URL.Path, apiPrefix)
	}))
	// tus: creation at filesPath, each upload at filesPath<upload id>.
	mux.Handle(filesPath, s.uploads)
	mux.Handle(strings.TrimSuffix(filesPath, "/"), s.uploads)

	mux.Handle("/auth/", s.auth.Handler())
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	mux.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no folder listings
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	s.consoleRoutes(mux)
	return s.recoverPanics(s.logRequests(securityHeaders(s.auth.Middleware(s.csrfForSessions(mux)))))
}

// healthz says the process is up.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says whether the API can serve: Temporal answers and the staging
// store can be listed.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	if s.ready != nil {
		if err := s.ready(ctx); err != nil {
			checks["temporal"] = "unreachable: " + err.Error() + " (is the Temporal server running? set TEMPORAL_ADDRESS)"
			ok = false
		} else {
			checks["temporal"] = "ok"
		}
	}
	if _, err := s.staging.List(ctx, readyProbe); err != nil && !errors.Is(err, connectors.ErrNotFound) {
		checks["staging"] = "cannot list the staging store " + s.staging.URL("") + ": " + err.Error()
		ok = false
	} else {
		checks["staging"] = "ok"
	}
	status := http.StatusOK
	state := "ready"
	if !ok {
		status, state = http.StatusServiceUnavailable, "not ready"
	}
	writeJSON(w, status, map[string]any{"status": state, "checks": checks})
}

// readyProbe is a prefix /readyz lists: any valid prefix shows the store
// answers, and one that holds nothing keeps the probe cheap.
const readyProbe = "airlock-readyz-probe"

// me describes the signed-in caller: who they are and what they may do.
func (s *server) me(w http.ResponseWriter, r *http.Request) error {
	id, err := signedIn(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, id)
	return nil
}

// methodNotAllowed answers a known path called with the wrong method.
func (s *server) methodNotAllowed(path string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		allowed := strings.Join(s.apiPaths[path], ", ")
		w.Header().Set("Allow", allowed)
		return errorf(http.StatusMethodNotAllowed, "%s %s: this route takes %s", r.Method, r.URL.Path, allowed)
	}
}

// csrfForSessions refuses a state-changing API or tus request that a
// browser session authenticates unless it carries the session's CSRF token
// (header X-CSRF-Token), so another site cannot make a signed-in browser
// act. Console form POSTs check the token themselves (form field).
// Bearer-token and dev-header callers are not exposed to CSRF.
func (s *server) csrfForSessions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		id, ok := auth.FromContext(r.Context())
		if ok && id.Method == auth.MethodSession && strings.HasPrefix(r.URL.Path, apiPrefix+"/") && !s.auth.CheckCSRF(r) {
			writeError(w, errorf(http.StatusForbidden, "%s: missing or wrong CSRF token: a browser session sends the page's token in the %s header (reload the page and try again)", auth.CSRFHeader, auth.CSRFHeader))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders keeps pages from being framed, sniffed or leaking their
// address, and lets scripts and styles come only from this server.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		// The sign-in pages (/auth/) are the auth package's, with their
		// own inline style; every page of the console is covered.
		if !strings.HasPrefix(r.URL.Path, "/auth/") {
			h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		}
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status a handler wrote, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (tus uses it
// for read deadlines and flushing).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs every request: method, path, status, bytes, time and
// the remote address (never a token or a query string, which may hold one).
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || strings.HasPrefix(r.URL.Path, "/static/") {
			return
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.logger.Info("http", "method", r.Method, "path", r.URL.Path, "status", status, "bytes", rec.bytes,
			"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
	})
}

// recoverPanics turns a handler's panic into a 500 and a logged stack.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger.Error("handler panic", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				writeError(w, errorf(http.StatusInternalServerError, "internal error: the server logged the details"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
