package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/auth/oidctest"
)

func TestBearerTokenIdentity(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	id := a.whoami(http.DefaultClient, bearer(a.idp.Token("rita")))
	if id == nil {
		t.Fatalf("a valid token was not accepted; log:\n%s", a.logs)
	}
	if id.Username != "rita" || id.Subject != oidctest.Subject("rita") || id.Email != "rita@example.test" || id.Method != MethodBearer {
		t.Errorf("identity = %+v", id)
	}
	if want := []string{"offline_access", "researcher"}; !reflect.DeepEqual(id.Roles, want) {
		t.Errorf("roles = %v, want %v", id.Roles, want)
	}
	if want := []string{"/analysts"}; !reflect.DeepEqual(id.Groups, want) {
		t.Errorf("groups = %v, want %v", id.Groups, want)
	}
	// researcher: import:*, upload:*, read:own; group /analysts: read:project-a, import:project-a.
	if want := []string{"import:*", "import:project-a", "read:own", "read:project-a", "upload:*"}; !reflect.DeepEqual(id.Caps.List(), want) {
		t.Errorf("capabilities = %v, want %v", id.Caps.List(), want)
	}
	ian := a.whoami(http.DefaultClient, bearer(a.idp.Token("ian")))
	if ian == nil || !ian.CanApprove("information-governance") || ian.CanApprove("data-engineer") || !ian.Caps.ReadsAll() {
		t.Errorf("ian = %+v", ian)
	}
	// The scheme is case-insensitive.
	if id := a.whoami(http.DefaultClient, http.Header{"Authorization": {"bearer " + a.idp.Token("dana")}}); id == nil || id.Username != "dana" {
		t.Errorf("lower-case bearer scheme: %+v", id)
	}
}

func TestBearerClientRolesAndAudience(t *testing.T) {
	a := newOIDCApp(t, appOptions{cfg: Config{
		OIDC:   OIDCConfig{Audience: "airlock-api"},
		Grants: append([]Grant{{Role: "uploader", Capabilities: []string{"upload:proj-u"}}}, testGrants...),
	}})
	// A client role under resource_access.<clientId>.roles counts (the
	// default roles claims).
	c := a.idp.Claims("dana")
	c["resource_access"] = map[string]any{oidctest.DefaultClientID: map[string]any{"roles": []string{"uploader"}}, "other": map[string]any{"roles": []string{"researcher"}}}
	id := a.whoami(http.DefaultClient, bearer(a.idp.Sign(c)))
	if id == nil || !id.CanUpload("proj-u") || id.CanImport("x") {
		t.Fatalf("client role: identity %+v", id)
	}
	if want := []string{"data-engineer", "uploader"}; !reflect.DeepEqual(id.Roles, want) {
		t.Errorf("roles = %v, want %v (another client's roles do not count)", id.Roles, want)
	}
	// aud holding the configured audience is accepted whatever azp is.
	c = a.idp.Claims("dana")
	c["aud"], c["azp"] = []string{"airlock-api"}, "some-cli"
	if id := a.whoami(http.DefaultClient, bearer(a.idp.Sign(c))); id == nil {
		t.Errorf("a token for audience airlock-api was refused; log:\n%s", a.logs)
	}
	// azp = the client id is accepted with Keycloak's aud "account".
	if id := a.whoami(http.DefaultClient, bearer(a.idp.Token("dana"))); id == nil {
		t.Errorf("a token issued to the client (azp) was refused")
	}
	// Neither: refused.
	c["aud"], c["azp"] = []string{"account"}, "some-cli"
	if id := a.whoami(http.DefaultClient, bearer(a.idp.Sign(c))); id != nil {
		t.Errorf("a token for another audience and client was accepted: %+v", id)
	}
	// No username claim: the sub names the user.
	c = a.idp.Claims("dana")
	delete(c, "preferred_username")
	if id := a.whoami(http.DefaultClient, bearer(a.idp.Sign(c))); id == nil || id.Username != oidctest.Subject("dana") {
		t.Errorf("without preferred_username: %+v", id)
	}
}

func TestBadBearerTokensAreAnonymous(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	noSub := a.idp.Claims("rita")
	delete(noSub, "sub")
	notYet := a.idp.Claims("rita")
	notYet["nbf"] = time.Now().Add(time.Hour).Unix()
	valid := a.idp.Token("rita")
	cases := map[string]string{
		"expired":                   a.idp.ExpiredToken("rita"),
		"wrong issuer":              a.idp.WrongIssuerToken("rita"),
		"wrong audience":            a.idp.WrongAudienceToken("rita"),
		"signed by a foreign key":   a.idp.ForeignKeyToken("rita"),
		"alg none":                  a.idp.UnsignedToken("rita"),
		"HS256 with the public key": a.idp.HS256Token("rita"),
		"ID token as bearer":        a.idp.IDToken("rita"),
		"no sub":                    a.idp.Sign(noSub),
		"not yet valid":             a.idp.Sign(notYet),
		"tampered payload":          tamper(valid),
		"garbage":                   "not-a-jwt",
		"empty":                     "",
	}
	// Another provider's valid token (another issuer and key).
	other := oidctest.Start(t)
	other.AddUser("rita", []string{"researcher"}, nil)
	cases["another provider's token"] = other.Token("rita")

	c := browser(t)
	if resp := a.signIn(c, "dana", "/whoami"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %s", resp.Status)
	}
	for name, tok := range cases {
		if id := a.whoami(http.DefaultClient, bearer(tok)); id != nil {
			t.Errorf("%s: accepted as %+v", name, id)
		}
		// An invalid bearer token wins over a valid session cookie.
		if id := a.whoami(c, bearer(tok)); id != nil {
			t.Errorf("%s with a session cookie: accepted as %+v", name, id)
		}
	}
	logs := a.logs.String()
	if !strings.Contains(logs, "ignoring an invalid bearer token") {
		t.Errorf("invalid tokens were not logged at debug:\n%s", logs)
	}
	for name, tok := range cases {
		if len(tok) > 20 && strings.Contains(logs, tok[len(tok)-20:]) {
			t.Errorf("the log contains the %s token", name)
		}
	}
	// Sanity: the same request with the valid token is accepted.
	if id := a.whoami(http.DefaultClient, bearer(valid)); id == nil {
		t.Fatal("the valid token was refused")
	}
}

// tamper changes a token's payload and keeps its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload := []byte(parts[1])
	if payload[5] == 'A' {
		payload[5] = 'B'
	} else {
		payload[5] = 'A'
	}
	return parts[0] + "." + string(payload) + "." + parts[2]
}

func TestBrowserSignIn(t *testing.T) {
	a := newOIDCApp(t, appOptions{secrets: map[string]string{"airlock-client-secret": "s3cret-value-for-tests"}, cfg: Config{OIDC: OIDCConfig{ClientSecretKey: "airlock-client-secret"}}})
	a.idp.SetClient(oidctest.DefaultClientID, "s3cret-value-for-tests")
	c := browser(t)
	if a.whoami(c, nil) != nil {
		t.Fatal("a fresh browser is signed in")
	}
	resp := a.signIn(c, "rita", "/whoami?x=1")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in ended at %s %s: %s\nlog:\n%s", resp.Request.URL, resp.Status, body, a.logs)
	}
	if resp.Request.URL.Path != "/whoami" || resp.Request.URL.RawQuery != "x=1" {
		t.Errorf("sign-in ended at %s, want /whoami?x=1 (next)", resp.Request.URL)
	}
	id := a.whoami(c, nil)
	if id == nil {
		t.Fatal("not signed in after the sign-in")
	}
	// Roles come from the access token (the ID token has none, as Keycloak's default).
	if id.Username != "rita" || id.Method != MethodSession || !id.HasRole("researcher") || !id.CanImport("anything") || !reflect.DeepEqual(id.Groups, []string{"/analysts"}) {
		t.Errorf("identity = %+v", id)
	}
	if a.idp.Exchanges() != 1 {
		t.Errorf("code exchanges = %d, want 1", a.idp.Exchanges())
	}
	// The session cookie's flags.
	u, _ := url.Parse(a.srv.URL)
	var found bool
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			found = true
		}
		if strings.HasPrefix(ck.Name, flowCookie) {
			t.Errorf("the sign-in cookie %s was not cleared", ck.Name)
		}
	}
	if !found {
		t.Error("no session cookie in the jar")
	}
	// Another browser is not signed in.
	if a.whoami(browser(t), nil) != nil {
		t.Error("another browser is signed in")
	}
}

func TestBrowserSignInWrongClientSecret(t *testing.T) {
	a := newOIDCApp(t, appOptions{secrets: map[string]string{"airlock-client-secret": "wrong-secret-value"}, cfg: Config{OIDC: OIDCConfig{ClientSecretKey: "airlock-client-secret"}}})
	a.idp.SetClient(oidctest.DefaultClientID, "the-right-secret")
	c := browser(t)
	resp := a.signIn(c, "rita", "/whoami")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "invalid_client") {
		t.Errorf("sign-in with a wrong client secret: %s %s", resp.Status, body)
	}
	if strings.Contains(a.logs.String(), "wrong-secret-value") || strings.Contains(body, "wrong-secret-value") {
		t.Error("the client secret appears in the log or page")
	}
	if a.whoami(c, nil) != nil {
		t.Error("signed in despite the refused exchange")
	}
}

func TestSessionCookieAttributes(t *testing.T) {
	idp := oidctest.Start(t)
	o := Options{PublicURL: "https://airlock.example.org", Secrets: secretsOf(map[string]string{"k": testSessionKey}), Logger: discardLogger()}
	a, err := New(context.Background(), Config{OIDC: OIDCConfig{Issuer: idp.URL(), ClientID: "airlock"}, SessionKeyKey: "k", Grants: testGrants}, o)
	if err != nil {
		t.Fatal(err)
	}
	rec := httpRecord(a.Handler(), "GET", "/auth/login?next=/queue", nil)
	if rec.Code != http.StatusFound {
		t.Fatalf("login: %d", rec.Code)
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), idp.URL()+"/authorize?") || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("nonce") == "" || q.Get("state") == "" || q.Get("redirect_uri") != "https://airlock.example.org/auth/callback" || q.Get("client_id") != "airlock" ||
		q.Get("scope") != "openid profile email" {
		t.Errorf("authorization URL %s", loc)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %v", cookies)
	}
	ck := cookies[0]
	if !strings.HasPrefix(ck.Name, "__Host-"+flowCookie) || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.MaxAge != 600 {
		t.Errorf("sign-in cookie %+v", ck)
	}
	for _, secret := range []string{q.Get("state"), q.Get("nonce")} {
		if strings.Contains(ck.Value, secret) {
			t.Error("the sign-in cookie holds the state or nonce in clear")
		}
	}
	// The session cookie set by startSession.
	rec = httpRecordFunc(func(w http.ResponseWriter, r *http.Request) {
		a.startSession(w, r, identityClaims{Subject: "s", Username: "rita", Roles: []string{"researcher"}}, "/")
	})
	cookies = rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("session cookies = %v", cookies)
	}
	ck = cookies[0]
	if ck.Name != "__Host-"+sessionCookie || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" ||
		ck.MaxAge < int(DefaultSessionTTL.Seconds())-5 || ck.MaxAge > int(DefaultSessionTTL.Seconds()) {
		t.Errorf("session cookie %+v", ck)
	}
	if strings.Contains(ck.Value, "rita") || strings.Contains(ck.Value, "researcher") {
		t.Error("the session cookie is not encrypted")
	}
}

// TestPKCEStopsCodeInjection: a code obtained for the attacker's own sign-in
// (their own PKCE challenge), delivered to the victim's callback with the
// victim's state, is refused by the provider because the victim's verifier
// does not match; the victim is not signed in as the attacker.
func TestPKCEStopsCodeInjection(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	victim, attacker := noFollow(browser(t)), noFollow(browser(t))

	// The victim starts signing in: their sign-in cookie and state.
	resp, err := victim.Get(a.srv.URL + "/auth/login?next=/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	victimAuth, _ := url.Parse(resp.Header.Get("Location"))
	victimState := victimAuth.Query().Get("state")

	// The attacker signs in as themself up to the callback, and keeps the code.
	resp, err = attacker.Get(a.srv.URL + "/auth/login?next=/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	page, err := attacker.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp = signInAt(t, attacker, page, "dana")
	resp.Body.Close()
	cb, _ := url.Parse(resp.Header.Get("Location"))
	if cb.Path != "/auth/callback" || cb.Query().Get("code") == "" {
		t.Fatalf("the provider redirected to %s", cb)
	}
	code := cb.Query().Get("code")

	// The victim's browser gets the attacker's code with the victim's state.
	resp, err = victim.Get(a.srv.URL + "/auth/callback?" + url.Values{"code": {code}, "state": {victimState}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "invalid_grant") {
		t.Errorf("injected code: %s %s", resp.Status, body)
	}
	if !strings.Contains(a.logs.String(), "PKCE verification failed") {
		t.Errorf("the provider did not refuse the verifier; log:\n%s", a.logs)
	}
	if id := a.whoami(victim, nil); id != nil {
		t.Errorf("the victim is signed in as %s", id.Username)
	}
	if a.idp.Exchanges() != 0 {
		t.Errorf("exchanges = %d, want 0", a.idp.Exchanges())
	}
}

func TestCallbackStateChecks(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	c := noFollow(browser(t))
	resp, err := c.Get(a.srv.URL + "/auth/login?next=/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	page, err := c.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp = signInAt(t, c, page, "rita")
	resp.Body.Close()
	cb, _ := url.Parse(resp.Header.Get("Location"))
	q := cb.Query()
	state := q.Get("state")

	try := func(name string, client *http.Client, v url.Values) {
		t.Helper()
		resp, err := client.Get(a.srv.URL + "/auth/callback?" + v.Encode())
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Sign-in refused") {
			t.Errorf("%s: %s %s", name, resp.Status, body)
		}
		if id := a.whoami(client, nil); id != nil {
			t.Errorf("%s: signed in as %s", name, id.Username)
		}
	}
	// A state that is not this browser's: another state's cookie does not exist.
	try("other state", c, url.Values{"code": {q.Get("code")}, "state": {"x" + state}})
	// Same cookie name (first 16 characters), different state.
	try("altered state", c, url.Values{"code": {q.Get("code")}, "state": {state[:16] + strings.Repeat("A", len(state)-16)}})
	try("no state", c, url.Values{"code": {q.Get("code")}})
	// Another browser without the sign-in cookie.
	try("no sign-in cookie", noFollow(browser(t)), q)
	// The provider's error is shown and nothing is signed in.
	resp, err = c.Get(a.srv.URL + "/auth/callback?error=access_denied&error_description=User+cancelled&state=" + url.QueryEscape(state))
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "(access_denied): User cancelled") {
		t.Errorf("provider error: %s %s", resp.Status, body)
	}
	// The error cleared the sign-in cookie: the real callback now fails too.
	try("after the provider's error", c, q)
	if a.idp.Exchanges() != 0 {
		t.Errorf("exchanges = %d, want 0", a.idp.Exchanges())
	}
}

func TestCallbackReplayRefused(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	c := noFollow(browser(t))
	resp, err := c.Get(a.srv.URL + "/auth/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	flowCookies := c.Jar.Cookies(mustURL(a.srv.URL))
	page, err := c.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp = signInAt(t, c, page, "rita")
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	resp, err = c.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("callback: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	// Replaying the callback with the old sign-in cookie: the provider
	// refuses the used code.
	replay := noFollow(browser(t))
	replay.Jar.SetCookies(mustURL(a.srv.URL), flowCookies)
	resp, err = replay.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "invalid_grant") {
		t.Errorf("replayed callback: %s %s", resp.Status, body)
	}
	if replay := a.whoami(replay, nil); replay != nil {
		t.Errorf("the replay signed in %s", replay.Username)
	}
}

func TestIDTokenNonceChecked(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	id := func(nonce string, mutate func(map[string]any)) string {
		c := a.idp.Claims("rita")
		c["aud"], c["typ"], c["nonce"] = oidctest.DefaultClientID, "ID", nonce
		if mutate != nil {
			mutate(c)
		}
		return a.idp.Sign(c)
	}
	ctx := context.Background()
	if _, err := a.auth.oidc.verifyID(ctx, id("n-1", nil), "n-1", ""); err != nil {
		t.Fatalf("matching nonce: %v", err)
	}
	if _, err := a.auth.oidc.verifyID(ctx, id("n-1", nil), "n-2", ""); err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Errorf("wrong nonce: %v", err)
	}
	if _, err := a.auth.oidc.verifyID(ctx, id("", nil), "n-1", ""); err == nil {
		t.Error("missing nonce accepted")
	}
	if _, err := a.auth.oidc.verifyID(ctx, id("n-1", func(c map[string]any) { c["aud"] = "account" }), "n-1", ""); err == nil {
		t.Error("an ID token for another audience accepted")
	}
	if _, err := a.auth.oidc.verifyID(ctx, id("n-1", func(c map[string]any) {
		c["aud"], c["azp"] = []string{oidctest.DefaultClientID, "other"}, "other"
	}), "n-1", ""); err == nil {
		t.Error("an ID token with several audiences authorized for another party accepted")
	}
	access := a.idp.Token("rita")
	if _, err := a.auth.oidc.verifyID(ctx, id("n-1", func(c map[string]any) { c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA" }), "n-1", access); err == nil || !strings.Contains(err.Error(), "at_hash") {
		t.Errorf("wrong at_hash: %v", err)
	}
}

func TestOpenRedirectRefused(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	c := noFollow(browser(t))
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "evil.example", "/%0d%0aSet-Cookie:x", "http:/evil.example"} {
		resp, err := c.Get(a.srv.URL + "/auth/login?next=" + url.QueryEscape(next))
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if next == "/%0d%0aSet-Cookie:x" {
			// An encoded path is a local path (the %-escapes stay escaped).
			if resp.StatusCode != http.StatusFound {
				t.Errorf("next=%q: %s", next, resp.Status)
			}
			continue
		}
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "next must be a path on this site") {
			t.Errorf("next=%q: %s %s", next, resp.Status, body)
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("next=%q: a sign-in started (cookies %v)", next, resp.Cookies())
		}
	}
	for _, ok := range []string{"", "/", "/requests/import-x-abc123?tab=files#top", "/queue"} {
		if _, err := localPath(ok); err != nil {
			t.Errorf("localPath(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"/a\nb", "/a\\b", "//x", "https://x/y", "x"} {
		if _, err := localPath(bad); err == nil {
			t.Errorf("localPath(%q) accepted", bad)
		}
	}
}

func TestSessionTamperingAndExpiry(t *testing.T) {
	a := newOIDCApp(t, appOptions{cfg: Config{SessionTTL: 1_000_000_000}}) // 1s
	c := browser(t)
	if resp := a.signIn(c, "rita", "/whoami"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %s", resp.Status)
	}
	u := mustURL(a.srv.URL)
	var session *http.Cookie
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie")
	}
	withCookie := func(value string) *Identity {
		return a.whoami(http.DefaultClient, http.Header{"Cookie": {sessionCookie + "=" + value}})
	}
	if withCookie(session.Value) == nil {
		t.Fatal("the session cookie does not sign in")
	}
	b := []byte(session.Value)
	b[len(b)/2] ^= 1
	if id := withCookie(string(b)); id != nil {
		t.Errorf("a tampered cookie signed in %s", id.Username)
	}
	// The same cookie under a server with another session key.
	other := newOIDCApp(t, appOptions{secrets: map[string]string{"airlock-session-key": strings.Repeat("z", 40)}})
	if id := other.whoami(http.DefaultClient, http.Header{"Cookie": {sessionCookie + "=" + session.Value}}); id != nil {
		t.Errorf("another server's cookie signed in %s", id.Username)
	}
	time.Sleep(2100 * time.Millisecond)
	if id := withCookie(session.Value); id != nil {
		t.Errorf("an expired session signed in %s", id.Username)
	}
}

func TestLargeSessionIsSplit(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	var groups []string
	for i := range 250 {
		groups = append(groups, fmt.Sprintf("/org/department-%03d/team", i))
	}
	groups = append(groups, "/analysts")
	a.idp.AddUser("grace", []string{"researcher"}, groups)
	c := browser(t)
	resp := a.signIn(c, "grace", "/whoami")
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: %s %s", resp.Status, body)
	}
	n := 0
	for _, ck := range c.Jar.Cookies(mustURL(a.srv.URL)) {
		if strings.HasPrefix(ck.Name, sessionCookie) {
			n++
		}
	}
	if n < 2 {
		t.Errorf("%d session cookies, want the session split over several", n)
	}
	id := a.whoami(c, nil)
	if id == nil || len(id.Groups) != 251 || !id.Caps.CanReadProject("project-a") {
		t.Fatalf("identity after a split session: %+v", id)
	}
	// A smaller session replaces it and leaves no stale chunk.
	a.idp.AddUser("grace", []string{"researcher"}, nil)
	resp = a.signIn(c, "grace", "/whoami")
	readBody(t, resp)
	id = a.whoami(c, nil)
	if id == nil || len(id.Groups) != 0 {
		t.Fatalf("identity after signing in again: %+v", id)
	}
	n = 0
	for _, ck := range c.Jar.Cookies(mustURL(a.srv.URL)) {
		if strings.HasPrefix(ck.Name, sessionCookie) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d session cookies after a smaller session, want 1", n)
	}
}

func TestCSRFAndLogout(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	c := browser(t)
	readBody(t, a.signIn(c, "rita", "/whoami"))
	resp, err := c.Get(a.srv.URL + "/csrf")
	if err != nil {
		t.Fatal(err)
	}
	token := readBody(t, resp)
	if len(token) < 20 {
		t.Fatalf("CSRF token %q", token)
	}
	post := func(client *http.Client, form url.Values, header http.Header) int {
		req, _ := http.NewRequest("POST", a.srv.URL+"/form", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(c, url.Values{CSRFField: {token}}, nil); got != http.StatusOK {
		t.Errorf("form with the token: %d", got)
	}
	if got := post(c, nil, http.Header{CSRFHeader: {token}}); got != http.StatusOK {
		t.Errorf("header with the token: %d", got)
	}
	if got := post(c, nil, nil); got != http.StatusForbidden {
		t.Errorf("no token: %d", got)
	}
	if got := post(c, url.Values{CSRFField: {token + "x"}}, nil); got != http.StatusForbidden {
		t.Errorf("wrong token: %d", got)
	}
	// Another session's token does not fit this session.
	other := browser(t)
	readBody(t, a.signIn(other, "rita", "/whoami"))
	resp, _ = other.Get(a.srv.URL + "/csrf")
	otherToken := readBody(t, resp)
	if otherToken == token {
		t.Fatal("two sessions have the same CSRF token")
	}
	if got := post(c, url.Values{CSRFField: {otherToken}}, nil); got != http.StatusForbidden {
		t.Errorf("another session's token: %d", got)
	}
	// Anonymous: no token, refused.
	if got := post(http.DefaultClient, url.Values{CSRFField: {token}}, nil); got != http.StatusForbidden {
		t.Errorf("anonymous with a stolen token: %d", got)
	}
	// Bearer requests cannot be forged cross-site: they pass.
	if got := post(http.DefaultClient, nil, bearer(a.idp.Token("rita"))); got != http.StatusOK {
		t.Errorf("bearer: %d", got)
	}

	// Logout needs the token.
	nf := noFollow(c)
	resp, err = nf.PostForm(a.srv.URL+"/auth/logout", url.Values{"next": {"/queue"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, CSRFField) {
		t.Errorf("logout without the token: %s %s", resp.Status, body)
	}
	if a.whoami(c, nil) == nil {
		t.Fatal("signed out by a forged logout")
	}
	if resp, err := nf.Get(a.srv.URL + "/auth/logout"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET logout: %v %v", resp.Status, err)
	}
	resp, err = nf.PostForm(a.srv.URL+"/auth/logout", url.Values{"next": {"/queue"}, CSRFField: {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/queue" {
		t.Errorf("logout: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	if id := a.whoami(c, nil); id != nil {
		t.Errorf("still signed in as %s after logout", id.Username)
	}
	if a.whoami(other, nil) == nil {
		t.Error("logging out one browser signed out another")
	}
}

func TestDevHeaderIgnoredInOIDCMode(t *testing.T) {
	a := newOIDCApp(t, appOptions{mutate: func(o *Options) { o.DevUsers = map[string][]string{"rita": {"researcher"}} }})
	if a.auth.Mode() != ModeOIDC {
		t.Fatalf("Mode = %q", a.auth.Mode())
	}
	if id := a.whoami(http.DefaultClient, http.Header{DevUserHeader: {"rita"}}); id != nil {
		t.Errorf("the dev header signed in %s in oidc mode", id.Username)
	}
	rec := httpRecord(a.auth.Handler(), "GET", "/auth/dev", nil)
	if rec.Code != http.StatusNotFound {
		t.Errorf("/auth/dev in oidc mode: %d", rec.Code)
	}
}

func TestOIDCConfigRefusals(t *testing.T) {
	idp := oidctest.Start(t)
	good := func() (Config, Options) {
		return Config{OIDC: OIDCConfig{Issuer: idp.URL(), ClientID: "airlock"}, SessionKeyKey: "k", Grants: testGrants},
			Options{PublicURL: "http://127.0.0.1:8080", Secrets: secretsOf(map[string]string{"k": testSessionKey}), Logger: discardLogger()}
	}
	cases := []struct {
		name   string
		change func(*Config, *Options)
		want   string
	}{
		{"no issuer", func(c *Config, o *Options) { c.OIDC.Issuer = "" }, "api.auth.oidc.issuer is required"},
		{"no client", func(c *Config, o *Options) { c.OIDC.ClientID = "" }, "api.auth.oidc.clientId is required"},
		{"no session key", func(c *Config, o *Options) { c.SessionKeyKey = "" }, "api.auth.sessionKeyKey is required"},
		{"no public URL", func(c *Config, o *Options) { o.PublicURL = "" }, "api.publicURL is required"},
		{"bad public URL", func(c *Config, o *Options) { o.PublicURL = "airlock.example.org" }, "api.publicURL \"airlock.example.org\" is not an http(s) address"},
		{"missing session secret", func(c *Config, o *Options) { c.SessionKeyKey = "absent-key" }, `secret "absent-key" not found`},
		{"short session secret", func(c *Config, o *Options) { o.Secrets = secretsOf(map[string]string{"k": "short"}) }, "at least 32 random bytes"},
		{"missing client secret", func(c *Config, o *Options) { c.OIDC.ClientSecretKey = "client-secret" }, "api.auth.oidc.clientSecretKey: secret \"client-secret\" not found"},
		{"unreachable issuer", func(c *Config, o *Options) { c.OIDC.Issuer = "http://127.0.0.1:1/realms/x" }, "api.auth.oidc.issuer: discovering http://127.0.0.1:1/realms/x/.well-known/openid-configuration failed"},
		{"issuer mismatch", func(c *Config, o *Options) { c.OIDC.Issuer = idp.URL() + "/" }, "api.auth.oidc.issuer"},
		{"unknown mode", func(c *Config, o *Options) { c.Mode = "ldap" }, `api.auth.mode "ldap" is not a mode`},
		{"negative TTL", func(c *Config, o *Options) { c.SessionTTL = -1 }, "api.auth.sessionTTL is negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, o := good()
			tc.change(&cfg, &o)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := New(ctx, cfg, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), testSessionKey) {
				t.Error("the error holds the session key")
			}
		})
	}
	cfg, o := good()
	if _, err := New(context.Background(), cfg, o); err != nil {
		t.Errorf("the good config: %v", err)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// Forged tokens do not make the API fetch the issuer's keys again and
// again: a known key id is checked against that key only, and unknown key
// ids refresh the key set at most every minKeyRefresh.
func TestForgedTokensDoNotHammerTheIssuer(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	before := a.idp.JWKSRequests()
	if before != 1 {
		t.Errorf("JWKS fetched %d times at start, want 1", before)
	}
	for range 20 {
		if a.whoami(http.DefaultClient, bearer(a.idp.ForeignKeyToken("rita"))) != nil {
			t.Fatal("a foreign-key token was accepted")
		}
		if a.whoami(http.DefaultClient, bearer(a.idp.UnknownKeyToken("rita"))) != nil {
			t.Fatal("an unknown-key token was accepted")
		}
	}
	// The start's fetch was moments ago: no unknown key id may fetch again yet.
	if got := a.idp.JWKSRequests() - before; got != 0 {
		t.Errorf("40 forged tokens fetched the JWKS %d times, want 0 within %s of the last fetch", got, minKeyRefresh)
	}
	if a.whoami(http.DefaultClient, bearer(a.idp.Token("rita"))) == nil {
		t.Fatal("a valid token was refused")
	}
}

// After the issuer rotates its key, tokens with the new key id are
// accepted once the key set may be fetched again, and old tokens stay valid.
func TestKeyRotation(t *testing.T) {
	a := newOIDCApp(t, appOptions{})
	old := a.idp.Token("rita")
	a.auth.oidc.keys.setMinRefresh(time.Hour)
	if err := a.idp.RotateKey(); err != nil {
		t.Fatal(err)
	}
	fresh := a.idp.Token("rita")
	if a.whoami(http.DefaultClient, bearer(old)) == nil {
		t.Fatal("a token of the old key was refused")
	}
	// Within minRefresh of the last fetch, an unknown key id does not fetch.
	if a.whoami(http.DefaultClient, bearer(fresh)) != nil {
		t.Fatal("a token with a key not yet fetched was accepted")
	}
	a.auth.oidc.keys.setMinRefresh(0)
	if a.whoami(http.DefaultClient, bearer(fresh)) == nil {
		t.Fatalf("a token of the rotated key was refused; log:\n%s", a.logs)
	}
	if a.whoami(http.DefaultClient, bearer(old)) == nil {
		t.Fatal("a token of the old key was refused after the rotation")
	}
	if got := a.idp.JWKSRequests(); got != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (start and rotation)", got)
	}
}
