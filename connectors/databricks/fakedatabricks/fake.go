// Package fakedatabricks is a fake Databricks workspace for tests: an HTTP
// server that speaks the parts of the public REST API Airlock's databricks
// connector uses, strictly and with the documented field names and shapes,
// plus a second server standing in for the cloud storage that result links
// point to. Tables are defined in Go (columns with SQL types and a function
// that gives each row's values); Unity Catalog volume files are byte slices.
//
// Documented behaviours the fake covers:
//
//   - Authentication on every /api/ endpoint: a personal access token
//     (Authorization: Bearer), basic auth (Authorization: Basic), or an OAuth
//     token issued by the fake's machine-to-machine flow. A request without
//     valid credentials gets 401 with {"error_code","message"}.
//   - OAuth M2M for service principals as the SDKs discover it:
//     GET /oidc/.well-known/oauth-authorization-server names the token
//     endpoint, and POST /oidc/v1/token grants client_credentials (client
//     authentication by HTTP Basic or form fields, scope all-apis) with
//     {"access_token","token_type","expires_in","scope"}.
//   - SQL Statement Execution API 2.0: POST /api/2.0/sql/statements,
//     GET /api/2.0/sql/statements/{statement_id},
//     POST /api/2.0/sql/statements/{statement_id}/cancel and
//     GET /api/2.0/sql/statements/{statement_id}/result/chunks/{chunk_index}.
//     Requests are validated as the API documents them: warehouse_id and
//     statement are required and the warehouse must exist; disposition is
//     INLINE (default) or EXTERNAL_LINKS; format is JSON_ARRAY (default),
//     ARROW_STREAM or CSV, and ARROW_STREAM and CSV are refused with INLINE;
//     wait_timeout is 0s or 5s..50s; on_wait_timeout is CONTINUE or CANCEL;
//     unknown request fields are refused. Responses carry statement_id,
//     status{state, error{error_code, message}}, manifest{format,
//     schema{column_count, columns[{name, type_text, type_name, position,
//     type_precision, type_scale}]}, total_chunk_count, chunks[{chunk_index,
//     row_offset, row_count, byte_count}], total_row_count, total_byte_count,
//     truncated} and result{external_links[{chunk_index, row_offset,
//     row_count, byte_count, external_link, expiration, http_headers,
//     next_chunk_index, next_chunk_internal_link}]}. A statement goes through
//     PENDING and RUNNING (Options.PendingPolls, RunningPolls) to SUCCEEDED,
//     or to FAILED reported as HTTP 200 with status.error (a missing table:
//     BAD_REQUEST with [TABLE_OR_VIEW_NOT_FOUND], an unparsable statement:
//     BAD_REQUEST with [PARSE_SYNTAX_ERROR], or Table.Fail). Cancel moves a
//     statement that has not finished to CANCELED; with wait_timeout > 0s and
//     on_wait_timeout CANCEL an unfinished statement is CANCELED at once.
//     row_limit trims the result and sets manifest.truncated, as does
//     Table.Truncated (standing for byte_limit). The chunk endpoint accepts
//     only a SUCCEEDED statement and a chunk index in [0, total_chunk_count).
//   - Result chunks as Apache Arrow IPC streams behind presigned links on a
//     separate host (Server.StorageURL), as cloud storage behaves: a request
//     that carries an Authorization header is refused with 400 (presigned
//     URLs must not get the workspace's credentials), a request without the
//     link's http_headers (a fake SSE-C key header) is refused with 400, an
//     expired link is refused with 403 "Request has expired", and an unknown
//     signature with 403. Links expire after Options.LinkTTL.
//   - Files API 2.0 for Unity Catalog volumes: GET and HEAD
//     /api/2.0/fs/files{path} (Content-Length, Content-Type, Last-Modified;
//     Range requests answered 206 with Content-Range, 416 when
//     unsatisfiable; If-Unmodified-Since answered 412 when the file changed),
//     GET /api/2.0/fs/directories{path} with page_size and page_token paging
//     ({"contents":[{path, is_directory, file_size, last_modified, name}],
//     "next_page_token"}; a page_token is refused when the other parameters
//     differ from the request that produced it) and HEAD
//     /api/2.0/fs/directories{path}. Paths must be /Volumes/<catalog>/
//     <schema>/<volume>/...; a missing path is 404 NOT_FOUND.
//   - Throttling and outages: FailNextAPI and FailNextLinks make the next
//     requests answer 429 or 503 with a Retry-After header.
//
// Documented behaviours the fake does not cover:
//
//   - Statement results other than EXTERNAL_LINKS + ARROW_STREAM (INLINE,
//     JSON_ARRAY and CSV results are valid requests that the fake answers with
//     501), statement parameters and query tags (501), and SQL beyond
//     "SELECT * FROM <name>" and the exact statements listed in
//     Options.Queries.
//   - Real waiting: wait_timeout is validated but the fake answers at once,
//     as if the wait had elapsed; states advance one step per poll.
//   - CLOSED statements, warehouse start-up, the SQL Warehouses API,
//     several links in one external_links answer, LZ4-compressed
//     Arrow batches, complex types as native Arrow (ARRAY, MAP, STRUCT and
//     INTERVAL values are sent as JSON text in utf8 columns), the sql_state
//     field, and byte_limit (only row_limit is applied).
//   - Files API writes (PUT, DELETE, directory creation), Files API 3.0,
//     DBFS, workspace files, and account-level or Azure/GCP-specific
//     authentication; OAuth U2M and token refresh.
package fakedatabricks

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Options configure a fake workspace.
type Options struct {
	// Token is a personal access token the workspace accepts ("" for none).
	Token string
	// Username and Password are basic-auth credentials the workspace accepts.
	Username, Password string
	// ClientID and ClientSecret are a service principal's OAuth secret, for
	// the machine-to-machine flow.
	ClientID, ClientSecret string
	// TokenTTL is the lifetime of issued OAuth tokens (default one hour).
	TokenTTL time.Duration

	// WarehouseID is the only SQL warehouse the workspace has.
	WarehouseID string
	// DefaultCatalog and DefaultSchema qualify table names a statement does
	// not qualify when the request names no catalog or schema (defaults
	// "main" and "default").
	DefaultCatalog, DefaultSchema string
	// Tables by fully qualified name, catalog.schema.table (case-insensitive).
	Tables map[string]*Table
	// Queries map a statement's exact text to the fully qualified name of the
	// table in Tables that is its result.
	Queries map[string]string
	// ChunkRows is the number of rows per result chunk (default 1000) and
	// BatchRows the number of rows per Arrow record batch within a chunk
	// (default 250).
	ChunkRows, BatchRows int64
	// PendingPolls and RunningPolls are how many responses (the execute
	// response, then one per poll) report PENDING and then RUNNING before a
	// statement finishes. Both zero: the execute response has the result.
	PendingPolls, RunningPolls int
	// LinkTTL is how long a result link stays valid (default 15 minutes).
	LinkTTL time.Duration
	// ExpireFirstFetch lists chunk indexes whose first link fetch, in every
	// statement, is refused as expired although the link's expiration has
	// not passed (the link expired in flight).
	ExpireFirstFetch []int
	// PastExpiration lists chunk indexes whose first issued link, in every
	// statement, carries an expiration already in the past; it is refused
	// if fetched.
	PastExpiration []int

	// Files are the files in Unity Catalog volumes, by absolute path
	// (/Volumes/<catalog>/<schema>/<volume>/...). Their modification time is
	// the server's start.
	Files map[string][]byte
	// Dirs are extra (possibly empty) directories inside volumes.
	Dirs []string
	// ListPageSize caps the entries of a directory listing page below the
	// API's 1000.
	ListPageSize int
}

// Column is a table column: its name and SQL type as Databricks writes it in
// type_text: BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE,
// DECIMAL(p,s), STRING, CHAR(n), VARCHAR(n), BINARY, DATE, TIMESTAMP,
// TIMESTAMP_NTZ, ARRAY<...>, MAP<...>, STRUCT<...>, INTERVAL ..., VOID.
type Column struct {
	Name string
	Type string
}

// Table is a table's columns and rows.
type Table struct {
	Columns []Column
	Rows    int64
	// Value returns the value of row in column col: nil for NULL, otherwise
	// bool; an integer (any Go integer type that fits the column); float32 or
	// float64; string (also for DECIMAL, as "123.45", and for ARRAY, MAP,
	// STRUCT and INTERVAL, as the JSON text Databricks sends); []byte; or
	// time.Time for DATE and TIMESTAMP.
	Value func(row int64, col int) any
	// Fail, when set, makes every statement reading the table fail with it.
	Fail *StatementError
	// Truncated makes results of the table stop after half its rows with
	// manifest.truncated set, as when a byte limit is hit.
	Truncated bool
}

// StatementError is a failed statement's status.error.
type StatementError struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}

// Request is one request the workspace API answered.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	// Auth is the scheme of the Authorization header ("Bearer", "Basic") or "".
	Auth   string
	Status int
}

// LinkFetch is one request to a result link on the storage server.
type LinkFetch struct {
	Time      time.Time
	Statement string
	Chunk     int
	Status    int
	// Refused says why the request was refused ("" when it was served).
	Refused string
	// HadAuthorization is true when the request carried an Authorization header.
	HadAuthorization bool
}

// StatementInfo describes a statement the workspace received.
type StatementInfo struct {
	ID            string
	Statement     string
	WarehouseID   string
	Catalog       string
	Schema        string
	Disposition   string
	Format        string
	WaitTimeout   string
	OnWaitTimeout string
	State         string
	// Canceled is true when a cancel request stopped the statement.
	Canceled bool
	// CancelRequests counts cancel requests, Polls GET requests.
	CancelRequests int
	Polls          int
	// ChunkRequests counts requests to the chunk endpoint by chunk index.
	ChunkRequests map[int]int
}

type fault struct {
	status     int
	retryAfter string
}

type volumeFile struct {
	data    []byte
	modTime time.Time
}

// Server is a running fake workspace and its result storage.
type Server struct {
	// URL is the workspace URL (http://127.0.0.1:port).
	URL string
	// StorageURL is the cloud storage that result links point to.
	StorageURL string

	api     *httptest.Server
	storage *httptest.Server
	opts    Options
	tables  map[string]*tableDef
	queries map[string]string

	mu          sync.Mutex
	statements  map[string]*statement
	order       []string
	links       map[string]*link
	oauthTokens map[string]time.Time
	files       map[string]*volumeFile
	dirs        map[string]bool
	pages       map[string]pageState
	apiFaults   []fault
	linkFaults  []fault
	requests    []Request
	fetches     []LinkFetch
}

// New starts a fake workspace and its storage on loopback ports. Close
// stops both. It refuses tables whose column types it does not know.
func New(opts Options) (*Server, error) {
	if opts.TokenTTL <= 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.DefaultCatalog == "" {
		opts.DefaultCatalog = "main"
	}
	if opts.DefaultSchema == "" {
		opts.DefaultSchema = "default"
	}
	if opts.ChunkRows <= 0 {
		opts.ChunkRows = 1000
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = 250
	}
	if opts.LinkTTL <= 0 {
		opts.LinkTTL = 15 * time.Minute
	}
	if opts.ListPageSize <= 0 || opts.ListPageSize > maxPageSize {
		opts.ListPageSize = maxPageSize
	}
	s := &Server{
		opts:        opts,
		tables:      map[string]*tableDef{},
		queries:     map[string]string{},
		statements:  map[string]*statement{},
		links:       map[string]*link{},
		oauthTokens: map[string]time.Time{},
		files:       map[string]*volumeFile{},
		dirs:        map[string]bool{},
		pages:       map[string]pageState{},
	}
	for name, t := range opts.Tables {
		def, err := newTableDef(name, t)
		if err != nil {
			return nil, err
		}
		s.tables[strings.ToLower(name)] = def
	}
	for q, name := range opts.Queries {
		if _, ok := s.tables[strings.ToLower(name)]; !ok {
			return nil, fmt.Errorf("fakedatabricks: query %q names table %q, which is not in Options.Tables", q, name)
		}
		s.queries[q] = strings.ToLower(name)
	}
	start := time.Now().UTC().Truncate(time.Second)
	for p, data := range opts.Files {
		if err := checkVolumePath(p, true); err != nil {
			return nil, fmt.Errorf("fakedatabricks: Options.Files: %v", err)
		}
		s.files[p] = &volumeFile{data: data, modTime: start}
	}
	for _, d := range opts.Dirs {
		if err := checkVolumePath(d, false); err != nil {
			return nil, fmt.Errorf("fakedatabricks: Options.Dirs: %v", err)
		}
		s.dirs[strings.TrimSuffix(d, "/")] = true
	}
	s.storage = httptest.NewServer(http.HandlerFunc(s.serveStorage))
	s.StorageURL = s.storage.URL
	s.api = httptest.NewServer(s.apiHandler())
	s.URL = s.api.URL
	return s, nil
}

// Close stops the workspace and the storage server.
func (s *Server) Close() {
	s.api.Close()
	s.storage.Close()
}

// FailNextAPI makes the next n workspace API requests answer status (429 or
// 503, say) with the given Retry-After header ("" for none).
func (s *Server) FailNextAPI(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.apiFaults = append(s.apiFaults, fault{status, retryAfter})
	}
}

// FailNextLinks makes the next n result-link requests answer status with
// the given Retry-After header.
func (s *Server) FailNextLinks(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.linkFaults = append(s.linkFaults, fault{status, retryAfter})
	}
}

// PutFile creates or replaces a volume file.
func (s *Server) PutFile(path string, data []byte, modTime time.Time) error {
	if err := checkVolumePath(path, true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = &volumeFile{data: data, modTime: modTime.UTC()}
	return nil
}

// Requests returns the workspace API requests answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// LinkFetches returns the result-link requests answered so far.
func (s *Server) LinkFetches() []LinkFetch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]LinkFetch(nil), s.fetches...)
}

// Statements returns the statements received so far, oldest first.
func (s *Server) Statements() []StatementInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]StatementInfo, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.statements[id].info())
	}
	return out
}

// Statement describes one statement.
func (s *Server) Statement(id string) (StatementInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.statements[id]
	if !ok {
		return StatementInfo{}, false
	}
	return st.info(), true
}

// apiHandler routes the workspace API, logging each request, injecting
// faults and checking credentials on /api/ paths.
func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oidc/.well-known/oauth-authorization-server", s.serveOIDCMetadata)
	mux.HandleFunc("POST /oidc/v1/token", s.serveToken)
	mux.HandleFunc("POST /api/2.0/sql/statements", s.serveExecute)
	mux.HandleFunc("GET /api/2.0/sql/statements/{id}", s.serveGetStatement)
	mux.HandleFunc("POST /api/2.0/sql/statements/{id}/cancel", s.serveCancel)
	mux.HandleFunc("GET /api/2.0/sql/statements/{id}/result/chunks/{index}", s.serveChunk)
	mux.HandleFunc("/api/2.0/fs/files/", s.serveFiles)
	mux.HandleFunc("/api/2.0/fs/directories/", s.serveDirectories)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "ENDPOINT_NOT_FOUND", fmt.Sprintf("No API found for '%s %s'", r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			s.mu.Lock()
			s.requests = append(s.requests, Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Auth: scheme, Status: rec.status})
			s.mu.Unlock()
		}()
		if strings.HasPrefix(r.URL.Path, "/api/") {
			if f, ok := s.takeFault(&s.apiFaults); ok {
				if f.retryAfter != "" {
					rec.Header().Set("Retry-After", f.retryAfter)
				}
				code := "TOO_MANY_REQUESTS"
				if f.status == http.StatusServiceUnavailable {
					code = "TEMPORARILY_UNAVAILABLE"
				}
				apiError(rec, f.status, code, fmt.Sprintf("injected %d %s", f.status, http.StatusText(f.status)))
				return
			}
			if !s.authenticated(r) {
				msg := "Invalid access token."
				if r.Header.Get("Authorization") == "" {
					msg = "Credential was not sent or was of an unsupported type for this API."
				}
				apiError(rec, http.StatusUnauthorized, "UNAUTHENTICATED", msg)
				return
			}
		}
		mux.ServeHTTP(rec, r)
	})
}

func (s *Server) takeFault(q *[]fault) (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(*q) == 0 {
		return fault{}, false
	}
	f := (*q)[0]
	*q = (*q)[1:]
	return f, true
}

// authenticated reports whether r carries credentials the workspace accepts.
func (s *Server) authenticated(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(h, "Bearer "):
		tok := strings.TrimPrefix(h, "Bearer ")
		if s.opts.Token != "" && tok == s.opts.Token {
			return true
		}
		s.mu.Lock()
		exp, ok := s.oauthTokens[tok]
		s.mu.Unlock()
		return ok && time.Now().Before(exp)
	case strings.HasPrefix(h, "Basic "):
		user, pass, ok := r.BasicAuth()
		return ok && s.opts.Username != "" && user == s.opts.Username && pass == s.opts.Password
	}
	return false
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// apiError writes a Databricks API error body.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error_code": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
