package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const twoStagePolicyFile = "testdata/policies/two-stage.yaml"

// twoStagePolicy is data-engineer, then information-governance within 72h.
func twoStagePolicy(t *testing.T) Policy {
	t.Helper()
	p, err := LoadPolicy(twoStagePolicyFile)
	if err != nil {
		t.Fatalf("LoadPolicy: %v", err)
	}
	return p
}

func TestParsePolicyTwoStages(t *testing.T) {
	p := twoStagePolicy(t)
	want := Policy{
		Name:    "ingress-standard",
		Version: "1",
		Stages: []Stage{
			{Name: "engineering", Role: "data-engineer", Approvals: 1, Description: "A data engineer checks the extracted files."},
			{Name: "governance", Role: "information-governance", Approvals: 1, Deadline: Duration(72 * time.Hour)},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("policy =\n%+v\nwant\n%+v", p, want)
	}
	if got := p.StageNames(); !reflect.DeepEqual(got, []string{"engineering", "governance"}) {
		t.Errorf("StageNames = %v", got)
	}
	if got := p.Roles(); !reflect.DeepEqual(got, []string{"data-engineer", "information-governance"}) {
		t.Errorf("Roles = %v", got)
	}
	if s, i, ok := p.Stage("governance"); !ok || i != 1 || s.Role != "information-governance" || time.Duration(s.Deadline) != 72*time.Hour {
		t.Errorf("Stage(governance) = %+v, %d, %v", s, i, ok)
	}
	if _, i, ok := p.Stage("security"); ok || i != -1 {
		t.Errorf("Stage(security) = %d, %v", i, ok)
	}
	if p.Stages[1].Deadline.String() != "72h0m0s" {
		t.Errorf("Deadline.String() = %s", p.Stages[1].Deadline)
	}
}

func TestPolicyJSONRoundTrip(t *testing.T) {
	p := twoStagePolicy(t)
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"deadline":"72h0m0s"`) {
		t.Errorf("deadline is written as a duration string: %s", b)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Errorf("round trip = %+v, want %+v", back, p)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"three days"`), &d); err == nil {
		t.Errorf("bad duration accepted from JSON")
	}
}

func TestLoadPolicyMissingFile(t *testing.T) {
	if _, err := LoadPolicy(filepath.Join(t.TempDir(), "absent.yaml")); err == nil || !os.IsNotExist(err) {
		t.Errorf("LoadPolicy(absent) = %v", err)
	}
}

func policyRefusal(t *testing.T, file, doc string) FieldErrors {
	t.Helper()
	p, err := ParsePolicy(file, []byte(doc))
	if err == nil {
		t.Fatalf("ParsePolicy accepted a policy it must refuse:\n%s", doc)
	}
	if !reflect.DeepEqual(p, Policy{}) {
		t.Errorf("on error no policy is returned, got %+v", p)
	}
	fes, ok := AsFieldErrors(err)
	if !ok {
		t.Fatalf("error is %T, want FieldErrors: %v", err, err)
	}
	for _, fe := range fes {
		if fe.File != file {
			t.Errorf("error does not name the file %s: %#v", file, fe)
		}
	}
	return fes
}

func TestParsePolicyRefusals(t *testing.T) {
	data, err := os.ReadFile(twoStagePolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	base := string(data)
	cases := []struct {
		name, old, new, path string
		contains             []string
		wantCount            int
	}{
		{
			name: "zero approvals",
			old:  "    role: data-engineer\n    approvals: 1\n", new: "    role: data-engineer\n    approvals: 0\n",
			path: "spec.stages[0].approvals", contains: []string{"must be at least 1 (found 0)", "distinct people"}, wantCount: 1,
		},
		{
			name: "approvals left out",
			old:  "    role: data-engineer\n    approvals: 1\n", new: "    role: data-engineer\n",
			path: "spec.stages[0].approvals", contains: []string{"must be at least 1 (found 0)"}, wantCount: 1,
		},
		{
			name: "approvals not a number",
			old:  "    role: data-engineer\n    approvals: 1\n", new: "    role: data-engineer\n    approvals: two\n",
			path: "spec.stages[0].approvals", contains: []string{`expected a whole number, found "two"`}, wantCount: 1,
		},
		{
			name: "missing role",
			old:  "    role: information-governance\n", new: "",
			path: "spec.stages[1].role", contains: []string{"missing", "directory role"}, wantCount: 1,
		},
		{
			name: "duplicate stage names",
			old:  "  - name: governance\n", new: "  - name: engineering\n",
			path: "spec.stages[1].name", contains: []string{`duplicate stage name "engineering" (also spec.stages[0])`}, wantCount: 1,
		},
		{
			name: "bad duration",
			old:  "    deadline: 72h\n", new: "    deadline: 3 days\n",
			path: "spec.stages[1].deadline", contains: []string{`invalid duration "3 days"`, "72h"}, wantCount: 1,
		},
		{
			name: "duration without unit",
			old:  "    deadline: 72h\n", new: "    deadline: 72\n",
			path: "spec.stages[1].deadline", contains: []string{`invalid duration "72"`}, wantCount: 1,
		},
		{
			name: "negative duration",
			old:  "    deadline: 72h\n", new: "    deadline: -1h\n",
			path: "spec.stages[1].deadline", contains: []string{"must not be negative"}, wantCount: 1,
		},
		{
			name: "unknown field in a stage",
			old:  "    deadline: 72h\n", new: "    deadline: 72h\n    reminder: 24h\n",
			path: "spec.stages[1].reminder", contains: []string{`unknown field "reminder" (expected one of: approvals, deadline, description, independent, name, role)`}, wantCount: 1,
		},
		{
			name: "unknown field in spec",
			old:  "  version: \"1\"\n", new: "  version: \"1\"\n  owner: ig-team\n",
			path: "spec.owner", contains: []string{`unknown field "owner" (expected one of: checks, resubmitWithin, retention, stages, version)`}, wantCount: 1,
		},
		{
			name: "invalid stage name",
			old:  "  - name: governance\n", new: "  - name: Governance Board\n",
			path: "spec.stages[1].name", contains: []string{`invalid stage name "Governance Board"`}, wantCount: 1,
		},
		{
			name: "missing version",
			old:  "  version: \"1\"\n", new: "",
			path: "spec.version", contains: []string{"missing"}, wantCount: 1,
		},
		{
			name: "wrong kind",
			old:  "kind: ApprovalPolicy\n", new: "kind: Policy\n",
			path: "kind", contains: []string{`expected ApprovalPolicy, found "Policy"`}, wantCount: 1,
		},
		{
			name: "wrong apiVersion",
			old:  "apiVersion: airlock.xlscsde.nhs.uk/v1\n", new: "apiVersion: xlscsde.nhs.uk/v1\n",
			path: "apiVersion", contains: []string{`unsupported apiVersion "xlscsde.nhs.uk/v1" (expected airlock.xlscsde.nhs.uk/v1)`}, wantCount: 1,
		},
		{
			name: "no stages",
			old:  base[strings.Index(base, "  stages:\n"):], new: "  stages: []\n",
			path: "spec.stages", contains: []string{"at least one stage"}, wantCount: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fes := policyRefusal(t, "policy.yaml", mutate(t, base, tc.old, tc.new))
			assertContains(t, errorAt(t, fes, tc.path).Msg, tc.contains...)
			if tc.wantCount > 0 && len(fes) != tc.wantCount {
				t.Errorf("want %d errors, got %d:\n%v", tc.wantCount, len(fes), fes)
			}
		})
	}
}

func TestParsePolicyReportsEveryProblem(t *testing.T) {
	data, err := os.ReadFile(twoStagePolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := mutate(t, string(data), "    approvals: 1\n    description:", "    approvals: 0\n    description:")
	doc = mutate(t, doc, "    deadline: 72h\n", "    deadline: soon\n    reminder: 1h\n")
	doc = mutate(t, doc, "    role: information-governance\n", "")
	fes := policyRefusal(t, "policy.yaml", doc)
	for _, p := range []string{"spec.stages[0].approvals", "spec.stages[1].deadline", "spec.stages[1].reminder", "spec.stages[1].role"} {
		errorAt(t, fes, p)
	}
	if len(fes) != 4 {
		t.Errorf("want 4 errors, got %d:\n%v", len(fes), fes)
	}
}

func TestParsePolicyStreamShape(t *testing.T) {
	data, err := os.ReadFile(twoStagePolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	fes := policyRefusal(t, "p.yaml", string(data)+"---\n"+string(data))
	assertContains(t, fes.Error(), "p.yaml: expected one ApprovalPolicy document, found 2")

	fes = policyRefusal(t, "p.yaml", "")
	assertContains(t, fes.Error(), "found 0")

	fes = policyRefusal(t, "p.yaml", "apiVersion: airlock.xlscsde.nhs.uk/v1\nkind: 'ApprovalPolicy\n")
	assertContains(t, fes.Error(), "p.yaml:", "malformed YAML")
}

func TestDirectory(t *testing.T) {
	roster := map[string][]string{
		"dana": {"data-engineer", "information-governance"},
		"dave": {"data-engineer", "operator"},
		"ian":  {"information-governance"},
		"olga": {"output-checker"},
	}
	d := DirectoryFromRoster(roster, []string{"data-engineer", "information-governance", "approver"})
	want := map[string][]string{
		"data-engineer":          {"dana", "dave"},
		"information-governance": {"dana", "ian"},
		"approver":               {},
	}
	if !reflect.DeepEqual(d.Members, want) {
		t.Errorf("Members = %v, want %v", d.Members, want)
	}
	if !d.HasRole("dave", "data-engineer") || d.HasRole("dave", "operator") || d.HasRole("olga", "output-checker") {
		t.Errorf("HasRole follows only the wanted roles: %v", d.Members)
	}
	if d.HasRole("", "approver") || (Directory{}).HasRole("dana", "data-engineer") {
		t.Errorf("empty user or directory holds no role")
	}
}
