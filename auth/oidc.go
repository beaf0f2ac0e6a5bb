package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Defaults of OIDCConfig.
var (
	DefaultScopes        = []string{oidc.ScopeOpenID, "profile", "email"}
	DefaultUsernameClaim = "preferred_username"
	DefaultGroupsClaim   = "groups"
	// DefaultRolesClaims are Keycloak's realm roles and the client's roles;
	// "<clientId>" in a roles claim path stands for OIDCConfig.ClientID.
	DefaultRolesClaims = []string{"realm_access.roles", "resource_access.<clientId>.roles"}
)

// oidcClient verifies tokens of one issuer and runs the browser sign-in.
type oidcClient struct {
	clientID string
	audience string
	claims   claimsReader
	// idTokens checks ID tokens: signature, issuer, expiry, aud = clientID.
	idTokens *oidc.IDTokenVerifier
	// accessTokens checks signature, issuer and expiry; the audience is
	// checked by verifyAccess.
	accessTokens *oidc.IDTokenVerifier
	keys         *keySet
	oauth        oauth2.Config
	httpClient   *http.Client
}

// newOIDC sets up oidc mode and returns the session key.
func (a *Authenticator) newOIDC(ctx context.Context, cfg Config, o Options) ([]byte, error) {
	oc := cfg.OIDC
	switch {
	case oc.Issuer == "":
		return nil, errors.New("api.auth.oidc.issuer is required in oidc mode: set it to the identity provider's issuer URL (Keycloak: https://HOST/realms/REALM), or set api.auth.mode: dev for local development")
	case oc.ClientID == "":
		return nil, errors.New("api.auth.oidc.clientId is required in oidc mode: set it to the client registered for Airlock at the identity provider")
	case cfg.SessionKeyKey == "":
		return nil, errors.New("api.auth.sessionKeyKey is required in oidc mode: name the secret that holds the session cookie key (at least 32 random bytes, for example from: openssl rand -base64 48)")
	case o.PublicURL == "":
		return nil, errors.New("api.publicURL is required in oidc mode: the identity provider redirects browsers to <publicURL>/auth/callback")
	}
	key, err := sessionKey(ctx, cfg, o)
	if err != nil {
		return nil, err
	}
	var clientSecret string
	if oc.ClientSecretKey != "" {
		if clientSecret, err = o.Secrets.Lookup(ctx, oc.ClientSecretKey); err != nil {
			return nil, fmt.Errorf("api.auth.oidc.clientSecretKey: %w", err)
		}
	}
	dctx := oidc.ClientContext(ctx, o.HTTPClient)
	provider, err := oidc.NewProvider(dctx, oc.Issuer)
	if err != nil {
		return nil, fmt.Errorf("api.auth.oidc.issuer: discovering %s/.well-known/openid-configuration failed: %v (check the issuer URL and that the identity provider is reachable from the API)", strings.TrimSuffix(oc.Issuer, "/"), err)
	}
	c := &oidcClient{
		clientID:   oc.ClientID,
		audience:   oc.Audience,
		httpClient: o.HTTPClient,
		claims: claimsReader{
			usernameClaim: oc.UsernameClaim,
			groupsClaim:   oc.GroupsClaim,
		},
	}
	if c.audience == "" {
		c.audience = oc.ClientID
	}
	if c.claims.usernameClaim == "" {
		c.claims.usernameClaim = DefaultUsernameClaim
	}
	if c.claims.groupsClaim == "" {
		c.claims.groupsClaim = DefaultGroupsClaim
	}
	roles := oc.RolesClaims
	if len(roles) == 0 {
		roles = DefaultRolesClaims
	}
	for _, p := range roles {
		c.claims.rolesClaims = append(c.claims.rolesClaims, strings.ReplaceAll(p, "<clientId>", oc.ClientID))
	}
	scopes := oc.Scopes
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		// Without openid there is no ID token.
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	// Authenticate to the token endpoint one way, not by trial and error
	// (a failed first attempt would spend the single-use code): a public
	// client sends its client_id in the form; a confidential one uses HTTP
	// Basic (client_secret_basic, the OAuth default) unless the provider
	// only supports client_secret_post.
	endpoint := provider.Endpoint()
	endpoint.AuthStyle = oauth2.AuthStyleInParams
	if clientSecret != "" {
		var meta struct {
			AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
		}
		_ = provider.Claims(&meta)
		if len(meta.AuthMethods) == 0 || slices.Contains(meta.AuthMethods, "client_secret_basic") || !slices.Contains(meta.AuthMethods, "client_secret_post") {
			endpoint.AuthStyle = oauth2.AuthStyleInHeader
		}
	}
	var meta struct {
		Issuer  string   `json:"issuer"`
		JWKSURL string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := provider.Claims(&meta); err != nil || meta.JWKSURL == "" {
		return nil, fmt.Errorf("api.auth.oidc.issuer: the discovery document of %s has no jwks_uri", oc.Issuer)
	}
	var algs []string
	for _, alg := range meta.Algs {
		if slices.Contains(asymmetricAlgs, alg) {
			algs = append(algs, alg)
		}
	}
	if len(algs) == 0 {
		algs = []string{oidc.RS256}
	}
	keys := newKeySet(meta.JWKSURL, o.HTTPClient, algs)
	c.keys = keys
	if _, err := keys.refresh(ctx); err != nil {
		return nil, fmt.Errorf("api.auth.oidc.issuer: %v (check that the identity provider is reachable from the API)", err)
	}
	c.idTokens = oidc.NewVerifier(meta.Issuer, keys, &oidc.Config{ClientID: oc.ClientID, SupportedSigningAlgs: algs})
	c.accessTokens = oidc.NewVerifier(meta.Issuer, keys, &oidc.Config{SkipClientIDCheck: true, SupportedSigningAlgs: algs})
	c.oauth = oauth2.Config{
		ClientID:     oc.ClientID,
		ClientSecret: clientSecret,
		Endpoint:     endpoint,
		RedirectURL:  strings.TrimSuffix(o.PublicURL, "/") + "/auth/callback",
		Scopes:       scopes,
	}
	a.oidc = c
	a.log.Info("sign-in with OpenID Connect", "issuer", oc.Issuer, "clientId", oc.ClientID, "audience", c.audience, "redirect", c.oauth.RedirectURL)
	return key, nil
}

// verifyAccess checks a bearer access token and reads its claims.
//
// Keycloak access tokens are JWTs signed with the realm's keys. The
// signature (with the issuer's published keys, see keySet; an asymmetric
// algorithm the issuer advertises, never "none" or HMAC), issuer, expiry
// and not-before are checked by go-oidc; the token is for Airlock when
// its aud contains OIDCConfig.Audience (default the client id) OR its azp
// (authorized party: the client the token was issued to) is the client id.
// Keycloak puts "account" in aud of tokens issued to a client without an
// audience mapper, so azp is what marks them as Airlock's. A token whose
// typ claim is present and not "Bearer" (Keycloak's ID and refresh tokens)
// is refused.
func (c *oidcClient) verifyAccess(ctx context.Context, raw string) (identityClaims, error) {
	if raw == "" {
		return identityClaims{}, errors.New("empty bearer token")
	}
	tok, err := c.accessTokens.Verify(ctx, raw)
	if err != nil {
		return identityClaims{}, err
	}
	var m map[string]any
	if err := tok.Claims(&m); err != nil {
		return identityClaims{}, err
	}
	if typ, ok := m["typ"].(string); ok && !strings.EqualFold(typ, "Bearer") {
		return identityClaims{}, fmt.Errorf("token typ is %q, not an access token (Bearer)", typ)
	}
	azp, _ := m["azp"].(string)
	if !slices.Contains(tok.Audience, c.audience) && azp != c.clientID {
		return identityClaims{}, fmt.Errorf("token is not for this API: aud %q does not contain %q and azp %q is not %q", tok.Audience, c.audience, azp, c.clientID)
	}
	ic := c.claims.read(m)
	if ic.Subject == "" {
		return identityClaims{}, errors.New("token has no sub claim")
	}
	return ic, nil
}

// verifyID checks the ID token of a code exchange (signature, issuer,
// expiry, aud = client id, azp when several audiences, nonce, at_hash) and
// reads its claims, adding the roles and groups of the access token when it
// is a JWT of the same subject (Keycloak puts realm roles only in access
// tokens by default).
func (c *oidcClient) verifyID(ctx context.Context, rawID, nonce, accessToken string) (identityClaims, error) {
	tok, err := c.idTokens.Verify(ctx, rawID)
	if err != nil {
		return identityClaims{}, err
	}
	if tok.Nonce == "" || subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		return identityClaims{}, errors.New("the ID token's nonce does not match this sign-in")
	}
	var m map[string]any
	if err := tok.Claims(&m); err != nil {
		return identityClaims{}, err
	}
	if azp, _ := m["azp"].(string); len(tok.Audience) > 1 && azp != c.clientID {
		return identityClaims{}, fmt.Errorf("the ID token has several audiences and azp %q is not %q", azp, c.clientID)
	}
	if tok.AccessTokenHash != "" {
		if err := tok.VerifyAccessToken(accessToken); err != nil {
			return identityClaims{}, fmt.Errorf("the access token does not match the ID token's at_hash: %v", err)
		}
	}
	ic := c.claims.read(m)
	if ic.Subject == "" {
		return identityClaims{}, errors.New("the ID token has no sub claim")
	}
	if accessToken != "" {
		if at, err := c.verifyAccess(ctx, accessToken); err == nil && at.Subject == ic.Subject {
			ic.merge(at)
		}
	}
	return ic, nil
}

// login starts the authorization code flow with PKCE: state, nonce and the
// code verifier go into a short-lived encrypted cookie.
func (c *oidcClient) login(a *Authenticator, w http.ResponseWriter, r *http.Request, next string) {
	f := flow{
		State:    randomString(32),
		Nonce:    randomString(32),
		Verifier: oauth2.GenerateVerifier(),
		Next:     next,
		Expires:  time.Now().Add(flowTTL).Unix(),
	}
	if err := a.cookies.setFlow(w, f); err != nil {
		errorPage(w, http.StatusInternalServerError, "Sign-in failed", "Could not start signing in: "+err.Error())
		return
	}
	http.Redirect(w, r, c.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), http.StatusFound)
}

// callback finishes the sign-in: checks state against the cookie, exchanges
// the code with the PKCE verifier, verifies the ID token and its nonce, and
// sets the session cookie.
func (c *oidcClient) callback(a *Authenticator) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		again := " Sign in again from the start."
		if e := q.Get("error"); e != "" {
			if _, err := r.Cookie(a.cookies.flowName(q.Get("state"))); err == nil {
				http.SetCookie(w, a.cookies.cookie(a.cookies.flowName(q.Get("state")), "", -1))
			}
			msg := "The identity provider did not sign you in (" + e + ")"
			if d := q.Get("error_description"); d != "" {
				msg += ": " + d
			}
			errorPage(w, http.StatusBadRequest, "Sign-in failed", msg+"."+again)
			return
		}
		f, err := a.cookies.takeFlow(w, r, q.Get("state"))
		if err != nil {
			a.log.Info("sign-in refused", "reason", err.Error(), "remote", r.RemoteAddr)
			errorPage(w, http.StatusBadRequest, "Sign-in refused", "This sign-in cannot be finished: "+err.Error()+"."+again)
			return
		}
		code := q.Get("code")
		if code == "" {
			errorPage(w, http.StatusBadRequest, "Sign-in refused", "The identity provider sent no code."+again)
			return
		}
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), oauth2.HTTPClient, c.httpClient), 30*time.Second)
		defer cancel()
		tok, err := c.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
		if err != nil {
			a.log.Warn("sign-in: exchanging the code failed", "error", err.Error())
			reason := "see the API's log"
			var re *oauth2.RetrieveError
			if errors.As(err, &re) && re.ErrorCode != "" {
				reason = re.ErrorCode
			}
			errorPage(w, http.StatusBadGateway, "Sign-in failed", "The identity provider refused the sign-in code ("+reason+")."+again)
			return
		}
		rawID, _ := tok.Extra("id_token").(string)
		if rawID == "" {
			errorPage(w, http.StatusBadGateway, "Sign-in failed", "The identity provider returned no ID token: the client must be allowed the openid scope."+again)
			return
		}
		ic, err := c.verifyID(ctx, rawID, f.Nonce, tok.AccessToken)
		if err != nil {
			a.log.Warn("sign-in: the ID token was refused", "error", err.Error())
			errorPage(w, http.StatusBadRequest, "Sign-in refused", "The identity provider's ID token was not valid: "+err.Error()+"."+again)
			return
		}
		a.startSession(w, r, ic, f.Next)
	}
}
