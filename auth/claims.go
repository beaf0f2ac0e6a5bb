package auth

import (
	"slices"
	"strings"
)

// claimsReader turns verified token claims into identity fields, as the
// OIDC config says.
type claimsReader struct {
	usernameClaim string
	rolesClaims   []string
	groupsClaim   string
}

// identityClaims are the fields Airlock takes from a token.
type identityClaims struct {
	Subject, Username, Name, Email string
	Roles, Groups                  []string
}

func (cr claimsReader) read(claims map[string]any) identityClaims {
	var ic identityClaims
	ic.Subject, _ = claims["sub"].(string)
	ic.Username, _ = lookupPath(claims, cr.usernameClaim).(string)
	if strings.TrimSpace(ic.Username) == "" {
		ic.Username = ic.Subject
	}
	ic.Name, _ = claims["name"].(string)
	ic.Email, _ = claims["email"].(string)
	for _, p := range cr.rolesClaims {
		ic.Roles = appendStrings(ic.Roles, lookupPath(claims, p))
	}
	ic.Groups = appendStrings(nil, lookupPath(claims, cr.groupsClaim))
	ic.Roles, ic.Groups = uniqueSorted(ic.Roles), uniqueSorted(ic.Groups)
	return ic
}

// merge adds the roles and groups of o (another verified token of the same
// subject) to ic, and fills fields ic lacks.
func (ic *identityClaims) merge(o identityClaims) {
	ic.Roles = uniqueSorted(append(ic.Roles, o.Roles...))
	ic.Groups = uniqueSorted(append(ic.Groups, o.Groups...))
	if ic.Name == "" {
		ic.Name = o.Name
	}
	if ic.Email == "" {
		ic.Email = o.Email
	}
	if ic.Username == ic.Subject && o.Username != "" {
		ic.Username = o.Username
	}
}

// lookupPath follows a dotted path (realm_access.roles) through nested
// JSON objects. A key may itself contain dots (resource_access.my.client.roles
// finds the client "my.client"): the longest key that matches wins.
func lookupPath(v any, path string) any {
	if path == "" {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	if x, ok := m[path]; ok {
		return x
	}
	// Try the longest prefix that is a key, then shorter ones.
	for i := len(path) - 1; i > 0; i-- {
		if path[i] != '.' {
			continue
		}
		if x, ok := m[path[:i]]; ok {
			if r := lookupPath(x, path[i+1:]); r != nil {
				return r
			}
		}
	}
	return nil
}

// appendStrings appends a claim holding a string or a list of strings;
// other values are ignored.
func appendStrings(dst []string, v any) []string {
	switch x := v.(type) {
	case string:
		if x != "" {
			dst = append(dst, x)
		}
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				dst = append(dst, s)
			}
		}
	case []string:
		for _, s := range x {
			if s != "" {
				dst = append(dst, s)
			}
		}
	}
	return dst
}

func uniqueSorted(s []string) []string {
	if len(s) == 0 {
		return []string{}
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
