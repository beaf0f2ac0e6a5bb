package auth

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/model"
)

func TestParseCapabilities(t *testing.T) {
	c, err := ParseCapabilities([]string{"import:proj-a", "upload:*", "egress:proj-b", "read:own", "read:proj-b", "approve:data-engineer", "approve:information-governance"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  bool
		want bool
	}{
		{"CanImport(proj-a)", c.CanImport("proj-a"), true},
		{"CanImport(proj-b)", c.CanImport("proj-b"), false},
		{"CanImport(\"\")", c.CanImport(""), false},
		{"CanUpload(anything)", c.CanUpload("anything"), true},
		{"CanUpload(\"\")", c.CanUpload(""), true},
		{"CanEgress(proj-b)", c.CanEgress("proj-b"), true},
		{"CanEgress(proj-a)", c.CanEgress("proj-a"), false},
		{"CanEgress(\"\")", c.CanEgress(""), false},
		{"CanApprove(data-engineer)", c.CanApprove("data-engineer"), true},
		{"CanApprove(security)", c.CanApprove("security"), false},
		{"CanApprove(\"\")", c.CanApprove(""), false},
		{"ReadsOwn", c.ReadsOwn(), true},
		{"ReadsAll", c.ReadsAll(), false},
		{"CanReadProject(proj-b)", c.CanReadProject("proj-b"), true},
		{"CanReadProject(proj-a)", c.CanReadProject("proj-a"), false},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if got, want := c.ApproveRoles(), []string{"data-engineer", "information-governance"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ApproveRoles = %v, want %v", got, want)
	}
	wantList := []string{"approve:data-engineer", "approve:information-governance", "egress:proj-b", "import:proj-a", "read:own", "read:proj-b", "upload:*"}
	if got := c.List(); !reflect.DeepEqual(got, wantList) {
		t.Errorf("List = %v, want %v", got, wantList)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Capabilities
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.List(), wantList) {
		t.Errorf("JSON round trip = %v (%s)", back.List(), b)
	}
	var zero Capabilities
	if zero.CanImport("x") || zero.CanUpload("x") || zero.CanEgress("x") || zero.CanApprove("x") || zero.ReadsOwn() || zero.CanReadProject("x") {
		t.Error("the zero Capabilities allows something")
	}
	if b, _ := json.Marshal(zero); string(b) != "[]" {
		t.Errorf("zero capabilities JSON = %s, want []", b)
	}
}

func TestParseCapabilitiesRefusals(t *testing.T) {
	for _, bad := range []string{"", "import", "import:", "imprt:x", "delete:*", "approve:*", "read: own", "import:a,b", "admin", "approve:", "egress:", "egress: p", "egres:p"} {
		_, err := ParseCapabilities([]string{"read:own", bad})
		if err == nil {
			t.Errorf("ParseCapabilities(%q) accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), "import:<project>") && !strings.Contains(err.Error(), "approve:<stage-role>") {
			t.Errorf("refusal of %q does not list the valid forms: %v", bad, err)
		}
		if !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("refusal of %q does not name it: %v", bad, err)
		}
	}
}

func TestGrantRefusalsAtNew(t *testing.T) {
	cases := []struct {
		name   string
		grants []Grant
		want   []string
	}{
		{"unknown capability", []Grant{{Role: "a", Capabilities: []string{"read:own"}}, {Role: "b", Capabilities: []string{"import:*", "approve-all"}}},
			[]string{"api.auth.grants[1].capabilities[1]", `"approve-all"`, "import:<project>, import:*, upload:<project>, upload:*, egress:<project>, egress:*, read:own, read:<project>, read:*, approve:<stage-role>"}},
		{"role and group", []Grant{{Role: "a", Group: "g", Capabilities: []string{"read:own"}}},
			[]string{"api.auth.grants[0]", "exactly one of role and group"}},
		{"neither", []Grant{{Capabilities: []string{"read:own"}}},
			[]string{"api.auth.grants[0]", "neither a role nor a group"}},
		{"no capabilities", []Grant{{Role: "a"}, {Group: "g"}},
			[]string{"api.auth.grants[0]", "no capabilities"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The grants are checked before anything else, so no issuer is needed.
			_, err := New(context.Background(), Config{Grants: tc.grants}, Options{})
			if err == nil {
				t.Fatal("New accepted the grants")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestGrantsMapRolesAndGroups(t *testing.T) {
	g, err := compileGrants([]Grant{
		{Role: "researcher", Capabilities: []string{"import:*", "read:own"}},
		{Role: "researcher", Capabilities: []string{"upload:proj-a"}},
		{Group: "analysts", Capabilities: []string{"read:proj-a", "egress:*"}},
		{Group: "/org/ig", Capabilities: []string{"approve:information-governance"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := g.capabilities([]string{"researcher", "unmapped"}, []string{"/analysts", "/org/ig", "/org/other"})
	want := []string{"approve:information-governance", "egress:*", "import:*", "read:own", "read:proj-a", "upload:proj-a"}
	if got := c.List(); !reflect.DeepEqual(got, want) {
		t.Errorf("capabilities = %v, want %v", got, want)
	}
	if got := g.capabilities([]string{"RESEARCHER"}, []string{"/org"}).List(); len(got) != 0 {
		t.Errorf("unmatched roles and groups gave %v (role names are case-sensitive, groups match whole paths)", got)
	}
}

func TestCanRead(t *testing.T) {
	caps := func(s ...string) Capabilities {
		c, err := ParseCapabilities(s)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	st := model.RequestStatus{
		ID: "import-x-abc123", Project: "proj-a", Requester: "rita",
		Stages: []model.StageStatus{{Name: "engineering", Role: "data-engineer"}, {Name: "governance", Role: "information-governance"}},
	}
	cases := []struct {
		name string
		id   *Identity
		want bool
	}{
		{"anonymous", nil, false},
		{"own with read:own", &Identity{Username: "rita", Caps: caps("read:own")}, true},
		{"own without read:own", &Identity{Username: "rita", Caps: caps("import:*", "upload:*")}, false},
		{"someone else's with read:own", &Identity{Username: "rob", Caps: caps("read:own")}, false},
		{"read:<project>", &Identity{Username: "ann", Caps: caps("read:proj-a")}, true},
		{"read:<other project>", &Identity{Username: "ann", Caps: caps("read:proj-b")}, false},
		{"read:*", &Identity{Username: "ann", Caps: caps("read:*")}, true},
		{"approver of a stage role", &Identity{Username: "ian", Caps: caps("approve:information-governance")}, true},
		{"approver of another role", &Identity{Username: "sam", Caps: caps("approve:security")}, false},
		{"import:<project> alone", &Identity{Username: "ann", Caps: caps("import:proj-a")}, false},
		{"egress:<project> alone", &Identity{Username: "ann", Caps: caps("egress:proj-a")}, false},
	}
	for _, tc := range cases {
		if got := tc.id.CanRead(st); got != tc.want {
			t.Errorf("%s: CanRead = %v, want %v", tc.name, got, tc.want)
		}
	}
	empty := st
	empty.Requester = ""
	if (&Identity{Username: "", Caps: caps("read:own")}).CanRead(empty) {
		t.Error("an identity without a username reads a request without a requester")
	}

	summary := []struct {
		name                        string
		id                          *Identity
		requester, project, waiting string
		want                        bool
	}{
		{"anonymous", nil, "rita", "proj-a", "", false},
		{"own", &Identity{Username: "rita", Caps: caps("read:own")}, "rita", "proj-a", "", true},
		{"not own", &Identity{Username: "rob", Caps: caps("read:own")}, "rita", "proj-a", "", false},
		{"project", &Identity{Username: "ann", Caps: caps("read:proj-a")}, "rita", "proj-a", "", true},
		{"awaiting my role", &Identity{Username: "dana", Caps: caps("approve:data-engineer")}, "rita", "proj-a", "data-engineer", true},
		{"awaiting another role", &Identity{Username: "dana", Caps: caps("approve:data-engineer")}, "rita", "proj-a", "information-governance", false},
		{"awaiting no one", &Identity{Username: "dana", Caps: caps("approve:data-engineer")}, "rita", "proj-a", "", false},
		{"read:*", &Identity{Username: "ann", Caps: caps("read:*")}, "rita", "proj-z", "", true},
	}
	for _, tc := range summary {
		if got := tc.id.CanReadSummary(tc.requester, tc.project, tc.waiting); got != tc.want {
			t.Errorf("%s: CanReadSummary = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestClaimsReader(t *testing.T) {
	var claims map[string]any
	if err := json.Unmarshal([]byte(`{
		"sub": "s-1",
		"preferred_username": "rita",
		"name": "Rita R",
		"email": "rita@example.test",
		"realm_access": {"roles": ["researcher", "offline_access"]},
		"resource_access": {"my.client": {"roles": ["uploader"]}, "account": {"roles": ["view-profile"]}},
		"groups": ["/analysts", "/analysts", 7],
		"custom": {"single": "solo"}
	}`), &claims); err != nil {
		t.Fatal(err)
	}
	cr := claimsReader{usernameClaim: "preferred_username", groupsClaim: "groups",
		rolesClaims: []string{"realm_access.roles", "resource_access.my.client.roles", "custom.single", "missing.path"}}
	ic := cr.read(claims)
	want := identityClaims{Subject: "s-1", Username: "rita", Name: "Rita R", Email: "rita@example.test",
		Roles: []string{"offline_access", "researcher", "solo", "uploader"}, Groups: []string{"/analysts"}}
	if !reflect.DeepEqual(ic, want) {
		t.Errorf("read =\n%+v\nwant\n%+v", ic, want)
	}
	delete(claims, "preferred_username")
	if got := cr.read(claims).Username; got != "s-1" {
		t.Errorf("without the username claim, Username = %q, want the sub", got)
	}
}
