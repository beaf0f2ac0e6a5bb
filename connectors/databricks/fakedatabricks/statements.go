package fakedatabricks

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// executeRequest is the body of POST /api/2.0/sql/statements. Pointers tell
// a field that was sent from one that was not.
type executeRequest struct {
	WarehouseID   *string         `json:"warehouse_id"`
	Statement     *string         `json:"statement"`
	Catalog       string          `json:"catalog"`
	Schema        string          `json:"schema"`
	Disposition   string          `json:"disposition"`
	Format        string          `json:"format"`
	WaitTimeout   string          `json:"wait_timeout"`
	OnWaitTimeout string          `json:"on_wait_timeout"`
	RowLimit      *int64          `json:"row_limit"`
	ByteLimit     *int64          `json:"byte_limit"`
	Parameters    json.RawMessage `json:"parameters"`
	QueryTags     json.RawMessage `json:"query_tags"`
}

// Wire shapes of the Statement Execution API responses.
type statementResponse struct {
	StatementID string        `json:"statement_id"`
	Status      statusJSON    `json:"status"`
	Manifest    *manifestJSON `json:"manifest,omitempty"`
	Result      *resultJSON   `json:"result,omitempty"`
}

type statusJSON struct {
	State string          `json:"state"`
	Error *StatementError `json:"error,omitempty"`
}

type manifestJSON struct {
	Format          string      `json:"format"`
	Schema          schemaJSON  `json:"schema"`
	TotalChunkCount int         `json:"total_chunk_count"`
	Chunks          []chunkJSON `json:"chunks,omitempty"`
	TotalRowCount   int64       `json:"total_row_count"`
	TotalByteCount  int64       `json:"total_byte_count"`
	Truncated       bool        `json:"truncated"`
}

type schemaJSON struct {
	ColumnCount int          `json:"column_count"`
	Columns     []columnJSON `json:"columns"`
}

type columnJSON struct {
	Name          string `json:"name"`
	TypeText      string `json:"type_text"`
	TypeName      string `json:"type_name"`
	Position      int    `json:"position"`
	TypePrecision *int   `json:"type_precision,omitempty"`
	TypeScale     *int   `json:"type_scale,omitempty"`
}

type chunkJSON struct {
	ChunkIndex int   `json:"chunk_index"`
	RowOffset  int64 `json:"row_offset"`
	RowCount   int64 `json:"row_count"`
	ByteCount  int64 `json:"byte_count"`
}

type resultJSON struct {
	ExternalLinks []linkJSON `json:"external_links,omitempty"`
}

type linkJSON struct {
	ChunkIndex            int               `json:"chunk_index"`
	RowOffset             int64             `json:"row_offset"`
	RowCount              int64             `json:"row_count"`
	ByteCount             int64             `json:"byte_count"`
	ExternalLink          string            `json:"external_link"`
	Expiration            string            `json:"expiration"`
	HTTPHeaders           map[string]string `json:"http_headers,omitempty"`
	NextChunkIndex        *int              `json:"next_chunk_index,omitempty"`
	NextChunkInternalLink string            `json:"next_chunk_internal_link,omitempty"`
}

// statement is a statement the workspace received.
type statement struct {
	id    string
	req   executeRequest
	text  string
	table *tableDef
	// fail is the error the statement finishes with, if it fails.
	fail *StatementError
	// states are the states still to report; the last is the final one.
	states         []string
	state          string
	canceled       bool
	cancelRequests int
	polls          int
	chunkRequests  map[int]int
	// Result, once computed.
	rows      int64
	truncated bool
	chunks    []chunkJSON
	// sseKey is the value of the header every link fetch must carry.
	sseKey string
	// issued and fetched count links issued and fetch attempts per chunk.
	issued  map[int]int
	fetched map[int]int
}

func (st *statement) info() StatementInfo {
	return StatementInfo{
		ID:             st.id,
		Statement:      st.text,
		WarehouseID:    deref(st.req.WarehouseID),
		Catalog:        st.req.Catalog,
		Schema:         st.req.Schema,
		Disposition:    st.req.Disposition,
		Format:         st.req.Format,
		WaitTimeout:    st.req.WaitTimeout,
		OnWaitTimeout:  st.req.OnWaitTimeout,
		State:          st.state,
		Canceled:       st.canceled,
		CancelRequests: st.cancelRequests,
		Polls:          st.polls,
		ChunkRequests:  maps.Clone(st.chunkRequests),
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// sseHeader is the header result links require, as S3 requires the key of
// an object encrypted with a customer-provided key (SSE-C).
const sseHeader = "x-amz-server-side-encryption-customer-key"

var waitTimeoutRE = regexp.MustCompile(`^(\d+)s$`)

func (s *Server) serveExecute(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		apiError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "Content-Type must be application/json")
		return
	}
	var req executeRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "MALFORMED_REQUEST", fmt.Sprintf("Could not parse request object: %v", err))
		return
	}
	bad := func(format string, args ...any) {
		apiError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf(format, args...))
	}
	switch {
	case req.WarehouseID == nil || *req.WarehouseID == "":
		bad("warehouse_id is required")
		return
	case req.Statement == nil || strings.TrimSpace(*req.Statement) == "":
		bad("statement is required")
		return
	}
	disposition := req.Disposition
	if disposition == "" {
		disposition = "INLINE"
	}
	format := req.Format
	if format == "" {
		format = "JSON_ARRAY"
	}
	switch disposition {
	case "INLINE", "EXTERNAL_LINKS":
	default:
		bad("disposition %q is not one of INLINE, EXTERNAL_LINKS", req.Disposition)
		return
	}
	switch format {
	case "JSON_ARRAY", "ARROW_STREAM", "CSV":
	default:
		bad("format %q is not one of JSON_ARRAY, ARROW_STREAM, CSV", req.Format)
		return
	}
	if disposition == "INLINE" && format != "JSON_ARRAY" {
		bad("format %s is supported only with EXTERNAL_LINKS disposition; INLINE supports only JSON_ARRAY", format)
		return
	}
	waitSeconds := 10
	if req.WaitTimeout != "" {
		m := waitTimeoutRE.FindStringSubmatch(req.WaitTimeout)
		if m == nil {
			bad("wait_timeout %q: give it as Ns with N 0 or between 5 and 50", req.WaitTimeout)
			return
		}
		waitSeconds, _ = strconv.Atoi(m[1])
		if waitSeconds != 0 && (waitSeconds < 5 || waitSeconds > 50) {
			bad("wait_timeout %q: N must be 0 or between 5 and 50", req.WaitTimeout)
			return
		}
	}
	switch req.OnWaitTimeout {
	case "", "CONTINUE", "CANCEL":
	default:
		bad("on_wait_timeout %q is not one of CONTINUE, CANCEL", req.OnWaitTimeout)
		return
	}
	if req.RowLimit != nil && *req.RowLimit < 0 || req.ByteLimit != nil && *req.ByteLimit < 0 {
		bad("row_limit and byte_limit must not be negative")
		return
	}
	if *req.WarehouseID != s.opts.WarehouseID {
		apiError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Warehouse %s does not exist.", *req.WarehouseID))
		return
	}
	if disposition != "EXTERNAL_LINKS" || format != "ARROW_STREAM" {
		apiError(w, http.StatusNotImplemented, "NOT_IMPLEMENTED", fmt.Sprintf("the fake workspace serves only EXTERNAL_LINKS + ARROW_STREAM results, not %s + %s", disposition, format))
		return
	}
	if len(req.Parameters) > 0 || len(req.QueryTags) > 0 {
		apiError(w, http.StatusNotImplemented, "NOT_IMPLEMENTED", "the fake workspace does not support statement parameters or query tags")
		return
	}

	st := &statement{
		id:            "01ef" + randomID(14),
		req:           req,
		text:          *req.Statement,
		chunkRequests: map[int]int{},
		issued:        map[int]int{},
		fetched:       map[int]int{},
		sseKey:        base64.StdEncoding.EncodeToString([]byte(randomID(16))),
	}
	s.resolve(st)
	final := "SUCCEEDED"
	if st.fail != nil {
		final = "FAILED"
	} else if err := s.computeResult(st); err != nil {
		final = "FAILED"
		st.fail = &StatementError{ErrorCode: "INTERNAL_ERROR", Message: "fakedatabricks: " + err.Error()}
	}
	for range s.opts.PendingPolls {
		st.states = append(st.states, "PENDING")
	}
	for range s.opts.RunningPolls {
		st.states = append(st.states, "RUNNING")
	}
	if waitSeconds == 0 && len(st.states) == 0 {
		// Asynchronous mode always answers before the statement finishes.
		st.states = append(st.states, "PENDING")
	}
	st.states = append(st.states, final)
	st.state = st.states[0]
	st.states = st.states[1:]
	if waitSeconds > 0 && req.OnWaitTimeout == "CANCEL" && !terminal(st.state) {
		st.state, st.states = "CANCELED", nil
	}

	s.mu.Lock()
	s.statements[st.id] = st
	s.order = append(s.order, st.id)
	resp := s.response(st)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func terminal(state string) bool {
	switch state {
	case "SUCCEEDED", "FAILED", "CANCELED", "CLOSED":
		return true
	}
	return false
}

// identPart is one part of a table name: `quoted` or bare.
const identPart = "(?:`(?:[^`]|``)+`|[A-Za-z_][A-Za-z0-9_]*)"

var selectRE = regexp.MustCompile("(?is)^\\s*SELECT\\s+\\*\\s+FROM\\s+(" + identPart + "(?:\\s*\\.\\s*" + identPart + "){0,2})\\s*;?\\s*$")
var identRE = regexp.MustCompile(identPart)

// resolve finds the table a statement reads, or the error it fails with.
func (s *Server) resolve(st *statement) {
	if name, ok := s.queries[st.text]; ok {
		st.table = s.tables[name]
	} else {
		m := selectRE.FindStringSubmatch(st.text)
		if m == nil {
			word := strings.Fields(st.text)[0]
			st.fail = &StatementError{ErrorCode: "BAD_REQUEST", Message: fmt.Sprintf("[PARSE_SYNTAX_ERROR] Syntax error at or near '%s'. SQLSTATE: 42601 (line 1, pos 0)", word)}
			return
		}
		var parts []string
		for _, p := range identRE.FindAllString(m[1], -1) {
			if strings.HasPrefix(p, "`") {
				p = strings.ReplaceAll(p[1:len(p)-1], "``", "`")
			}
			parts = append(parts, p)
		}
		catalog, schema := st.req.Catalog, st.req.Schema
		if catalog == "" {
			catalog = s.opts.DefaultCatalog
		}
		if schema == "" {
			schema = s.opts.DefaultSchema
		}
		switch len(parts) {
		case 1:
			parts = []string{catalog, schema, parts[0]}
		case 2:
			parts = []string{catalog, parts[0], parts[1]}
		}
		def, ok := s.tables[strings.ToLower(strings.Join(parts, "."))]
		if !ok {
			quoted := make([]string, len(parts))
			for i, p := range parts {
				quoted[i] = "`" + p + "`"
			}
			st.fail = &StatementError{ErrorCode: "BAD_REQUEST", Message: fmt.Sprintf("[TABLE_OR_VIEW_NOT_FOUND] The table or view %s cannot be found. Verify the spelling and correctness of the schema and catalog. SQLSTATE: 42P01; line 1 pos 14", strings.Join(quoted, "."))}
			return
		}
		st.table = def
	}
	if st.table.table.Fail != nil {
		f := *st.table.table.Fail
		st.fail = &f
	}
}

// computeResult cuts the statement's rows into chunks and measures each
// chunk's Arrow encoding.
func (s *Server) computeResult(st *statement) error {
	t := st.table.table
	st.rows = t.Rows
	if t.Truncated {
		st.rows, st.truncated = (t.Rows+1)/2, true
	}
	if st.req.RowLimit != nil && *st.req.RowLimit > 0 && *st.req.RowLimit < st.rows {
		st.rows, st.truncated = *st.req.RowLimit, true
	}
	for i, off := 0, int64(0); off < st.rows; i, off = i+1, off+s.opts.ChunkRows {
		n := min(s.opts.ChunkRows, st.rows-off)
		data, err := st.table.encodeChunk(off, off+n, s.opts.BatchRows)
		if err != nil {
			return err
		}
		st.chunks = append(st.chunks, chunkJSON{ChunkIndex: i, RowOffset: off, RowCount: n, ByteCount: int64(len(data))})
	}
	return nil
}

// response describes st as the API does. The caller holds s.mu.
func (s *Server) response(st *statement) statementResponse {
	resp := statementResponse{StatementID: st.id, Status: statusJSON{State: st.state}}
	switch st.state {
	case "FAILED":
		resp.Status.Error = st.fail
	case "SUCCEEDED":
		resp.Manifest = s.manifest(st)
		resp.Result = &resultJSON{}
		if len(st.chunks) > 0 {
			resp.Result.ExternalLinks = []linkJSON{s.issueLink(st, 0)}
		}
	}
	return resp
}

func (s *Server) manifest(st *statement) *manifestJSON {
	m := &manifestJSON{
		Format:          "ARROW_STREAM",
		TotalChunkCount: len(st.chunks),
		Chunks:          st.chunks,
		TotalRowCount:   st.rows,
		Truncated:       st.truncated,
	}
	for _, c := range st.chunks {
		m.TotalByteCount += c.ByteCount
	}
	m.Schema.ColumnCount = len(st.table.types)
	for i, ct := range st.table.types {
		c := columnJSON{Name: st.table.table.Columns[i].Name, TypeText: ct.text, TypeName: ct.name, Position: i}
		if ct.name == "DECIMAL" {
			p, sc := ct.precision, ct.scale
			c.TypePrecision, c.TypeScale = &p, &sc
		}
		m.Schema.Columns = append(m.Schema.Columns, c)
	}
	return m
}

// issueLink makes a presigned link to chunk i. The caller holds s.mu.
func (s *Server) issueLink(st *statement, i int) linkJSON {
	c := st.chunks[i]
	l := &link{statement: st.id, chunk: i, expires: time.Now().Add(s.opts.LinkTTL)}
	if st.issued[i] == 0 && slices.Contains(s.opts.PastExpiration, i) {
		l.expires = time.Now().Add(-time.Minute)
	}
	st.issued[i]++
	sig := randomID(16)
	s.links[sig] = l
	out := linkJSON{
		ChunkIndex:   i,
		RowOffset:    c.RowOffset,
		RowCount:     c.RowCount,
		ByteCount:    c.ByteCount,
		ExternalLink: fmt.Sprintf("%s/results/%s/chunk-%d.arrow?X-Amz-Expires=%d&X-Amz-Signature=%s", s.StorageURL, st.id, i, int(s.opts.LinkTTL.Seconds()), sig),
		Expiration:   l.expires.UTC().Format(time.RFC3339Nano),
		HTTPHeaders:  map[string]string{sseHeader: st.sseKey},
	}
	if i+1 < len(st.chunks) {
		next := i + 1
		out.NextChunkIndex = &next
		out.NextChunkInternalLink = fmt.Sprintf("/api/2.0/sql/statements/%s/result/chunks/%d", st.id, next)
	}
	return out
}

func (s *Server) statementFor(w http.ResponseWriter, r *http.Request) (*statement, bool) {
	id := r.PathValue("id")
	st, ok := s.statements[id]
	if !ok {
		apiError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("The statement %s was not found.", id))
	}
	return st, ok
}

func (s *Server) serveGetStatement(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st, ok := s.statementFor(w, r)
	if !ok {
		s.mu.Unlock()
		return
	}
	st.polls++
	if len(st.states) > 0 && !terminal(st.state) {
		st.state = st.states[0]
		st.states = st.states[1:]
	}
	resp := s.response(st)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) serveCancel(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st, ok := s.statementFor(w, r)
	if !ok {
		s.mu.Unlock()
		return
	}
	st.cancelRequests++
	if !terminal(st.state) {
		st.state, st.states, st.canceled = "CANCELED", nil, true
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) serveChunk(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.statementFor(w, r)
	if !ok {
		return
	}
	raw := r.PathValue("index")
	i, err := strconv.Atoi(raw)
	if err != nil {
		apiError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("chunk_index %q is not an integer", raw))
		return
	}
	st.chunkRequests[i]++
	if st.state != "SUCCEEDED" {
		apiError(w, http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("The statement %s is in state %s; result chunks are available only once it has SUCCEEDED.", st.id, st.state))
		return
	}
	if i < 0 || i >= len(st.chunks) {
		apiError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("chunk_index %d is out of range: the result has %d chunks", i, len(st.chunks)))
		return
	}
	writeJSON(w, http.StatusOK, resultJSON{ExternalLinks: []linkJSON{s.issueLink(st, i)}})
}
