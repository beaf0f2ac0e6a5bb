package model

import (
	"fmt"
	"strings"
)

// PolicyRule says which policies govern requests of a kind for a project.
// The first listed policy is the default; a requester may pick any other
// listed one, and none that is not listed.
type PolicyRule struct {
	Project  string   `yaml:"project" json:"project"` // a project id, or "*" for any
	Kind     Kind     `yaml:"kind,omitempty" json:"kind,omitempty"`
	Policies []string `yaml:"policies" json:"policies"`
}

// PolicyBook is every policy a worker knows, the rules that choose among
// them, and the directory roster that says who holds which role.
type PolicyBook struct {
	Policies map[string]Policy
	Rules    []PolicyRule
	// Roster maps a user to the roles they hold (development directory).
	Roster map[string][]string
	// AttestedRoles makes every Directory trust the roles entry points
	// attest (config directory.attestedRoles): see Directory.AttestedRoles.
	AttestedRoles bool
}

// Select returns the policy that governs a request of kind for project.
// requested, when not empty, must be one the matching rule allows.
func (b *PolicyBook) Select(project string, kind Kind, requested string) (Policy, error) {
	var rule *PolicyRule
	for _, exact := range []bool{true, false} {
		for i, r := range b.Rules {
			if (r.Kind == "" || r.Kind == kind) && ((exact && r.Project == project) || (!exact && r.Project == "*")) {
				rule = &b.Rules[i]
				break
			}
		}
		if rule != nil {
			break
		}
	}
	if rule == nil || len(rule.Policies) == 0 {
		return Policy{}, FieldError{Path: "policies.rules", Msg: fmt.Sprintf("no rule in the worker config chooses a policy for %s requests of project %s: add a rule with project %q (or \"*\") and its policies", kind, project, project)}
	}
	name := rule.Policies[0]
	if requested != "" {
		if !contains(rule.Policies, requested) {
			return Policy{}, FieldError{Path: "policy", Msg: fmt.Sprintf("policy %q is not allowed for %s requests of project %s (allowed: %s); pass --policy with one of them, or leave it out for the default %s", requested, kind, project, strings.Join(rule.Policies, ", "), rule.Policies[0])}
		}
		name = requested
	}
	p, ok := b.Policies[name]
	if !ok {
		return Policy{}, FieldError{Path: "policies.files", Msg: fmt.Sprintf("policy %q is named by a rule but no policy file defines it: add its file to policies.files", name)}
	}
	return p, nil
}

// Directory snapshots the members of the roles a policy's stages use.
func (b *PolicyBook) Directory(p Policy) Directory {
	d := DirectoryFromRoster(b.Roster, p.Roles())
	d.AttestedRoles = b.AttestedRoles
	return d
}

// Validate checks that every rule names known policies.
func (b *PolicyBook) Validate() error {
	var errs FieldErrors
	for i, r := range b.Rules {
		p := fmt.Sprintf("policies.rules[%d]", i)
		if r.Project == "" {
			errs.add(0, p+".project", "missing: a project id, or \"*\" for any project")
		}
		if len(r.Policies) == 0 {
			errs.add(0, p+".policies", "missing: list the policies this rule allows, default first")
		}
		for j, name := range r.Policies {
			if _, ok := b.Policies[name]; !ok {
				errs.add(0, fmt.Sprintf("%s.policies[%d]", p, j), "no policy named %q (known: %s)", name, strings.Join(sortedKeys(b.Policies), ", "))
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
