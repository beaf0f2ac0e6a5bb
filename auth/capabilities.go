package auth

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ValidCapabilities lists the forms a capability string may take, for
// refusals and documentation.
const ValidCapabilities = "import:<project>, import:*, upload:<project>, upload:*, egress:<project>, egress:*, read:own, read:<project>, read:*, approve:<stage-role>"

// Capabilities is what an identity may do. The zero value allows nothing.
// They come from the config's grants (see Config.Grants), never from the
// identity provider directly.
type Capabilities struct {
	importAll bool
	imports   map[string]bool
	uploadAll bool
	uploads   map[string]bool
	egressAll bool
	egresses  map[string]bool
	readOwn   bool
	readAll   bool
	reads     map[string]bool
	approves  map[string]bool
}

// ParseCapabilities reads capability strings (ValidCapabilities). A string
// of any other form is an error naming it and listing the valid forms.
// "read:own" means the caller's own requests, so a project named "own"
// cannot be granted by name (use read:* or rename the project).
func ParseCapabilities(list []string) (Capabilities, error) {
	var c Capabilities
	for _, s := range list {
		if err := c.add(s); err != nil {
			return Capabilities{}, err
		}
	}
	return c, nil
}

func (c *Capabilities) add(s string) error {
	verb, arg, ok := strings.Cut(s, ":")
	if !ok || arg == "" || strings.TrimSpace(arg) != arg || strings.ContainsAny(arg, " \t\r\n:,") {
		return fmt.Errorf("capability %q is not valid: use one of %s", s, ValidCapabilities)
	}
	set := func(m *map[string]bool) {
		if *m == nil {
			*m = map[string]bool{}
		}
		(*m)[arg] = true
	}
	switch verb {
	case "import":
		if arg == "*" {
			c.importAll = true
		} else {
			set(&c.imports)
		}
	case "upload":
		if arg == "*" {
			c.uploadAll = true
		} else {
			set(&c.uploads)
		}
	case "egress":
		if arg == "*" {
			c.egressAll = true
		} else {
			set(&c.egresses)
		}
	case "read":
		switch arg {
		case "*":
			c.readAll = true
		case "own":
			c.readOwn = true
		default:
			set(&c.reads)
		}
	case "approve":
		if arg == "*" {
			return fmt.Errorf("capability %q is not valid: approve must name one stage role (approve:<stage-role>); grant one approve capability per role", s)
		}
		set(&c.approves)
	default:
		return fmt.Errorf("capability %q is not valid: %q is not a capability; use one of %s", s, verb, ValidCapabilities)
	}
	return nil
}

// merge adds o's capabilities to c.
func (c *Capabilities) merge(o Capabilities) {
	for _, s := range o.List() {
		_ = c.add(s) // o's strings were valid when parsed
	}
}

// CanImport reports whether the holder may start imports into project.
func (c Capabilities) CanImport(project string) bool {
	return c.importAll || (project != "" && c.imports[project])
}

// CanUpload reports whether the holder may start uploads into project.
func (c Capabilities) CanUpload(project string) bool {
	return c.uploadAll || (project != "" && c.uploads[project])
}

// CanEgress reports whether the holder may ask for egress (outputs to
// leave a workspace) in project.
func (c Capabilities) CanEgress(project string) bool {
	return c.egressAll || (project != "" && c.egresses[project])
}

// CanApprove reports whether the holder may decide stages of role.
func (c Capabilities) CanApprove(role string) bool {
	return role != "" && c.approves[role]
}

// ApproveRoles lists the stage roles the holder may decide, sorted.
func (c Capabilities) ApproveRoles() []string { return sortedKeys(c.approves) }

// ReadsAll reports read:* (every request).
func (c Capabilities) ReadsAll() bool { return c.readAll }

// ReadsOwn reports read:own (requests the holder made).
func (c Capabilities) ReadsOwn() bool { return c.readOwn }

// ReadProjects lists the projects named by read:<project>, sorted.
func (c Capabilities) ReadProjects() []string { return sortedKeys(c.reads) }

// CanReadProject reports whether the holder may read every request of
// project (read:<project> or read:*).
func (c Capabilities) CanReadProject(project string) bool {
	return c.readAll || (project != "" && c.reads[project])
}

// List returns the capabilities as sorted strings in ValidCapabilities form.
func (c Capabilities) List() []string {
	var out []string
	if c.importAll {
		out = append(out, "import:*")
	}
	for _, p := range sortedKeys(c.imports) {
		out = append(out, "import:"+p)
	}
	if c.uploadAll {
		out = append(out, "upload:*")
	}
	for _, p := range sortedKeys(c.uploads) {
		out = append(out, "upload:"+p)
	}
	if c.egressAll {
		out = append(out, "egress:*")
	}
	for _, p := range sortedKeys(c.egresses) {
		out = append(out, "egress:"+p)
	}
	if c.readAll {
		out = append(out, "read:*")
	}
	if c.readOwn {
		out = append(out, "read:own")
	}
	for _, p := range sortedKeys(c.reads) {
		out = append(out, "read:"+p)
	}
	for _, r := range sortedKeys(c.approves) {
		out = append(out, "approve:"+r)
	}
	slices.Sort(out)
	return out
}

// MarshalJSON writes the capabilities as a list of strings.
func (c Capabilities) MarshalJSON() ([]byte, error) {
	l := c.List()
	if l == nil {
		l = []string{}
	}
	return json.Marshal(l)
}

// UnmarshalJSON reads a list of capability strings.
func (c *Capabilities) UnmarshalJSON(b []byte) error {
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	p, err := ParseCapabilities(l)
	if err != nil {
		return err
	}
	*c = p
	return nil
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// grants is the compiled form of Config.Grants.
type grants struct {
	byRole  map[string]Capabilities
	byGroup map[string]Capabilities
}

// compileGrants checks and compiles the config's grants. Errors name the
// grant (api.auth.grants[i]) and say how to fix it.
func compileGrants(list []Grant) (grants, error) {
	g := grants{byRole: map[string]Capabilities{}, byGroup: map[string]Capabilities{}}
	for i, gr := range list {
		field := fmt.Sprintf("api.auth.grants[%d]", i)
		role, group := strings.TrimSpace(gr.Role), normGroup(gr.Group)
		switch {
		case role == "" && group == "":
			return grants{}, fmt.Errorf("%s: names neither a role nor a group; set exactly one of role and group", field)
		case role != "" && group != "":
			return grants{}, fmt.Errorf("%s: names both role %q and group %q; set exactly one of role and group (use two grants for both)", field, role, gr.Group)
		}
		if len(gr.Capabilities) == 0 {
			return grants{}, fmt.Errorf("%s: has no capabilities; list at least one of %s", field, ValidCapabilities)
		}
		var caps Capabilities
		for j, s := range gr.Capabilities {
			if err := caps.add(s); err != nil {
				return grants{}, fmt.Errorf("%s.capabilities[%d]: %w", field, j, err)
			}
		}
		target, key := g.byRole, role
		if group != "" {
			target, key = g.byGroup, group
		}
		c := target[key]
		c.merge(caps)
		target[key] = c
	}
	return g, nil
}

// capabilities returns the union of the grants of roles and groups.
func (g grants) capabilities(roles, groups []string) Capabilities {
	var c Capabilities
	for _, r := range roles {
		if rc, ok := g.byRole[r]; ok {
			c.merge(rc)
		}
	}
	for _, gr := range groups {
		if gc, ok := g.byGroup[normGroup(gr)]; ok {
			c.merge(gc)
		}
	}
	return c
}

// normGroup makes "/analysts" (Keycloak's full group path of a top-level
// group) and "analysts" the same group. Nested groups keep their path:
// "/org/analysts" matches a grant for "org/analysts" or "/org/analysts".
func normGroup(g string) string {
	return strings.TrimPrefix(strings.TrimSpace(g), "/")
}
