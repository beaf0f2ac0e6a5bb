package fakedatabricks

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// serveOIDCMetadata answers the workspace's OAuth authorization server
// metadata (RFC 8414), which SDKs read to find the token endpoint.
func (s *Server) serveOIDCMetadata(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.URL + "/oidc",
		"authorization_endpoint":                s.URL + "/oidc/v1/authorize",
		"token_endpoint":                        s.URL + "/oidc/v1/token",
		"grant_types_supported":                 []string{"client_credentials", "authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      []string{"all-apis", "offline_access"},
	})
}

// serveToken grants client_credentials to the configured service principal.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	oauthError := func(status int, code, desc string) {
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		oauthError(http.StatusBadRequest, "invalid_request", "the token request must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		oauthError(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	// RFC 6749 section 2.3.1: HTTP Basic carries the form-encoded id and
	// secret; client_secret_post sends them as form fields.
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if s.opts.ClientID == "" || id != s.opts.ClientID || secret != s.opts.ClientSecret {
		oauthError(http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	if !slices.Contains(strings.Fields(r.PostForm.Get("scope")), "all-apis") {
		oauthError(http.StatusBadRequest, "invalid_scope", "scope must include all-apis")
		return
	}
	tok := "dose" + randomID(20)
	s.mu.Lock()
	s.oauthTokens[tok] = time.Now().Add(s.opts.TokenTTL)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int(s.opts.TokenTTL.Seconds()),
		"scope":        "all-apis",
	})
}
