package auth

import (
	"context"

	"github.com/airlockhq/airlock/model"
)

// How an identity was established (Identity.Method).
const (
	// MethodBearer: an "Authorization: Bearer" access token verified against
	// the OIDC issuer.
	MethodBearer = "bearer"
	// MethodSession: a browser session cookie set by /auth/callback or
	// /auth/dev. Only these requests need CheckCSRF on form POSTs.
	MethodSession = "session"
	// MethodDevHeader: the X-Airlock-Dev-User header (dev mode only).
	MethodDevHeader = "dev-header"
)

// Identity is a signed-in caller: who they are (from verified token claims
// or the dev directory) and what the config's grants let them do.
type Identity struct {
	// Subject is the issuer's stable id for the user (sub); "dev:<name>" in
	// dev mode.
	Subject string `json:"subject"`
	// Username names the user in requests and decisions (the
	// UsernameClaim, falling back to sub).
	Username string       `json:"username"`
	Name     string       `json:"name,omitempty"`
	Email    string       `json:"email,omitempty"`
	Roles    []string     `json:"roles"`
	Groups   []string     `json:"groups"`
	Caps     Capabilities `json:"capabilities"`
	// Method says how the identity was established (MethodBearer,
	// MethodSession or MethodDevHeader).
	Method string `json:"method"`
}

// CanImport reports whether the identity may start imports into project.
func (id *Identity) CanImport(project string) bool { return id != nil && id.Caps.CanImport(project) }

// CanUpload reports whether the identity may start uploads into project.
func (id *Identity) CanUpload(project string) bool { return id != nil && id.Caps.CanUpload(project) }

// CanApprove reports whether the identity may decide stages of role.
func (id *Identity) CanApprove(role string) bool { return id != nil && id.Caps.CanApprove(role) }

// ApproveRoles lists the stage roles the identity may decide.
func (id *Identity) ApproveRoles() []string {
	if id == nil {
		return nil
	}
	return id.Caps.ApproveRoles()
}

// HasRole reports whether the identity provider (or dev directory) gave the
// identity role.
func (id *Identity) HasRole(role string) bool {
	if id == nil {
		return false
	}
	for _, r := range id.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// CanRead reports whether the identity may see the request st: its own
// request with read:own, a project it may read (read:<project>, read:*),
// or a request with a stage of a role it may approve (approve:<role>).
func (id *Identity) CanRead(st model.RequestStatus) bool {
	if id == nil {
		return false
	}
	if id.CanReadSummary(st.Requester, st.Project, "") {
		return true
	}
	for _, s := range st.Stages {
		if id.Caps.CanApprove(s.Role) {
			return true
		}
	}
	return false
}

// CanReadSummary decides for a list row, which carries no stages: the
// identity's own request with read:own, a project it may read, or a
// request awaiting a decision by a role it may approve (awaitingRole; ""
// when the request awaits no one).
func (id *Identity) CanReadSummary(requester, project, awaitingRole string) bool {
	if id == nil {
		return false
	}
	switch {
	case id.Caps.CanReadProject(project):
		return true
	case id.Caps.ReadsOwn() && requester != "" && requester == id.Username:
		return true
	case awaitingRole != "" && id.Caps.CanApprove(awaitingRole):
		return true
	}
	return false
}

type identityKey struct{}

// WithIdentity returns ctx carrying id (Middleware does this; tests and
// other entry points may too).
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity Middleware attached, if any.
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}
