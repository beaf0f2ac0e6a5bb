package requests

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/model"
)

func TestFilterQuery(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Filter
		want string
	}{
		{"everything Airlock started", Filter{}, "AirlockKind IN ('import', 'upload', 'egress')"},
		{"state in any case", Filter{State: "awaiting_approval"},
			"AirlockState = 'AWAITING_APPROVAL' AND AirlockKind IN ('import', 'upload', 'egress')"},
		{"kind replaces the kind list", Filter{Kind: "Upload"}, "AirlockKind = 'upload'"},
		{"every field", Filter{State: "COMPLETED", Kind: "import", Project: "proj-a", AwaitingRole: "Information Governance", Requester: "rita@example.org"},
			"AirlockState = 'COMPLETED' AND AirlockKind = 'import' AND AirlockProject = 'proj-a' AND AirlockAwaitingRole = 'Information Governance' AND AirlockRequester = 'rita@example.org'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.f.Query()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("query\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// A refused value names its field, says what is valid, and never reaches a
// query: no value can close the quotes it is put in.
func TestFilterRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		f            Filter
		field        string
		wantInReason string
	}{
		{Filter{State: "SLEEPING"}, "state", "expected one of: EXTRACTING, AWAITING_UPLOAD"},
		{Filter{Kind: "export"}, "kind", "expected one of: import, upload, egress"},
		{Filter{Project: "P1' OR 'x'='x"}, "project", model.NameRule},
		{Filter{AwaitingRole: "x' OR AirlockKind != '"}, "awaiting_role", "quotes"},
		{Filter{Requester: `rita" OR "1"="1`}, "requester", "quotes"},
		{Filter{Requester: `rita\`}, "requester", "backslashes"},
		{Filter{Requester: "rita`"}, "requester", "backquotes"},
		{Filter{AwaitingRole: "role\nAND x"}, "awaiting_role", "control characters"},
		{Filter{Requester: strings.Repeat("r", 256)}, "requester", "longer than 255"},
	} {
		_, err := tc.f.Query()
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%+v: error %v, want a *FieldError", tc.f, err)
			continue
		}
		if fe.Field != tc.field || !strings.Contains(fe.Error(), tc.wantInReason) || !strings.HasPrefix(fe.Error(), tc.field+" ") {
			t.Errorf("%+v: refusal %q (field %s), want field %s and a reason mentioning %q", tc.f, fe.Error(), fe.Field, tc.field, tc.wantInReason)
		}
	}
}

func TestPageSize(t *testing.T) {
	for size, want := range map[int]int{0: DefaultPageSize, 1: 1, 1000: 1000} {
		got, err := Filter{PageSize: size}.pageSize()
		if err != nil || got != want {
			t.Errorf("page size %d: got %d, %v; want %d", size, got, err, want)
		}
	}
	for _, size := range []int{-1, MaxPageSize + 1} {
		_, err := Filter{PageSize: size}.pageSize()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "page_size" || !strings.Contains(fe.Problem, "1 to 1000") {
			t.Errorf("page size %d: error %v, want a page_size refusal giving the range", size, err)
		}
	}
}

func TestPageTokens(t *testing.T) {
	q1, _ := Filter{State: "COMPLETED"}.Query()
	q2, _ := Filter{State: "REJECTED"}.Query()
	temporalToken := []byte{0, 1, 2, 0xff, 'x'}
	tok := encodePageToken(q1, temporalToken)
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(tok) {
		t.Errorf("token %q is not URL-safe", tok)
	}
	got, err := decodePageToken(q1, tok)
	if err != nil || string(got) != string(temporalToken) {
		t.Fatalf("round trip: %v, %v; want %v", got, err, temporalToken)
	}
	if got, err := decodePageToken(q1, ""); got != nil || err != nil {
		t.Errorf("no token: %v, %v; want the first page", got, err)
	}
	for name, tc := range map[string]struct {
		query, token, want string
	}{
		"another filter's": {q2, tok, "other filters"},
		"not base64":       {q1, "%%%", "not a page token"},
		"too short":        {q1, "AAAA", "not a page token"},
		"padded base64":    {q1, tok + "=", "not a page token"},
	} {
		_, err := decodePageToken(tc.query, tc.token)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "page_token" || !strings.Contains(fe.Problem, tc.want) || !strings.Contains(fe.Problem, "first page") {
			t.Errorf("%s token: error %v, want a page_token refusal mentioning %q", name, err, tc.want)
		}
	}
}

func TestNewRequestID(t *testing.T) {
	re := regexp.MustCompile(`^upload-clinic-extract-[a-km-np-z2-9]{6}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewRequestID(model.KindUpload, "clinic-extract")
		if !re.MatchString(id) {
			t.Fatalf("id %q does not match %s", id, re)
		}
		if seen[id] {
			t.Fatalf("id %q made twice in 1000", id)
		}
		seen[id] = true
		if _, err := model.CleanRelPath(id); err != nil {
			t.Fatalf("id %q cannot name a folder: %v", id, err)
		}
	}
}

func TestCheckStart(t *testing.T) {
	good := testDataSource("check-start", "proj-a")
	if err := checkStart(good, model.TypeImport, "ws-a", "rita"); err != nil {
		t.Fatalf("a good import refused: %v", err)
	}
	uploaded := good
	uploaded.Spec.Type = model.TypeUploaded
	nameless := good
	nameless.Metadata.Name = ""
	for _, tc := range []struct {
		name      string
		ds        model.DataSource
		typ, ws   string
		requester string
		want      string
	}{
		{"uploaded source imported", uploaded, model.TypeImport, "ws-a", "rita", `spec.type "Uploaded": only Import data sources are imported`},
		{"import source uploaded", good, model.TypeUploaded, "ws-a", "rita", `spec.type "Import": only Uploaded data sources arrive by upload`},
		{"invalid document", nameless, model.TypeImport, "ws-a", "rita", "metadata.name: missing"},
		{"no workspace", good, model.TypeImport, "", "rita", "workspace: missing"},
		{"bad workspace", good, model.TypeImport, "../etc", "rita", `workspace "../etc": use lower-case`},
		{"no requester", good, model.TypeImport, "ws-a", " ", "requester: missing"},
	} {
		err := checkStart(tc.ds, tc.typ, tc.ws, tc.requester)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}
