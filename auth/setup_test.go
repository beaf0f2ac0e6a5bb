package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockhq/airlock/auth/oidctest"
	"github.com/airlockhq/airlock/secrets"
)

const testSessionKey = "0123456789abcdef0123456789abcdef-test-session-key"

// testGrants are the grants most tests use.
var testGrants = []Grant{
	{Role: "researcher", Capabilities: []string{"import:*", "upload:*", "read:own"}},
	{Role: "data-engineer", Capabilities: []string{"approve:data-engineer", "read:own"}},
	{Role: "information-governance", Capabilities: []string{"approve:information-governance", "read:*"}},
	{Group: "/analysts", Capabilities: []string{"read:project-a", "import:project-a"}},
}

// secretsOf is a secrets provider reading only the given values.
func secretsOf(values map[string]string) *secrets.Provider {
	return &secrets.Provider{Getenv: func(name string) string {
		for k, v := range values {
			if secrets.EnvVar(k) == name {
				return v
			}
		}
		return ""
	}}
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// app is the API under test: the authenticator's routes at /auth/, and
// behind its middleware /whoami (the identity as JSON, 401 when anonymous),
// /csrf (the CSRF token) and POST /form (200 when CheckCSRF passes).
type app struct {
	t    *testing.T
	srv  *httptest.Server
	auth *Authenticator
	idp  *oidctest.Provider
	logs *syncBuffer
}

type appOptions struct {
	cfg     Config
	secrets map[string]string
	mutate  func(*Options)
}

// newOIDCApp starts an oidctest provider and an app signing in with it.
func newOIDCApp(t *testing.T, ao appOptions) *app {
	t.Helper()
	idp := oidctest.Start(t)
	idp.AddUser("rita", []string{"researcher", "offline_access"}, []string{"/analysts"})
	idp.AddUser("dana", []string{"data-engineer"}, nil)
	idp.AddUser("ian", []string{"information-governance"}, []string{"/ig"})
	cfg := ao.cfg
	if cfg.Grants == nil {
		cfg.Grants = testGrants
	}
	cfg.OIDC.Issuer = idp.URL()
	if cfg.OIDC.ClientID == "" {
		cfg.OIDC.ClientID = oidctest.DefaultClientID
	}
	if cfg.SessionKeyKey == "" {
		cfg.SessionKeyKey = "airlock-session-key"
	}
	sec := map[string]string{"airlock-session-key": testSessionKey}
	for k, v := range ao.secrets {
		sec[k] = v
	}
	return startApp(t, idp, cfg, sec, ao.mutate)
}

func startApp(t *testing.T, idp *oidctest.Provider, cfg Config, sec map[string]string, mutate func(*Options)) *app {
	t.Helper()
	a := &app{t: t, idp: idp, logs: &syncBuffer{}}
	mux := http.NewServeMux()
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	o := Options{
		PublicURL:  a.srv.URL,
		Secrets:    secretsOf(sec),
		ListenAddr: a.srv.Listener.Addr().String(),
		Logger:     slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mutate != nil {
		mutate(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	auth, err := New(ctx, cfg, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	a.auth = auth
	mux.Handle("/auth/", auth.Handler())
	mux.Handle("/whoami", auth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := FromContext(r.Context())
		if !ok {
			http.Error(w, "anonymous", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(id)
	})))
	mux.Handle("/csrf", auth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, auth.CSRFToken(r))
	})))
	mux.Handle("POST /form", auth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !auth.CheckCSRF(r) {
			http.Error(w, "csrf", http.StatusForbidden)
			return
		}
		io.WriteString(w, "ok")
	})))
	return a
}

// browser is an HTTP client with a cookie jar.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 20 * time.Second}
}

// noFollow returns a copy of c that stops at redirects.
func noFollow(c *http.Client) *http.Client {
	n := *c
	n.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &n
}

// whoami returns the identity the app sees for client c and extra headers
// (nil when anonymous).
func (a *app) whoami(c *http.Client, header http.Header) *Identity {
	a.t.Helper()
	req, _ := http.NewRequest("GET", a.srv.URL+"/whoami", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return nil
	case http.StatusOK:
		var id Identity
		if err := json.Unmarshal(body, &id); err != nil {
			a.t.Fatalf("whoami: %v: %s", err, body)
		}
		return &id
	}
	a.t.Fatalf("whoami: %s: %s", resp.Status, body)
	return nil
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

var txRE = regexp.MustCompile(`name="tx" value="([^"]+)"`)

// signInAt follows a provider's sign-in page (the response to GET
// /authorize) by posting username, and returns the response the client
// ends at.
func signInAt(t *testing.T, c *http.Client, page *http.Response, username string) *http.Response {
	t.Helper()
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK {
		t.Fatalf("sign-in page: %s: %s", page.Status, body)
	}
	if !strings.Contains(string(body), `name="username" type="text"`) || !strings.Contains(string(body), ">Sign in</button>") {
		t.Fatalf("sign-in page has no username field and Sign in button:\n%s", body)
	}
	m := txRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no tx in sign-in page:\n%s", body)
	}
	form := page.Request.URL.Scheme + "://" + page.Request.URL.Host + "/authorize"
	resp, err := c.PostForm(form, url.Values{"tx": {string(m[1])}, "username": {username}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// signIn runs the whole browser sign-in for username with client c and
// returns the final response (body unread).
func (a *app) signIn(c *http.Client, username, next string) *http.Response {
	a.t.Helper()
	page, err := c.Get(a.srv.URL + "/auth/login?next=" + url.QueryEscape(next))
	if err != nil {
		a.t.Fatal(err)
	}
	return signInAt(a.t, c, page, username)
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// httpRecord serves one request with h and returns the recording.
func httpRecord(h http.Handler, method, target string, body io.Reader) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, body))
	return rec
}

func httpRecordFunc(f http.HandlerFunc) *httptest.ResponseRecorder {
	return httpRecord(f, "GET", "/", nil)
}
