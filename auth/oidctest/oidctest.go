// Package oidctest is an in-process OpenID Connect provider for tests, shaped
// like Keycloak: discovery, a JWKS with an RS256 key, an /authorize page
// with a sign-in form (username only, no password), and a /token endpoint
// for the authorization code grant that checks the client, the redirect URI
// and the PKCE (S256) code verifier and refuses a code used twice. Tokens
// carry Keycloak's claims (realm_access.roles, groups, preferred_username,
// azp, aud "account"). It also mints bearer tokens directly (Token) and bad
// ones (expired, wrong issuer, wrong audience, foreign key, alg none,
// HS256) for tests of token verification.
//
// It is for tests only: it signs in anyone who types a known user name.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DefaultClientID is the client the provider accepts until SetClient.
const DefaultClientID = "airlock"

// TokenTTL is how long minted tokens last.
const TokenTTL = time.Hour

// codeTTL is how long an authorization code may wait for its exchange.
const codeTTL = time.Minute

// account is a user the provider can sign in.
type account struct {
	Name    string
	Subject string
	Email   string
	Roles   []string
	Groups  []string
}

// Provider is a running test OIDC provider. Its methods are safe for
// concurrent use.
type Provider struct {
	srv    *http.Server
	ln     net.Listener
	issuer string

	foreignKey *rsa.PrivateKey

	mu           sync.Mutex
	key          *rsa.PrivateKey // the signing key
	kid          string
	oldKeys      []jose.JSONWebKey // keys rotated out, still published
	clientID     string
	clientSecret string
	users        map[string]account
	pending      map[string]authRequest // sign-in form transactions
	codes        map[string]*codeGrant
	exchanges    int
	jwksRequests int
}

// authRequest is an /authorize request waiting for the user to sign in.
type authRequest struct {
	ClientID, RedirectURI, State, Nonce, Challenge, Scope string
	Expires                                               time.Time
}

// codeGrant is an issued authorization code.
type codeGrant struct {
	authRequest
	User string
	Used bool
}

// Start runs a provider on a free loopback port until the test ends.
func Start(t testing.TB) *Provider {
	t.Helper()
	p, err := New("127.0.0.1:0")
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// NewProvider is New (the name the design notes use).
func NewProvider(addr string) (*Provider, error) { return New(addr) }

// New runs a provider listening on addr (such as 127.0.0.1:0 for a free
// port); its issuer is http://<the address it listens on>. Close it when done.
func New(addr string) (*Provider, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	p := &Provider{
		ln:         ln,
		issuer:     "http://" + ln.Addr().String(),
		key:        key,
		kid:        randomString(8),
		foreignKey: foreign,
		clientID:   DefaultClientID,
		users:      map[string]account{},
		pending:    map[string]authRequest{},
		codes:      map[string]*codeGrant{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /authorize", p.signIn)
	mux.HandleFunc("POST /token", p.token)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go p.srv.Serve(ln)
	return p, nil
}

// URL is the issuer URL (discovery at URL()+"/.well-known/openid-configuration").
func (p *Provider) URL() string { return p.issuer }

// Close stops the provider.
func (p *Provider) Close() { p.srv.Close() }

// SetClient sets the one client the provider accepts; secret "" makes it a
// public client (PKCE only), otherwise /token requires the secret.
func (p *Provider) SetClient(id, secret string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clientID, p.clientSecret = id, secret
}

// ClientID is the accepted client's id.
func (p *Provider) ClientID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clientID
}

// Exchanges counts successful code exchanges at /token.
func (p *Provider) Exchanges() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exchanges
}

// AddUser registers a user who can sign in (by name, no password) with
// realm roles and groups (as Keycloak's group mapper writes them, such as
// "/analysts"). Adding a user again replaces their roles and groups.
func (p *Provider) AddUser(name string, roles, groups []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[name] = account{
		Name:    name,
		Subject: Subject(name),
		Email:   name + "@example.test",
		Roles:   slices.Clone(roles),
		Groups:  slices.Clone(groups),
	}
}

// Subject is the sub claim of the user name: stable and UUID-shaped, as
// Keycloak's.
func Subject(name string) string {
	h := sha256.Sum256([]byte("oidctest user " + name))
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func (p *Provider) user(name string) (account, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.users[name]
	return u, ok
}

func (p *Provider) mustUser(name string) account {
	u, ok := p.user(name)
	if !ok {
		panic(fmt.Sprintf("oidctest: no user %q: call AddUser first", name))
	}
	return u
}

// Claims returns the claims of an access token for user as Keycloak shapes
// them, for tests that change a claim and Sign the result.
func (p *Provider) Claims(user string) map[string]any {
	u := p.mustUser(user)
	now := time.Now()
	clientID := p.ClientID()
	return map[string]any{
		"iss":                p.issuer,
		"sub":                u.Subject,
		"aud":                "account",
		"azp":                clientID,
		"typ":                "Bearer",
		"exp":                now.Add(TokenTTL).Unix(),
		"iat":                now.Unix(),
		"jti":                randomString(12),
		"scope":              "openid profile email",
		"preferred_username": u.Name,
		"name":               u.Name,
		"email":              u.Email,
		"email_verified":     true,
		"realm_access":       map[string]any{"roles": orEmpty(u.Roles)},
		"resource_access":    map[string]any{"account": map[string]any{"roles": []string{"manage-account", "view-profile"}}},
		"groups":             orEmpty(u.Groups),
	}
}

// idClaims returns the claims of an ID token for user. Like Keycloak's
// default, it carries no roles (those are in the access token).
func (p *Provider) idClaims(user, nonce, accessToken string) map[string]any {
	u := p.mustUser(user)
	now := time.Now()
	clientID := p.ClientID()
	c := map[string]any{
		"iss":                p.issuer,
		"sub":                u.Subject,
		"aud":                clientID,
		"azp":                clientID,
		"typ":                "ID",
		"exp":                now.Add(TokenTTL).Unix(),
		"iat":                now.Unix(),
		"auth_time":          now.Unix(),
		"jti":                randomString(12),
		"preferred_username": u.Name,
		"name":               u.Name,
		"email":              u.Email,
		"email_verified":     true,
		"groups":             orEmpty(u.Groups),
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	if accessToken != "" {
		h := sha256.Sum256([]byte(accessToken))
		c["at_hash"] = base64.RawURLEncoding.EncodeToString(h[:16])
	}
	return c
}

// Token mints a valid bearer access token for user (as Keycloak issues to
// the client: azp is the client id, aud "account"). It panics for a user
// not added.
func (p *Provider) Token(user string) string { return p.Sign(p.Claims(user)) }

// IDToken mints a valid ID token for user (typ ID, aud the client id),
// for tests that an ID token is not accepted as a bearer token.
func (p *Provider) IDToken(user string) string { return p.Sign(p.idClaims(user, "", "")) }

// ExpiredToken mints user's access token that expired a minute ago.
func (p *Provider) ExpiredToken(user string) string {
	c := p.Claims(user)
	c["iat"] = time.Now().Add(-2 * TokenTTL).Unix()
	c["exp"] = time.Now().Add(-time.Minute).Unix()
	return p.Sign(c)
}

// WrongIssuerToken mints user's access token naming another issuer.
func (p *Provider) WrongIssuerToken(user string) string {
	c := p.Claims(user)
	c["iss"] = p.issuer + "/realms/other"
	return p.Sign(c)
}

// WrongAudienceToken mints user's access token issued to another client
// for another audience (neither aud nor azp is Airlock's).
func (p *Provider) WrongAudienceToken(user string) string {
	c := p.Claims(user)
	c["aud"] = []string{"account", "other-api"}
	c["azp"] = "other-client"
	return p.Sign(c)
}

// ForeignKeyToken mints user's access token signed by a key the provider
// does not publish, under the published key's kid.
func (p *Provider) ForeignKeyToken(user string) string {
	_, kid := p.signingKey()
	return sign(p.foreignKey, kid, p.Claims(user))
}

// UnknownKeyToken mints user's access token signed by a key the provider
// does not publish, under a key id it does not publish either (as after a
// key rotation, or a forgery).
func (p *Provider) UnknownKeyToken(user string) string {
	return sign(p.foreignKey, "unknown-"+randomString(6), p.Claims(user))
}

// UnsignedToken mints user's access token with alg "none" and no signature.
func (p *Provider) UnsignedToken(user string) string {
	_, kid := p.signingKey()
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"` + kid + `"}`))
	body, _ := json.Marshal(p.Claims(user))
	return header + "." + base64.RawURLEncoding.EncodeToString(body) + "."
}

// HS256Token mints user's access token signed with HMAC-SHA256 using the
// provider's public key (PEM) as the secret: the algorithm confusion attack
// on verifiers that let the token choose the algorithm.
func (p *Provider) HS256Token(user string) string {
	key, kid := p.signingKey()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		panic(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: secret, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	return compact(signer, p.Claims(user))
}

// Sign signs claims with the provider's published RS256 key.
func (p *Provider) Sign(claims map[string]any) string {
	key, kid := p.signingKey()
	return sign(key, kid, claims)
}

func (p *Provider) signingKey() (*rsa.PrivateKey, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.key, p.kid
}

// RotateKey makes a new signing key with a new key id, as Keycloak's key
// rotation does; the old key stays published (tokens it signed stay valid).
func (p *Provider) RotateKey() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.oldKeys = append(p.oldKeys, jose.JSONWebKey{Key: &p.key.PublicKey, KeyID: p.kid, Algorithm: string(jose.RS256), Use: "sig"})
	p.key, p.kid = key, randomString(8)
	return nil
}

func sign(key *rsa.PrivateKey, kid string, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		panic(err)
	}
	return compact(signer, claims)
}

func compact(signer jose.Signer, claims map[string]any) string {
	body, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	jws, err := signer.Sign(body)
	if err != nil {
		panic(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return s
}

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.issuer,
		"authorization_endpoint":                p.issuer + "/authorize",
		"token_endpoint":                        p.issuer + "/token",
		"jwks_uri":                              p.issuer + "/jwks",
		"response_types_supported":              []string{"code"},
		"grant_types_supported":                 []string{"authorization_code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      []string{"openid", "profile", "email"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	})
}

// JWKSRequests counts requests for the key set (/jwks).
func (p *Provider) JWKSRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.jwksRequests
}

func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.jwksRequests++
	keys := append([]jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: p.kid, Algorithm: string(jose.RS256), Use: "sig"}}, p.oldKeys...)
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: keys})
}

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to oidctest</title></head><body>
<h1>Sign in to your account</h1>
{{if .Error}}<p id="input-error" role="alert">{{.Error}}</p>{{end}}
<form id="kc-form-login" method="post" action="/authorize">
<input type="hidden" name="tx" value="{{.Tx}}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autofocus autocomplete="username">
<button type="submit" id="kc-login">Sign in</button>
</form></body></html>`))

// authorize checks an authorization request and shows the sign-in form.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ar := authRequest{
		ClientID:    q.Get("client_id"),
		RedirectURI: q.Get("redirect_uri"),
		State:       q.Get("state"),
		Nonce:       q.Get("nonce"),
		Challenge:   q.Get("code_challenge"),
		Scope:       q.Get("scope"),
		Expires:     time.Now().Add(10 * time.Minute),
	}
	switch {
	case ar.ClientID != p.ClientID():
		pageError(w, "unknown client_id "+ar.ClientID)
		return
	case !validRedirect(ar.RedirectURI):
		pageError(w, "redirect_uri must be an absolute http(s) URL")
		return
	case q.Get("response_type") != "code":
		pageError(w, "response_type must be code")
		return
	case !slices.Contains(strings.Fields(ar.Scope), "openid"):
		pageError(w, "scope must include openid")
		return
	case ar.Challenge == "" || q.Get("code_challenge_method") != "S256":
		pageError(w, "PKCE is required: send code_challenge with code_challenge_method=S256")
		return
	}
	tx := randomString(16)
	p.mu.Lock()
	p.pending[tx] = ar
	p.mu.Unlock()
	renderSignIn(w, tx, "")
}

// signIn takes the sign-in form and redirects to the client with a code.
func (p *Provider) signIn(w http.ResponseWriter, r *http.Request) {
	tx := r.PostFormValue("tx")
	name := r.PostFormValue("username")
	p.mu.Lock()
	ar, ok := p.pending[tx]
	_, known := p.users[name]
	if ok && known {
		delete(p.pending, tx)
	}
	p.mu.Unlock()
	if !ok || time.Now().After(ar.Expires) {
		pageError(w, "this sign-in expired; start again from the application")
		return
	}
	if !known {
		renderSignIn(w, tx, "Invalid username.")
		return
	}
	code := randomString(24)
	g := &codeGrant{authRequest: ar, User: name}
	g.Expires = time.Now().Add(codeTTL)
	p.mu.Lock()
	p.codes[code] = g
	p.mu.Unlock()
	u, _ := url.Parse(ar.RedirectURI)
	v := u.Query()
	v.Set("code", code)
	if ar.State != "" {
		v.Set("state", ar.State)
	}
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// token exchanges an authorization code.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "authorization_code" {
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code is supported, not "+gt)
		return
	}
	clientID, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 2.3.1: the client id and secret are form-encoded first.
		clientID, _ = url.QueryUnescape(clientID)
		secret, _ = url.QueryUnescape(secret)
	} else {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	p.mu.Lock()
	wantID, wantSecret := p.clientID, p.clientSecret
	p.mu.Unlock()
	if clientID != wantID || (wantSecret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(wantSecret)) != 1) {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong client secret")
		return
	}
	code := r.PostForm.Get("code")
	p.mu.Lock()
	g, ok := p.codes[code]
	used := ok && g.Used
	if ok {
		g.Used = true // a code is good for one attempt, whatever its outcome
	}
	p.mu.Unlock()
	switch {
	case !ok:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown code")
		return
	case used:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "code already used")
		return
	case time.Now().After(g.Expires):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "code expired")
		return
	case g.ClientID != clientID:
		tokenError(w, http.StatusBadRequest, "invalid_grant", "code was issued to another client")
		return
	case g.RedirectURI != r.PostForm.Get("redirect_uri"):
		tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		return
	}
	verifier := r.PostForm.Get("code_verifier")
	if verifier == "" {
		tokenError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed: code_verifier missing")
		return
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.Challenge)) != 1 {
		tokenError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed: code_verifier does not match code_challenge")
		return
	}
	if _, ok := p.user(g.User); !ok {
		tokenError(w, http.StatusBadRequest, "invalid_grant", "the user no longer exists")
		return
	}
	access := p.Sign(p.Claims(g.User))
	id := p.Sign(p.idClaims(g.User, g.Nonce, access))
	p.mu.Lock()
	p.exchanges++
	p.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   int(TokenTTL.Seconds()),
		"id_token":     id,
		"scope":        g.Scope,
	})
}

func validRedirect(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == ""
}

func renderSignIn(w http.ResponseWriter, tx, errMsg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	signInPage.Execute(w, map[string]string{"Tx": tx, "Error": errMsg})
}

func pageError(w http.ResponseWriter, msg string) {
	http.Error(w, "oidctest: "+msg, http.StatusBadRequest)
}

func tokenError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
