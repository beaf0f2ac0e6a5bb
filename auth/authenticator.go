// Package auth identifies the callers of Airlock's API and console and says
// what they may do.
//
// In oidc mode (production) identities come from an OpenID Connect issuer
// such as Keycloak: API clients send "Authorization: Bearer <access token>"
// (a JWT whose signature, issuer, expiry and audience are verified against
// the issuer's published keys), and browsers sign in with the authorization
// code flow with PKCE at /auth/login, ending in an encrypted session cookie.
// In dev mode (make dev, loopback only) the users and roles come from the
// config's directory.users.
//
// Either way, what an identity may do comes only from the config's grants
// (Config.Grants): roles and groups map to capabilities such as import:*,
// read:own or approve:data-engineer.
package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/airlockhq/airlock/secrets"
)

// Modes (Config.Mode).
const (
	ModeOIDC = "oidc"
	ModeDev  = "dev"
)

// DefaultSessionTTL is how long a browser session lasts unless
// Config.SessionTTL says otherwise.
const DefaultSessionTTL = 8 * time.Hour

// DevUserHeader names the caller in dev mode (API clients such as curl).
// It is ignored in oidc mode.
const DevUserHeader = "X-Airlock-Dev-User"

// minSessionKey is the shortest session secret accepted, in bytes.
const minSessionKey = 32

// Options are what New needs beside the config.
type Options struct {
	// PublicURL is the API's address as browsers reach it, such as
	// https://airlock.example.org (required in oidc mode). The redirect
	// URI registered at the identity provider is PublicURL + "/auth/callback";
	// cookies are Secure when it is https.
	PublicURL string
	// Secrets resolves SessionKeyKey and OIDC.ClientSecretKey (nil: the
	// environment only, AIRLOCK_SECRET_<KEY>).
	Secrets *secrets.Provider
	// DevUsers maps user names to roles (the config's directory.users);
	// dev mode only.
	DevUsers map[string][]string
	// ListenAddr is the address the API listens on; dev mode is refused
	// unless it is loopback (127.0.0.1, ::1 or localhost).
	ListenAddr string
	// Logger receives sign-in events (nil: slog.Default()).
	Logger *slog.Logger
	// HTTPClient talks to the identity provider (nil: a client with a 30s
	// timeout).
	HTTPClient *http.Client
}

// Authenticator identifies callers. Build it with New.
type Authenticator struct {
	mode     string
	log      *slog.Logger
	grants   grants
	cookies  *cookies
	ttl      time.Duration
	oidc     *oidcClient         // oidc mode
	devUsers map[string][]string // dev mode
}

// New checks cfg and builds an Authenticator. In oidc mode it discovers the
// issuer (so the identity provider must be reachable) and resolves the
// session key and client secret. Every refusal names the config field.
func New(ctx context.Context, cfg Config, o Options) (*Authenticator, error) {
	a := &Authenticator{mode: cfg.Mode, log: o.Logger}
	if a.mode == "" {
		a.mode = ModeOIDC
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if o.Secrets == nil {
		o.Secrets = &secrets.Provider{}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	var err error
	if a.grants, err = compileGrants(cfg.Grants); err != nil {
		return nil, err
	}
	switch a.ttl = time.Duration(cfg.SessionTTL); {
	case a.ttl < 0:
		return nil, fmt.Errorf("api.auth.sessionTTL is negative (%s): use a duration such as 8h, or leave it out for %s", a.ttl, DefaultSessionTTL)
	case a.ttl == 0:
		a.ttl = DefaultSessionTTL
	}
	secure := false
	if o.PublicURL != "" {
		u, err := checkPublicURL(o.PublicURL)
		if err != nil {
			return nil, err
		}
		secure = u.Scheme == "https"
	}
	switch a.mode {
	case ModeOIDC:
		key, err := a.newOIDC(ctx, cfg, o)
		if err != nil {
			return nil, err
		}
		if !secure && !isLoopback(hostOf(o.PublicURL)) {
			a.log.Warn("the API's public URL is not https: session cookies are sent without the Secure flag; serve the API over https (api.publicURL)", "publicURL", o.PublicURL)
		}
		if a.cookies, err = newCookies(key, secure, a.mode, a.ttl); err != nil {
			return nil, err
		}
	case ModeDev:
		key, err := a.newDev(ctx, cfg, o)
		if err != nil {
			return nil, err
		}
		if a.cookies, err = newCookies(key, secure, a.mode, a.ttl); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("api.auth.mode %q is not a mode: use oidc (an OpenID Connect issuer such as Keycloak) or dev (users from directory.users, loopback only)", cfg.Mode)
	}
	return a, nil
}

func newCookies(key []byte, secure bool, mode string, ttl time.Duration) (*cookies, error) {
	s, err := newSealer(key)
	if err != nil {
		return nil, fmt.Errorf("api.auth.sessionKeyKey: %w", err)
	}
	return &cookies{sealer: s, secure: secure, mode: mode, ttl: ttl}, nil
}

// sessionKey resolves the session secret named by cfg.SessionKeyKey.
func sessionKey(ctx context.Context, cfg Config, o Options) ([]byte, error) {
	v, err := o.Secrets.Lookup(ctx, cfg.SessionKeyKey)
	if err != nil {
		return nil, fmt.Errorf("api.auth.sessionKeyKey: %w", err)
	}
	if len(v) < minSessionKey {
		return nil, fmt.Errorf("api.auth.sessionKeyKey: the secret %q holds %d bytes; session keys need at least %d random bytes (for example the output of: openssl rand -base64 48)", cfg.SessionKeyKey, len(v), minSessionKey)
	}
	return []byte(v), nil
}

// Mode reports the sign-in mode: ModeOIDC or ModeDev.
func (a *Authenticator) Mode() string { return a.mode }

type sessionIDKey struct{}

// Middleware attaches the caller's Identity to the request context (see
// FromContext): from an "Authorization: Bearer" token (oidc mode), the
// X-Airlock-Dev-User header (dev mode), or the session cookie. It never
// rejects: a caller without valid credentials goes on anonymous, and the
// handlers decide (401/403). An invalid bearer token makes the request
// anonymous, even when a session cookie is present too.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, sid := a.identify(r)
		ctx := context.WithValue(r.Context(), identityKey{}, id)
		ctx = context.WithValue(ctx, sessionIDKey{}, sid)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// identify returns the caller's identity (nil: anonymous) and the session
// id when it came from a session cookie.
func (a *Authenticator) identify(r *http.Request) (*Identity, string) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			token = strings.TrimSpace(token)
			if a.oidc == nil {
				a.log.Debug("ignoring a bearer token: dev mode has no identity provider; name the user with the "+DevUserHeader+" header", "remote", r.RemoteAddr)
				return nil, ""
			}
			ic, err := a.oidc.verifyAccess(r.Context(), token)
			if err != nil {
				// Never log the token itself.
				a.log.Debug("ignoring an invalid bearer token", "error", err.Error(), "remote", r.RemoteAddr)
				return nil, ""
			}
			return a.identity(ic, MethodBearer), ""
		}
	}
	if a.mode == ModeDev {
		if name := r.Header.Get(DevUserHeader); name != "" {
			ic, ok := a.devClaims(name)
			if !ok {
				a.log.Debug("ignoring "+DevUserHeader+": not a user in directory.users", "user", name, "remote", r.RemoteAddr)
				return nil, ""
			}
			return a.identity(ic, MethodDevHeader), ""
		}
	}
	s, ok := a.cookies.readSession(r)
	if !ok {
		return nil, ""
	}
	ic := identityClaims{Subject: s.Subject, Username: s.Username, Name: s.Name, Email: s.Email, Roles: s.Roles, Groups: s.Groups}
	if a.mode == ModeDev {
		// Dev users' roles are the current directory's.
		if ic, ok = a.devClaims(s.Username); !ok {
			return nil, ""
		}
	}
	return a.identity(ic, MethodSession), s.ID
}

func (a *Authenticator) identity(ic identityClaims, method string) *Identity {
	return &Identity{
		Subject:  ic.Subject,
		Username: ic.Username,
		Name:     ic.Name,
		Email:    ic.Email,
		Roles:    uniqueSorted(ic.Roles),
		Groups:   uniqueSorted(ic.Groups),
		Caps:     a.grants.capabilities(ic.Roles, ic.Groups),
		Method:   method,
	}
}

// startSession sets the session cookie for ic and sends the browser to next.
func (a *Authenticator) startSession(w http.ResponseWriter, r *http.Request, ic identityClaims, next string) {
	s := session{
		ID: randomString(18), Subject: ic.Subject, Username: ic.Username, Name: ic.Name, Email: ic.Email,
		Roles: ic.Roles, Groups: ic.Groups, Expires: time.Now().Add(a.ttl).Unix(),
	}
	if err := a.cookies.setSession(w, r, s); err != nil {
		a.log.Warn("sign-in failed", "user", ic.Username, "error", err)
		errorPage(w, http.StatusBadRequest, "Sign-in failed", err.Error())
		return
	}
	a.log.Info("signed in", "user", ic.Username, "mode", a.mode, "roles", s.Roles, "groups", len(s.Groups))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// Handler serves the sign-in routes; mount it at /auth/:
//
//	GET  /auth/login?next=/path   start signing in (dev mode: the /auth/dev page)
//	GET  /auth/callback           the identity provider's redirect (oidc mode)
//	POST /auth/logout             sign out (form field csrf_token, optional next)
//	GET  /auth/dev?next=/path     dev mode: pick a user; POST signs in as user=<name>
func (a *Authenticator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /auth/login", a.login)
	mux.HandleFunc("POST /auth/logout", a.logout)
	if a.mode == ModeOIDC {
		mux.HandleFunc("GET /auth/callback", a.oidc.callback(a))
	}
	if a.mode == ModeDev {
		mux.HandleFunc("GET /auth/dev", a.devPage)
		mux.HandleFunc("POST /auth/dev", a.devSignIn)
	}
	return noStore(mux)
}

func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func (a *Authenticator) login(w http.ResponseWriter, r *http.Request) {
	next, err := localPath(r.URL.Query().Get("next"))
	if err != nil {
		errorPage(w, http.StatusBadRequest, "Sign-in refused", err.Error())
		return
	}
	if a.mode == ModeDev {
		http.Redirect(w, r, "/auth/dev?next="+url.QueryEscape(next), http.StatusFound)
		return
	}
	a.oidc.login(a, w, r, next)
}

func (a *Authenticator) logout(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.cookies.readSession(r); ok && !a.CheckCSRF(r) {
		errorPage(w, http.StatusForbidden, "Sign-out refused", "The sign-out form is stale or did not come from Airlock (its "+CSRFField+" field does not match this session). Reload the page and sign out again.")
		return
	}
	next, err := localPath(r.PostFormValue("next"))
	if err != nil {
		next = "/"
	}
	a.cookies.clearSession(w, r)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// CSRFToken returns the anti-forgery token of the request's session, for
// console forms (field CSRFField) and fetch requests (header CSRFHeader);
// "" when the request has no session.
func (a *Authenticator) CSRFToken(r *http.Request) string {
	sid, _ := r.Context().Value(sessionIDKey{}).(string)
	if sid == "" {
		s, ok := a.cookies.readSession(r)
		if !ok {
			return ""
		}
		sid = s.ID
	}
	return a.cookies.sealer.csrfToken(sid)
}

// CheckCSRF reports whether a state-changing request may proceed. Requests
// identified by a bearer token or the dev header pass (a cross-site page
// cannot set those headers); a request with a session cookie passes only
// when its CSRFHeader header or CSRFField form field holds the session's
// CSRFToken; anything else fails.
func (a *Authenticator) CheckCSRF(r *http.Request) bool {
	if id, ok := FromContext(r.Context()); ok && (id.Method == MethodBearer || id.Method == MethodDevHeader) {
		return true
	}
	want := a.CSRFToken(r)
	if want == "" {
		return false
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		got = r.PostFormValue(CSRFField)
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// localPath checks that next is a path on this site (never another site:
// no scheme, host or protocol-relative //host), "" meaning "/".
func localPath(next string) (string, error) {
	if next == "" {
		return "/", nil
	}
	bad := errors.New("next must be a path on this site, such as /requests/import-x-abc123; it was " + fmt.Sprintf("%q", next))
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || len(next) > 2048 {
		return "", bad
	}
	for _, c := range next {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", bad
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", bad
	}
	return next, nil
}

func checkPublicURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("api.publicURL %q is not an http(s) address: use the API's address as browsers reach it, such as https://airlock.example.org", s)
	}
	return u, nil
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host
}

// isLoopback reports whether addr (host, host:port or [v6]:port) names
// only the loopback interface. An empty host (":8080") means every
// interface, which is not loopback.
func isLoopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
