package auth

import "github.com/airlockhq/airlock/model"

// Config is the API's sign-in configuration (`api.auth` in the config file).
type Config struct {
	// Mode is "oidc" (the default: an OpenID Connect issuer such as
	// Keycloak) or "dev" (users from the config's directory, for make dev
	// only: refused unless the API listens on loopback).
	Mode string     `yaml:"mode"`
	OIDC OIDCConfig `yaml:"oidc"`
	// Grants map the identity provider's roles and groups to capabilities.
	Grants []Grant `yaml:"grants"`
	// SessionKeyKey is the secret reference of the key that encrypts
	// session cookies (AES-256-GCM, key derived with HKDF-SHA256) and binds
	// CSRF tokens: at least 32 random bytes, such as the output of
	// `openssl rand -base64 48`. Required in oidc mode; in dev mode
	// optional (a random key per process when empty). Changing it signs
	// everyone out.
	SessionKeyKey string `yaml:"sessionKeyKey"`
	// SessionTTL is how long a browser session lasts (default 8h),
	// whatever the identity provider's own session does. Signing out
	// removes the cookie; sessions are not stored server-side.
	SessionTTL model.Duration `yaml:"sessionTTL"`
}

// OIDCConfig names the issuer and how to read its tokens.
type OIDCConfig struct {
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"clientId"`
	// ClientSecretKey is the secret reference of the client secret; empty
	// for a public client (PKCE only).
	ClientSecretKey string `yaml:"clientSecretKey"`
	// Audience is the aud bearer tokens must carry (default ClientID). A
	// bearer token is also accepted when its azp (authorized party) is
	// ClientID: Keycloak issues tokens to a client with aud "account"
	// unless an audience mapper adds one.
	Audience string `yaml:"audience"`
	// Scopes are requested at sign-in (default openid profile email;
	// openid is always added).
	Scopes []string `yaml:"scopes"`
	// UsernameClaim names the user in requests and decisions (default
	// preferred_username, falling back to sub). It must be unique and not
	// editable by the user (Keycloak: leave "edit username" off).
	UsernameClaim string `yaml:"usernameClaim"`
	// RolesClaims are dotted claim paths holding role lists (default
	// realm_access.roles and resource_access.<clientId>.roles, where
	// <clientId> stands for ClientID in any path).
	RolesClaims []string `yaml:"rolesClaims"`
	// GroupsClaim holds the user's groups (default groups). A grant's
	// group "/analysts" and "analysts" are the same top-level group.
	GroupsClaim string `yaml:"groupsClaim"`
}

// Grant gives capabilities to the holders of a role or the members of a
// group (exactly one of Role and Group). Capabilities are strings of the
// forms in ValidCapabilities: import:<project>, import:*, upload:<project>,
// upload:*, egress:<project>, egress:*, read:own, read:<project>, read:*,
// approve:<stage-role>
// (approve also lets the holder read requests with a stage of that role).
type Grant struct {
	Role         string   `yaml:"role"`
	Group        string   `yaml:"group"`
	Capabilities []string `yaml:"capabilities"`
}
