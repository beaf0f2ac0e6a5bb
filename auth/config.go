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
	// session cookies (required in oidc mode).
	SessionKeyKey string `yaml:"sessionKeyKey"`
	// SessionTTL is how long a browser session lasts (default 8h).
	SessionTTL model.Duration `yaml:"sessionTTL"`
}

// OIDCConfig names the issuer and how to read its tokens.
type OIDCConfig struct {
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"clientId"`
	// ClientSecretKey is the secret reference of the client secret; empty
	// for a public client (PKCE only).
	ClientSecretKey string `yaml:"clientSecretKey"`
	// Audience is the aud bearer tokens must carry (default ClientID).
	Audience string   `yaml:"audience"`
	Scopes   []string `yaml:"scopes"`
	// UsernameClaim names the user in decisions (default preferred_username).
	UsernameClaim string `yaml:"usernameClaim"`
	// RolesClaims are dotted claim paths holding role lists (default
	// realm_access.roles and resource_access.<clientId>.roles).
	RolesClaims []string `yaml:"rolesClaims"`
	// GroupsClaim holds the user's groups (default groups).
	GroupsClaim string `yaml:"groupsClaim"`
}

// Grant gives capabilities to the holders of a role or the members of a
// group (exactly one of Role and Group).
type Grant struct {
	Role         string   `yaml:"role"`
	Group        string   `yaml:"group"`
	Capabilities []string `yaml:"capabilities"`
}
