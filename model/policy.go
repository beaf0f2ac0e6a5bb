package model

import (
	"fmt"
	"os"
	"strings"
)

// KindApprovalPolicy is the kind of a policy document.
const (
	PolicyAPIVersion   = "airlock.xlscsde.nhs.uk/v1"
	KindApprovalPolicy = "ApprovalPolicy"
)

// Policy is an approval policy: ordered stages of human gates. A snapshot of
// the policy is recorded in each request, so a later edit never changes the
// rules of a request already running.
type Policy struct {
	Name    string  `json:"name"`
	Version string  `json:"version"`
	Stages  []Stage `json:"stages"`
	// Checks are an egress policy's automatic checks.
	Checks *OutputChecks `json:"checks,omitempty"`
	// Retention says how long staged and released data is kept.
	Retention Retention `json:"retention"`
	// ResubmitWithin bounds how long an egress may stay RETURNED before
	// it expires (0: no limit).
	ResubmitWithin Duration `json:"resubmit_within,omitempty"`
}

// Stage is one gate: members of Role give Approvals distinct approvals.
type Stage struct {
	Name        string   `yaml:"name" json:"name"`
	Role        string   `yaml:"role" json:"role"`
	Approvals   int      `yaml:"approvals" json:"approvals"`
	Deadline    Duration `yaml:"deadline,omitempty" json:"deadline,omitempty"`
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`
	// Independent makes the stage's reviews independent (output
	// checking): no one sees a review of the current turn until the stage
	// has all the reviews it needs.
	Independent bool `yaml:"independent,omitempty" json:"independent,omitempty"`
}

// policyDocument is a policy as written in YAML.
type policyDocument struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   ObjectMeta `yaml:"metadata"`
	Spec       struct {
		Version        string        `yaml:"version"`
		Stages         []Stage       `yaml:"stages"`
		Checks         *OutputChecks `yaml:"checks"`
		Retention      Retention     `yaml:"retention"`
		ResubmitWithin Duration      `yaml:"resubmitWithin"`
	} `yaml:"spec"`
}

// ParsePolicy reads an ApprovalPolicy document.
func ParsePolicy(file string, data []byte) (Policy, error) {
	raws, err := splitDocuments(data)
	if err != nil {
		return Policy{}, withFile(err.(FieldErrors), file)
	}
	if len(raws) != 1 {
		return Policy{}, withFile(FieldErrors{{Msg: fmt.Sprintf("expected one %s document, found %d", KindApprovalPolicy, len(raws))}}, file)
	}
	var doc policyDocument
	shape := decodeStrict(raws[0].node, &doc)
	p := Policy{Name: doc.Metadata.Name, Version: doc.Spec.Version, Stages: doc.Spec.Stages,
		Checks: doc.Spec.Checks, Retention: doc.Spec.Retention, ResubmitWithin: doc.Spec.ResubmitWithin}
	var errs FieldErrors
	if doc.APIVersion != PolicyAPIVersion {
		errs.add(0, "apiVersion", "unsupported apiVersion %q (expected %s)", doc.APIVersion, PolicyAPIVersion)
	}
	if doc.Kind != KindApprovalPolicy {
		errs.add(0, "kind", "expected %s, found %q", KindApprovalPolicy, doc.Kind)
	}
	errs = mergeErrors(shape, append(errs, p.Validate()...))
	if len(errs) > 0 {
		return Policy{}, withFile(errs, file)
	}
	return p, nil
}

// LoadPolicy reads a policy file.
func LoadPolicy(path string) (Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, err
	}
	return ParsePolicy(path, data)
}

// Validate checks a policy's stages.
func (p Policy) Validate() FieldErrors {
	var errs FieldErrors
	if !ValidName(p.Name) {
		errs.add(0, "metadata.name", "missing or invalid policy name %q: %s", p.Name, NameRule)
	}
	if p.Version == "" {
		errs.add(0, "spec.version", "missing: version the policy (e.g. \"1\") so each request records which rules it ran under")
	}
	if len(p.Stages) == 0 {
		errs.add(0, "spec.stages", "missing: list at least one stage (name, role, approvals)")
	}
	seen := map[string]int{}
	for i, s := range p.Stages {
		path := fmt.Sprintf("spec.stages[%d]", i)
		if !ValidName(s.Name) {
			errs.add(0, path+".name", "missing or invalid stage name %q: %s", s.Name, NameRule)
		} else if j, dup := seen[s.Name]; dup {
			errs.add(0, path+".name", "duplicate stage name %q (also spec.stages[%d])", s.Name, j)
		}
		seen[s.Name] = i
		if strings.TrimSpace(s.Role) == "" {
			errs.add(0, path+".role", "missing: name the directory role whose members decide this stage")
		}
		if s.Approvals < 1 {
			errs.add(0, path+".approvals", "must be at least 1 (found %d): how many distinct people must approve", s.Approvals)
		}
		if s.Deadline < 0 {
			errs.add(0, path+".deadline", "must not be negative")
		}
	}
	errs = append(errs, p.Checks.Validate("spec.checks")...)
	if p.Retention.StagingGrace < 0 {
		errs.add(0, "spec.retention.stagingGrace", "must not be negative (0 deletes at once)")
	}
	if p.Retention.Released < 0 {
		errs.add(0, "spec.retention.released", "must not be negative (0 keeps released data)")
	}
	if p.ResubmitWithin < 0 {
		errs.add(0, "spec.resubmitWithin", "must not be negative (0: no limit)")
	}
	return errs
}

// Stage returns the named stage.
func (p Policy) Stage(name string) (Stage, int, bool) {
	for i, s := range p.Stages {
		if s.Name == name {
			return s, i, true
		}
	}
	return Stage{}, -1, false
}

// StageNames lists the stage names in order.
func (p Policy) StageNames() []string {
	out := make([]string, len(p.Stages))
	for i, s := range p.Stages {
		out[i] = s.Name
	}
	return out
}

// Directory says which roles each person holds. In development it is the
// roster in the worker's config; in production it comes from OIDC claims.
type Directory struct {
	// Members maps a role to the people who hold it.
	Members map[string][]string `json:"members"`
	// AttestedRoles makes the roles an entry point verified for a person
	// (DecisionRequest.Roles, CancelRequest.Roles: the API reads them from
	// the identity provider's claims) count as well as Members. It is set
	// in production (worker config directory.attestedRoles), where the
	// identity provider is the directory; without it only Members count.
	AttestedRoles bool `json:"attested_roles,omitempty"`
}

// Admits reports whether user holds role: as a member in the directory,
// or, when the directory trusts attested roles, because attested (the roles
// the entry point verified for user) lists it.
func (d Directory) Admits(user string, attested []string, role string) bool {
	return d.HasRole(user, role) || (d.AttestedRoles && contains(attested, role))
}

// attestedClause completes "X is not a member of role R in the directory"
// when attested roles count too.
func (d Directory) attestedClause() string {
	if d.AttestedRoles {
		return " nor among the roles their sign-in attests"
	}
	return ""
}

// HasRole reports whether user holds role in the roster.
func (d Directory) HasRole(user, role string) bool {
	for _, m := range d.Members[role] {
		if m == user {
			return true
		}
	}
	return false
}

// DirectoryFromRoster turns a user -> roles roster into a Directory limited to roles.
func DirectoryFromRoster(roster map[string][]string, roles []string) Directory {
	d := Directory{Members: map[string][]string{}}
	for _, role := range roles {
		d.Members[role] = []string{}
	}
	for _, user := range sortedKeys(roster) {
		for _, r := range roster[user] {
			if _, wanted := d.Members[r]; wanted {
				d.Members[r] = append(d.Members[r], user)
			}
		}
	}
	return d
}

// Roles lists the distinct roles a policy's stages use.
func (p Policy) Roles() []string {
	var out []string
	for _, s := range p.Stages {
		if !contains(out, s.Role) {
			out = append(out, s.Role)
		}
	}
	return out
}
