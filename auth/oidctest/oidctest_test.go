package oidctest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

const redirect = "http://127.0.0.1:9/callback"

var txRE = regexp.MustCompile(`name="tx" value="([^"]+)"`)

// code runs /authorize and the sign-in form for user with the PKCE
// verifier, and returns the code the provider redirects with.
func code(t *testing.T, p *Provider, user, verifier string) string {
	t.Helper()
	cfg := oauth2.Config{ClientID: p.ClientID(), RedirectURL: redirect, Scopes: []string{"openid"},
		Endpoint: oauth2.Endpoint{AuthURL: p.URL() + "/authorize", TokenURL: p.URL() + "/token"}}
	resp, err := http.Get(cfg.AuthCodeURL("st-1", oidc.Nonce("n-1"), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := txRE.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("authorize: %s %s", resp.Status, body)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = client.PostForm(p.URL()+"/authorize", url.Values{"tx": {string(m[1])}, "username": {user}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), redirect+"?") || loc.Query().Get("state") != "st-1" {
		t.Fatalf("sign-in redirected %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

// exchange posts to /token and returns the status and JSON body.
func exchange(t *testing.T, p *Provider, form url.Values, basicSecret string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.URL()+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicSecret != "" {
		req.SetBasicAuth(url.QueryEscape(p.ClientID()), url.QueryEscape(basicSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func form(c, verifier string) url.Values {
	v := url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirect}, "client_id": {DefaultClientID}}
	if verifier != "" {
		v.Set("code_verifier", verifier)
	}
	return v
}

func TestCodeExchangeChecksPKCE(t *testing.T) {
	p := Start(t)
	p.AddUser("rita", []string{"researcher"}, []string{"/analysts"})
	verifier := oauth2.GenerateVerifier()

	status, out := exchange(t, p, form(code(t, p, "rita", verifier), ""), "")
	if status != http.StatusBadRequest || out["error"] != "invalid_grant" || !strings.Contains(out["error_description"].(string), "code_verifier missing") {
		t.Errorf("no verifier: %d %v", status, out)
	}
	status, out = exchange(t, p, form(code(t, p, "rita", verifier), oauth2.GenerateVerifier()), "")
	if status != http.StatusBadRequest || !strings.Contains(out["error_description"].(string), "does not match code_challenge") {
		t.Errorf("wrong verifier: %d %v", status, out)
	}
	c := code(t, p, "rita", verifier)
	bad := form(c, verifier)
	bad.Set("redirect_uri", redirect+"x")
	if status, out = exchange(t, p, bad, ""); status != http.StatusBadRequest || !strings.Contains(out["error_description"].(string), "redirect_uri") {
		t.Errorf("other redirect_uri: %d %v", status, out)
	}
	// A code is good for one attempt, even a failed one.
	if status, out = exchange(t, p, form(c, verifier), ""); status != http.StatusBadRequest || out["error_description"] != "code already used" {
		t.Errorf("code after a failed attempt: %d %v", status, out)
	}

	c = code(t, p, "rita", verifier)
	status, out = exchange(t, p, form(c, verifier), "")
	if status != http.StatusOK || out["id_token"] == nil || out["access_token"] == nil || out["token_type"] != "Bearer" {
		t.Fatalf("good exchange: %d %v", status, out)
	}
	if status, again := exchange(t, p, form(c, verifier), ""); status != http.StatusBadRequest || again["error_description"] != "code already used" {
		t.Errorf("reused code: %d %v", status, again)
	}
	if p.Exchanges() != 1 {
		t.Errorf("Exchanges = %d, want 1", p.Exchanges())
	}

	// The tokens verify with go-oidc against the provider's discovery and JWKS.
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, p.URL())
	if err != nil {
		t.Fatal(err)
	}
	idTok, err := prov.Verifier(&oidc.Config{ClientID: DefaultClientID}).Verify(ctx, out["id_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if idTok.Nonce != "n-1" || idTok.Subject != Subject("rita") {
		t.Errorf("ID token nonce %q sub %q", idTok.Nonce, idTok.Subject)
	}
	if err := idTok.VerifyAccessToken(out["access_token"].(string)); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	var idClaims map[string]any
	idTok.Claims(&idClaims)
	if _, ok := idClaims["realm_access"]; ok {
		t.Error("the ID token carries realm roles (Keycloak's default puts them in the access token only)")
	}
	at, err := prov.Verifier(&oidc.Config{SkipClientIDCheck: true}).Verify(ctx, out["access_token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Username string `json:"preferred_username"`
		Azp      string `json:"azp"`
		Realm    struct {
			Roles []string `json:"roles"`
		} `json:"realm_access"`
		Groups []string `json:"groups"`
	}
	at.Claims(&claims)
	if claims.Username != "rita" || claims.Azp != DefaultClientID || len(claims.Realm.Roles) != 1 || claims.Realm.Roles[0] != "researcher" || len(claims.Groups) != 1 {
		t.Errorf("access token claims %+v", claims)
	}
}

func TestClientSecret(t *testing.T) {
	p := Start(t)
	p.AddUser("rita", nil, nil)
	p.SetClient("airlock-web", "p@ss word/+")
	verifier := oauth2.GenerateVerifier()
	f := func(c string) url.Values {
		v := form(c, verifier)
		v.Set("client_id", "airlock-web")
		return v
	}
	if status, out := exchange(t, p, f(code(t, p, "rita", verifier)), ""); status != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Errorf("no secret: %d %v", status, out)
	}
	if status, out := exchange(t, p, f(code(t, p, "rita", verifier)), "wrong"); status != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v", status, out)
	}
	if status, out := exchange(t, p, f(code(t, p, "rita", verifier)), "p@ss word/+"); status != http.StatusOK {
		t.Errorf("basic auth secret: %d %v", status, out)
	}
	post := f(code(t, p, "rita", verifier))
	post.Set("client_secret", "p@ss word/+")
	if status, out := exchange(t, p, post, ""); status != http.StatusOK {
		t.Errorf("form secret: %d %v", status, out)
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	p := Start(t)
	p.AddUser("rita", nil, nil)
	base := url.Values{"client_id": {DefaultClientID}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"s"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}
	for name, change := range map[string]func(url.Values){
		"unknown client":    func(v url.Values) { v.Set("client_id", "other") },
		"relative redirect": func(v url.Values) { v.Set("redirect_uri", "/cb") },
		"no openid scope":   func(v url.Values) { v.Set("scope", "profile") },
		"no PKCE":           func(v url.Values) { v.Del("code_challenge") },
		"plain PKCE":        func(v url.Values) { v.Set("code_challenge_method", "plain") },
		"implicit flow":     func(v url.Values) { v.Set("response_type", "token") },
	} {
		v := url.Values{}
		for k, x := range base {
			v[k] = append([]string(nil), x...)
		}
		change(v)
		resp, err := http.Get(p.URL() + "/authorize?" + v.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %s", name, resp.Status)
		}
	}
	// An unknown user is asked again.
	resp, err := http.Get(p.URL() + "/authorize?" + base.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tx := txRE.FindSubmatch(body)
	if tx == nil {
		t.Fatalf("no form: %s", body)
	}
	resp, err = http.PostForm(p.URL()+"/authorize", url.Values{"tx": {string(tx[1])}, "username": {"mallory"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "Invalid username.") || !strings.Contains(string(body), string(tx[1])) {
		t.Errorf("unknown user: %s", body)
	}
}

func TestNewOnAddress(t *testing.T) {
	p, err := New("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(p.URL() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if d["issuer"] != p.URL() || d["jwks_uri"] != p.URL()+"/jwks" {
		t.Errorf("discovery %v", d)
	}
	p.Close()
	if _, err := http.Get(p.URL() + "/.well-known/openid-configuration"); err == nil {
		t.Error("the provider still answers after Close")
	}
}
