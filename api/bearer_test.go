package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/auth/oidctest"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

// In OIDC mode API clients send access tokens; the identity provider's
// roles map to capabilities through the same grants, and the decision's
// Roles are the approve roles the token's roles grant.
func TestBearerTokens(t *testing.T) {
	idp := oidctest.Start(t)
	for user, roles := range testUsers {
		idp.AddUser(user, roles, nil)
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "session-key"), []byte(strings.Repeat("k", 48)), 0o600))
	authn, err := auth.New(context.Background(), auth.Config{
		Mode:          auth.ModeOIDC,
		OIDC:          auth.OIDCConfig{Issuer: idp.URL(), ClientID: idp.ClientID()},
		Grants:        testGrants,
		SessionKeyKey: "session-key",
	}, auth.Options{PublicURL: "http://127.0.0.1:8080", Secrets: &secrets.Provider{Dir: dir}, ListenAddr: "127.0.0.1:8080", Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	e := newEnvWith(t, authn)
	st := awaiting("import-a-111111", "rita")
	e.fake.put(st)

	bearer := func(token string) string { return "Bearer " + token }
	code, _, body := e.call("", "GET", "/api/v1/requests/import-a-111111", "", "Authorization", bearer(idp.Token("rita")))
	require.Equal(t, http.StatusOK, code, "%s", body)
	var got model.RequestStatus
	require.NoError(t, json.Unmarshal(body, &got))
	assert.Equal(t, st.ID, got.ID)

	// The dev header means nothing in OIDC mode.
	code, h, _ := e.call("rita", "GET", "/api/v1/requests/import-a-111111", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Equal(t, `Bearer realm="airlock"`, h.Get("WWW-Authenticate"))
	for name, token := range map[string]string{
		"expired": idp.ExpiredToken("rita"), "wrong issuer": idp.WrongIssuerToken("rita"),
		"foreign key": idp.ForeignKeyToken("rita"), "garbage": "not-a-jwt",
	} {
		code, _, body := e.call("", "GET", "/api/v1/requests/import-a-111111", "", "Authorization", bearer(token))
		assert.Equal(t, http.StatusUnauthorized, code, name)
		assert.Equal(t, 401, errorOf(t, body).Status, name)
	}

	approve := mustJSON(t, map[string]string{"stage": "review", "decision": "approve", "manifest_digest": st.ManifestDigest})
	code, _, body = e.call("", "POST", "/api/v1/requests/import-a-111111/decisions", approve, "Authorization", bearer(idp.Token("dana")))
	require.Equal(t, http.StatusOK, code, "%s", body)
	d := e.fake.lastDecision()
	assert.Equal(t, "dana", d.By)
	assert.Equal(t, []string{"data-engineer"}, d.Roles)

	code, _, body = e.call("", "GET", "/api/v1/requests/import-a-111111", "", "Authorization", bearer(idp.Token("mallory")))
	assert.Equal(t, http.StatusNotFound, code, "%s", body)
}
