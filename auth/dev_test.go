package auth

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

var devUsers = map[string][]string{
	"rita":  {"researcher"},
	"dana":  {"data-engineer"},
	"olive": {"data-engineer", "information-governance"},
}

func newDevApp(t *testing.T) *app {
	t.Helper()
	return startApp(t, nil, Config{Mode: ModeDev, Grants: testGrants}, nil, func(o *Options) { o.DevUsers = devUsers })
}

func TestDevModeRefusals(t *testing.T) {
	base := func() (Config, Options) {
		return Config{Mode: ModeDev, Grants: testGrants}, Options{ListenAddr: "127.0.0.1:8080", DevUsers: devUsers, Logger: discardLogger()}
	}
	cases := []struct {
		name   string
		change func(*Config, *Options)
		want   string
	}{
		{"all interfaces", func(c *Config, o *Options) { o.ListenAddr = ":8080" }, `listens on ":8080", which is not loopback`},
		{"0.0.0.0", func(c *Config, o *Options) { o.ListenAddr = "0.0.0.0:8080" }, "not loopback"},
		{"::", func(c *Config, o *Options) { o.ListenAddr = "[::]:8080" }, "not loopback"},
		{"LAN address", func(c *Config, o *Options) { o.ListenAddr = "192.168.1.20:8080" }, "not loopback"},
		{"host name", func(c *Config, o *Options) { o.ListenAddr = "airlock.example.org:8080" }, "not loopback"},
		{"no listen address", func(c *Config, o *Options) { o.ListenAddr = "" }, "only allowed on loopback"},
		{"issuer set", func(c *Config, o *Options) { c.OIDC.Issuer = "https://keycloak.example.org/realms/x" }, "api.auth.oidc.issuer is set"},
		{"no users", func(c *Config, o *Options) { o.DevUsers = nil }, "directory.users is empty"},
		{"bad grant", func(c *Config, o *Options) { c.Grants = []Grant{{Role: "x", Capabilities: []string{"root"}}} }, "api.auth.grants[0].capabilities[0]"},
		{"missing configured session key", func(c *Config, o *Options) { c.SessionKeyKey = "absent" }, `api.auth.sessionKeyKey: secret "absent" not found`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, o := base()
			tc.change(&cfg, &o)
			o.Secrets = secretsOf(nil)
			_, err := New(context.Background(), cfg, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.2:1", "[::1]:8080", "localhost:8080", "LOCALHOST:1"} {
		cfg, o := base()
		o.ListenAddr = addr
		a, err := New(context.Background(), cfg, o)
		if err != nil {
			t.Errorf("listen %s: %v", addr, err)
			continue
		}
		if a.Mode() != ModeDev {
			t.Errorf("Mode = %q", a.Mode())
		}
	}
}

func TestDevModeWarning(t *testing.T) {
	var logs syncBuffer
	_, err := New(context.Background(), Config{Mode: ModeDev}, Options{ListenAddr: "127.0.0.1:8080", DevUsers: devUsers,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if n := strings.Count(out, "level=WARN"); n < 5 || !strings.Contains(out, "WARNING") || !strings.Contains(out, "DEV sign-in mode") || !strings.Contains(out, "development only") {
		t.Errorf("the dev warning is not loud (%d warning lines):\n%s", n, out)
	}
}

func TestDevHeader(t *testing.T) {
	a := newDevApp(t)
	id := a.whoami(http.DefaultClient, http.Header{DevUserHeader: {"olive"}})
	if id == nil || id.Username != "olive" || id.Method != MethodDevHeader || !id.CanApprove("data-engineer") || !id.CanApprove("information-governance") || !id.Caps.ReadsAll() {
		t.Fatalf("olive = %+v", id)
	}
	if id := a.whoami(http.DefaultClient, http.Header{DevUserHeader: {"mallory"}}); id != nil {
		t.Errorf("an unknown dev user signed in as %s", id.Username)
	}
	// Bearer tokens mean nothing in dev mode.
	if id := a.whoami(http.DefaultClient, bearer("eyJhbGciOiJub25lIn0.e30.")); id != nil {
		t.Errorf("a bearer token signed in %s in dev mode", id.Username)
	}
	// CSRF: the header cannot be forged cross-site, so it passes.
	req, _ := http.NewRequest("POST", a.srv.URL+"/form", nil)
	req.Header.Set(DevUserHeader, "rita")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("dev header POST: %s", resp.Status)
	}
}

func TestDevSignInPage(t *testing.T) {
	a := newDevApp(t)
	c := browser(t)
	// /auth/login sends browsers to the dev page, keeping next.
	resp, err := c.Get(a.srv.URL + "/auth/login?next=" + url.QueryEscape("/whoami"))
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, resp)
	if resp.Request.URL.Path != "/auth/dev" {
		t.Fatalf("login went to %s", resp.Request.URL)
	}
	for _, want := range []string{`value="olive"`, "data-engineer, information-governance", `value="rita"`, "researcher", `name="next" value="/whoami"`, "Never use this mode for real data"} {
		if !strings.Contains(page, want) {
			t.Errorf("dev page lacks %q:\n%s", want, page)
		}
	}
	resp, err = c.PostForm(a.srv.URL+"/auth/dev", url.Values{"user": {"dana"}, "next": {"/whoami"}})
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.Request.URL.Path != "/whoami" || resp.StatusCode != http.StatusOK {
		t.Errorf("dev sign-in ended at %s %s", resp.Request.URL, resp.Status)
	}
	id := a.whoami(c, nil)
	if id == nil || id.Username != "dana" || id.Method != MethodSession || !id.CanApprove("data-engineer") || id.CanImport("x") {
		t.Fatalf("dana = %+v", id)
	}
	resp, err = c.PostForm(a.srv.URL+"/auth/dev", url.Values{"user": {"mallory"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not a user in directory.users") {
		t.Errorf("unknown dev user: %s %s", resp.Status, body)
	}
	resp, err = noFollow(c).PostForm(a.srv.URL+"/auth/dev", url.Values{"user": {"rita"}, "next": {"https://evil.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if readBody(t, resp); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("dev sign-in with an outside next: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	// /auth/callback is not served in dev mode.
	if rec := httpRecord(a.auth.Handler(), "GET", "/auth/callback?code=x&state=y", nil); rec.Code != http.StatusNotFound {
		t.Errorf("/auth/callback in dev mode: %d", rec.Code)
	}
}

// A dev session cookie is not an oidc session, even under the same key.
func TestDevSessionNotValidInOIDCMode(t *testing.T) {
	sec := map[string]string{"airlock-session-key": testSessionKey}
	dev := startApp(t, nil, Config{Mode: ModeDev, Grants: testGrants, SessionKeyKey: "airlock-session-key"}, sec, func(o *Options) { o.DevUsers = devUsers })
	c := browser(t)
	resp, err := c.PostForm(dev.srv.URL+"/auth/dev", url.Values{"user": {"olive"}, "next": {"/whoami"}})
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	var value string
	for _, ck := range c.Jar.Cookies(mustURL(dev.srv.URL)) {
		if ck.Name == sessionCookie {
			value = ck.Value
		}
	}
	if value == "" || dev.whoami(c, nil) == nil {
		t.Fatal("dev sign-in failed")
	}
	oidcApp := newOIDCApp(t, appOptions{})
	if id := oidcApp.whoami(http.DefaultClient, http.Header{"Cookie": {sessionCookie + "=" + value}}); id != nil {
		t.Errorf("a dev session signed in %s in oidc mode", id.Username)
	}
}
