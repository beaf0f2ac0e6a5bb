package databricks_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/databricks"
	"github.com/airlockhq/airlock/connectors/databricks/fakedatabricks"
	"github.com/airlockhq/airlock/model"
)

// produceSmall runs a three-row table through src and returns the fake's
// request log.
func produceSmall(t *testing.T, fake *fakedatabricks.Server, conn model.Connection) []fakedatabricks.Request {
	t.Helper()
	src := newSource(t, conn, withWarehouse(fastOptions()))
	out, err := src.Produce(context.Background(), tableObject("patients"), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Tables[0].Rows != 3 {
		t.Fatalf("rows = %d", out.Tables[0].Rows)
	}
	return fake.Requests()
}

func smallFake(t *testing.T) *fakedatabricks.Server {
	return startFake(t, fakedatabricks.Options{Tables: map[string]*fakedatabricks.Table{"main.default.patients": patients(3)}})
}

func TestServicePrincipalOAuthM2M(t *testing.T) {
	fake := smallFake(t)
	reqs := produceSmall(t, fake, connection(fake.URL, m2mCreds))
	var discovered, tokens int
	for _, r := range reqs {
		switch {
		case r.Path == "/oidc/.well-known/oauth-authorization-server":
			discovered++
		case r.Path == "/oidc/v1/token":
			tokens++
			if r.Status != 200 {
				t.Errorf("token request answered %d", r.Status)
			}
		case r.Auth != "Bearer" || r.Status != 200:
			t.Errorf("API request %s %s: auth %q status %d; want an OAuth bearer token", r.Method, r.Path, r.Auth, r.Status)
		}
	}
	if discovered != 1 || tokens != 1 {
		t.Errorf("%d discovery and %d token requests, want one of each", discovered, tokens)
	}
}

func TestBasicAuth(t *testing.T) {
	fake := smallFake(t)
	for _, r := range produceSmall(t, fake, connection(fake.URL, basicCreds)) {
		if r.Auth != "Basic" || r.Status != 200 {
			t.Errorf("request %s %s: auth %q status %d; want basic auth", r.Method, r.Path, r.Auth, r.Status)
		}
	}
}

// User "token" means the password is a personal access token, as in
// Databricks' JDBC and ODBC drivers.
func TestTokenUserMeansPAT(t *testing.T) {
	fake := smallFake(t)
	for _, r := range produceSmall(t, fake, connection(fake.URL, model.Credentials{UserKey: "DbTokenUser", PasswordKey: "DbToken"})) {
		if r.Auth != "Bearer" || r.Status != 200 {
			t.Errorf("request %s %s: auth %q status %d; want the password as a bearer token", r.Method, r.Path, r.Auth, r.Status)
		}
	}
}

// Neither ~/.databrickscfg nor DATABRICKS_* variables may change what the
// connector does: it authenticates with the connection's credentials only.
func TestNoSDKConfigFromEnvironmentOrFile(t *testing.T) {
	home := t.TempDir()
	cfgFile := filepath.Join(home, ".databrickscfg")
	if err := os.WriteFile(cfgFile, []byte("[DEFAULT]\nhost = http://127.0.0.1:9\ntoken = dapi-from-file\n[other]\nhost = http://127.0.0.1:9\nusername = bob\npassword = pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("DATABRICKS_CONFIG_FILE", cfgFile)
	t.Setenv("DATABRICKS_CONFIG_PROFILE", "other")
	t.Setenv("DATABRICKS_HOST", "http://127.0.0.1:9")
	t.Setenv("DATABRICKS_TOKEN", "dapi-from-env")
	t.Setenv("DATABRICKS_AUTH_TYPE", "pat")
	t.Setenv("DATABRICKS_CLIENT_ID", "env-client")
	t.Setenv("DATABRICKS_CLIENT_SECRET", "env-secret")
	t.Setenv("DATABRICKS_WAREHOUSE_ID", "env-warehouse")

	fake := smallFake(t)
	for _, r := range produceSmall(t, fake, connection(fake.URL, basicCreds)) {
		if r.Auth != "Basic" || r.Status != 200 {
			t.Errorf("request %s %s: auth %q status %d; want the connection's basic auth", r.Method, r.Path, r.Auth, r.Status)
		}
	}
	if st := fake.Statements()[0]; st.WarehouseID != warehouseID {
		t.Errorf("warehouse %q, want the worker's %q", st.WarehouseID, warehouseID)
	}
}

func TestCredentialProblemsAreBadInputNamingFields(t *testing.T) {
	fake := smallFake(t)
	cases := []struct {
		creds model.Credentials
		want  []string
	}{
		{model.Credentials{TokenKey: "NoSuchSecret"}, []string{"credentials.tokenKey", `"NoSuchSecret" not found`}},
		{model.Credentials{UserKey: "DbUser", PasswordKey: "Missing-Password"}, []string{"credentials.passwordKey", `"Missing-Password" not found`}},
		{model.Credentials{UserKey: "DbUser"}, []string{"credentials.userKey is set but credentials.passwordKey is missing"}},
		{model.Credentials{PasswordKey: "DbPassword"}, []string{"credentials.passwordKey is set but credentials.userKey is missing"}},
		{model.Credentials{ClientIDKey: "DbClientID"}, []string{"credentials.clientIdKey is set but credentials.clientSecretKey is missing"}},
		{model.Credentials{ClientSecretKey: "DbClientSecret"}, []string{"credentials.clientSecretKey is set but credentials.clientIdKey is missing"}},
		{model.Credentials{TokenKey: "DbToken", ClientIDKey: "DbClientID", ClientSecretKey: "DbClientSecret"}, []string{"more than one way", "tokenKey and clientIdKey/clientSecretKey"}},
		{model.Credentials{}, []string{"credentials are missing", "tokenKey", "clientIdKey and clientSecretKey"}},
		{model.Credentials{TokenKey: "DbToken", TenantIDKey: "DbTenant"}, []string{"credentials.tenantIdKey does not apply"}},
	}
	for _, c := range cases {
		_, err := databricks.Factories(provider(t, defaultSecrets), fastOptions()).Source(context.Background(), connection(fake.URL, c.creds))
		if !connectors.IsBadInput(err) {
			t.Errorf("%+v: err = %v; want bad input", c.creds, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: err = %v; want it to say %q", c.creds, err, w)
			}
		}
	}
}

// Wrong credentials are refused with bad input naming the credential
// fields and secret keys, never the values.
func TestSecretValuesNeverAppearInErrors(t *testing.T) {
	// The workspace accepts other credentials than the ones the secrets hold.
	fake, err := fakedatabricks.New(fakedatabricks.Options{
		Token: "dapi-other", Username: "carol", Password: "other-password", ClientID: "other-client", ClientSecret: "other-secret",
		WarehouseID: warehouseID,
		Tables:      map[string]*fakedatabricks.Table{"main.default.patients": patients(3)},
		Files:       map[string][]byte{"/Volumes/main/raw/landing/a.csv": []byte("a,b\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	for _, c := range []struct {
		name   string
		creds  model.Credentials
		fields string
	}{
		{"pat", patCreds, "credentials.tokenKey"},
		{"basic", basicCreds, "credentials.userKey and credentials.passwordKey"},
		{"token user", model.Credentials{UserKey: "DbTokenUser", PasswordKey: "DbToken"}, "credentials.passwordKey"},
		{"m2m", m2mCreds, "credentials.clientIdKey and credentials.clientSecretKey"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := connection(fake.URL+"/Volumes/main/raw/landing", c.creds)
			src := newSource(t, conn, withWarehouse(fastOptions()))
			_, perr := src.Produce(context.Background(), tableObject("patients"), t.TempDir(), nil)
			_, lerr := src.List(context.Background(), model.Object{Prefix: &model.FileObject{Path: "", Connection: "databricks"}})
			_, oerr := src.Open(context.Background(), connectors.Item{Path: "a.csv", Ref: "/Volumes/main/raw/landing/a.csv", Size: 4}, 0)
			for _, err := range []error{perr, lerr, oerr} {
				if !connectors.IsBadInput(err) {
					t.Errorf("err = %v; want bad input", err)
					continue
				}
				if !strings.Contains(err.Error(), c.fields) {
					t.Errorf("err = %v; want it to name %s", err, c.fields)
				}
				for _, v := range allSecrets {
					if strings.Contains(err.Error(), v) {
						t.Errorf("err contains the secret value %q: %v", v, err)
					}
				}
			}
			if d := src.Describe(); strings.Contains(d, patValue) || strings.Contains(d, userValue) || strings.Contains(d, clientIDValue) {
				t.Errorf("Describe leaks a secret: %s", d)
			}
		})
	}
}
