package requests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	workflowpb "go.temporal.io/api/workflow/v1"
	"strings"
	"time"
	"unicode"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// Page sizes of List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Kinds lists every request kind, for filter validation.
var Kinds = []model.Kind{model.KindImport, model.KindUpload, model.KindEgress}

// Filter selects requests. Empty fields select everything; the fields are
// combined with AND.
type Filter struct {
	State        string // a model.State (any case)
	Kind         string // a model.Kind (any case)
	Project      string // a project id
	AwaitingRole string // the role of the stage a request waits on
	Requester    string // who asked
	// PageSize is how many requests a page holds at most (default
	// DefaultPageSize, at most MaxPageSize).
	PageSize int
	// PageToken continues a listing: the NextPageToken of the previous page
	// of the same filter; empty for the first page.
	PageToken string
}

// Summary is one request as a list shows it, read from the search
// attributes its workflow keeps up to date (a moment behind the workflow).
type Summary struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	State        string    `json:"state"`
	AwaitingRole string    `json:"awaiting_role,omitempty"`
	DataSource   string    `json:"datasource"`
	Project      string    `json:"project"`
	Workspace    string    `json:"workspace"`
	Requester    string    `json:"requester"`
	StartedAt    time.Time `json:"started_at"`
}

// Page is one page of a listing.
type Page struct {
	Requests []Summary `json:"requests"`
	// NextPageToken, when set, gives the next page as Filter.PageToken.
	NextPageToken string `json:"next_page_token,omitempty"`
}

// List reads one page of the requests a filter selects from Temporal's
// visibility store: running requests first, newest first, then ended ones,
// most recently ended first. A bad filter is a *FieldError naming the field
// and the valid values.
func (s *Service) List(ctx context.Context, f Filter) (Page, error) {
	q, err := f.Query()
	if err != nil {
		return Page{}, err
	}
	size, err := f.pageSize()
	if err != nil {
		return Page{}, err
	}
	token, err := decodePageToken(q, f.PageToken)
	if err != nil {
		return Page{}, err
	}
	resp, err := s.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: q, PageSize: int32(size), NextPageToken: token,
	})
	if err != nil {
		return Page{}, fmt.Errorf("listing requests (%s): %w%s", q, err, searchAttrHint(err))
	}
	page := Page{Requests: make([]Summary, 0, len(resp.Executions))}
	for _, e := range resp.Executions {
		page.Requests = append(page.Requests, summaryOf(e))
	}
	if len(resp.NextPageToken) > 0 {
		page.NextPageToken = encodePageToken(q, resp.NextPageToken)
	}
	return page, nil
}

// Summary reads one request's search attributes from the server's record
// of the run (DescribeWorkflowExecution): current as of its last workflow
// task, and answered without a round trip to a worker, unlike Status. A
// missing request, or a workflow that is not an Airlock request, is
// ErrNotFound.
func (s *Service) Summary(ctx context.Context, id string) (Summary, error) {
	if err := checkID(id); err != nil {
		return Summary{}, err
	}
	desc, err := s.Client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		if isNotFound(err) {
			return Summary{}, ErrNotFound
		}
		return Summary{}, fmt.Errorf("describing request %s: %w", id, err)
	}
	sum := summaryOf(desc.GetWorkflowExecutionInfo())
	if !known(Kinds, sum.Kind) {
		return Summary{}, ErrNotFound
	}
	return sum, nil
}

// summaryOf reads a run's Airlock search attributes.
func summaryOf(e *workflowpb.WorkflowExecutionInfo) Summary {
	fields := e.GetSearchAttributes().GetIndexedFields()
	return Summary{
		ID:           e.GetExecution().GetWorkflowId(),
		Kind:         searchAttr(fields, workflows.SearchAttrKind),
		State:        searchAttr(fields, workflows.SearchAttrState),
		AwaitingRole: searchAttr(fields, workflows.SearchAttrAwaitingRole),
		DataSource:   searchAttr(fields, workflows.SearchAttrDataSource),
		Project:      searchAttr(fields, workflows.SearchAttrProject),
		Workspace:    searchAttr(fields, workflows.SearchAttrWorkspace),
		Requester:    searchAttr(fields, workflows.SearchAttrRequester),
		StartedAt:    e.GetStartTime().AsTime(),
	}
}

// searchAttr decodes one Keyword search attribute ("" when absent).
func searchAttr(fields map[string]*commonpb.Payload, name string) string {
	var s string
	if p, ok := fields[name]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
	}
	return s
}

// Query checks the filter's values and returns the visibility query that
// selects its requests. Without a kind it still selects Airlock requests
// only. Every value is checked before it is quoted, so no value can change
// the query's meaning.
func (f Filter) Query() (string, error) {
	var conds []string
	add := func(attr, value string) {
		conds = append(conds, fmt.Sprintf("%s = '%s'", attr, value))
	}
	if f.State != "" {
		state := strings.ToUpper(strings.TrimSpace(f.State))
		if !known(model.States, state) {
			return "", &FieldError{Field: "state", Value: f.State, Problem: "unknown state (expected one of: " + join(model.States) + ")"}
		}
		add(workflows.SearchAttrState, state)
	}
	if f.Kind != "" {
		kind := strings.ToLower(strings.TrimSpace(f.Kind))
		if !known(Kinds, kind) {
			return "", &FieldError{Field: "kind", Value: f.Kind, Problem: "unknown kind (expected one of: " + join(Kinds) + ")"}
		}
		add(workflows.SearchAttrKind, kind)
	} else {
		quoted := make([]string, len(Kinds))
		for i, k := range Kinds {
			quoted[i] = "'" + string(k) + "'"
		}
		conds = append(conds, fmt.Sprintf("%s IN (%s)", workflows.SearchAttrKind, strings.Join(quoted, ", ")))
	}
	if f.Project != "" {
		if !model.ValidName(f.Project) {
			return "", &FieldError{Field: "project", Value: f.Project, Problem: "not a project id: " + model.NameRule}
		}
		add(workflows.SearchAttrProject, f.Project)
	}
	for _, v := range []struct{ field, attr, value string }{
		{"awaiting_role", workflows.SearchAttrAwaitingRole, f.AwaitingRole},
		{"requester", workflows.SearchAttrRequester, f.Requester},
	} {
		if v.value == "" {
			continue
		}
		if err := checkKeyword(v.field, v.value); err != nil {
			return "", err
		}
		add(v.attr, v.value)
	}
	return strings.Join(conds, " AND "), nil
}

// checkKeyword refuses a free-text filter value that could not be quoted
// safely in a visibility query.
func checkKeyword(field, value string) error {
	if strings.ContainsAny(value, `'"\`+"`") {
		return &FieldError{Field: field, Value: value, Problem: "quotes, backquotes and backslashes are not allowed"}
	}
	for _, r := range value {
		if unicode.IsControl(r) {
			return &FieldError{Field: field, Value: value, Problem: "control characters are not allowed"}
		}
	}
	if len(value) > 255 {
		return &FieldError{Field: field, Value: strings.ToValidUTF8(value[:32], "") + "...", Problem: "longer than 255 bytes"}
	}
	return nil
}

func (f Filter) pageSize() (int, error) {
	switch {
	case f.PageSize == 0:
		return DefaultPageSize, nil
	case f.PageSize < 0 || f.PageSize > MaxPageSize:
		return 0, &FieldError{Field: "page_size", Value: fmt.Sprint(f.PageSize), Problem: fmt.Sprintf("expected 1 to %d (default %d)", MaxPageSize, DefaultPageSize)}
	}
	return f.PageSize, nil
}

// Page tokens are base64url(tag || Temporal's token), where tag is the
// first pageTokenTagLen bytes of the SHA-256 of the query they continue, so
// a token cannot be replayed against another filter.
const pageTokenTagLen = 8

func pageTokenTag(query string) []byte {
	sum := sha256.Sum256([]byte(query))
	return sum[:pageTokenTagLen]
}

func encodePageToken(query string, token []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(pageTokenTag(query), token...))
}

func decodePageToken(query, token string) ([]byte, error) {
	if token == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) <= pageTokenTagLen {
		return nil, &FieldError{Field: "page_token", Problem: "not a page token from a previous page: drop it to start from the first page"}
	}
	if !bytes.Equal(raw[:pageTokenTagLen], pageTokenTag(query)) {
		return nil, &FieldError{Field: "page_token", Problem: "belongs to a listing with other filters: drop it to start from the first page, or keep the filters of the page that gave it"}
	}
	return raw[pageTokenTagLen:], nil
}

func known[T ~string](all []T, v string) bool {
	for _, a := range all {
		if string(a) == v {
			return true
		}
	}
	return false
}

func join[T ~string](all []T) string {
	s := make([]string, len(all))
	for i, a := range all {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}
