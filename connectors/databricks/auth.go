package databricks

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/config"
	"github.com/databricks/databricks-sdk-go/httpclient"
	"github.com/databricks/databricks-sdk-go/service/files"
	"github.com/databricks/databricks-sdk-go/service/sql"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/secrets"
)

// authMethod describes how the connector authenticates, for messages: the
// method and the credential fields and secret keys it comes from.
type authMethod struct {
	name   string
	fields string
}

func (a authMethod) String() string { return a.name + " from " + a.fields }

// tokenUser is the user name that marks the password as a personal access
// token, as in Databricks' JDBC and ODBC drivers.
const tokenUser = "token"

// explicitOnly is the SDK configuration loader that loads nothing: every
// setting comes from the connection, none from the environment or
// ~/.databrickscfg.
type explicitOnly struct{}

func (explicitOnly) Name() string                   { return "airlock connection settings only" }
func (explicitOnly) Configure(*config.Config) error { return nil }

// configure resolves the connection's credentials and builds the SDK
// clients for them.
func (s *Source) configure(ctx context.Context, p *secrets.Provider) error {
	cr := s.conn.Credentials
	keys := cr.Keys()
	for _, field := range slices.Sorted(maps.Keys(keys)) {
		switch field {
		case "tokenKey", "userKey", "passwordKey", "clientIdKey", "clientSecretKey":
		default:
			return connectors.BadInput("connection %q: credentials.%s does not apply to databricks connections: give tokenKey (a personal access token), userKey and passwordKey, or clientIdKey and clientSecretKey (a service principal)", s.conn.Name, field)
		}
	}
	var methods []string
	if cr.TokenKey != "" {
		methods = append(methods, "tokenKey")
	}
	if cr.UserKey != "" || cr.PasswordKey != "" {
		methods = append(methods, "userKey/passwordKey")
	}
	if cr.ClientIDKey != "" || cr.ClientSecretKey != "" {
		methods = append(methods, "clientIdKey/clientSecretKey")
	}
	switch {
	case len(methods) == 0:
		return connectors.BadInput("connection %q: credentials are missing: give tokenKey (a personal access token), userKey and passwordKey, or clientIdKey and clientSecretKey (a service principal), each naming a secret key", s.conn.Name)
	case len(methods) > 1:
		return connectors.BadInput("connection %q: credentials give more than one way to sign in (%s): keep exactly one of tokenKey, userKey and passwordKey, or clientIdKey and clientSecretKey", s.conn.Name, strings.Join(methods, " and "))
	case (cr.UserKey == "") != (cr.PasswordKey == ""):
		missing, given := "passwordKey", "userKey"
		if cr.UserKey == "" {
			missing, given = "userKey", "passwordKey"
		}
		return connectors.BadInput("connection %q: credentials.%s is set but credentials.%s is missing: give both (user \"token\" and a personal access token as password, or basic-auth credentials)", s.conn.Name, given, missing)
	case (cr.ClientIDKey == "") != (cr.ClientSecretKey == ""):
		missing, given := "clientSecretKey", "clientIdKey"
		if cr.ClientIDKey == "" {
			missing, given = "clientIdKey", "clientSecretKey"
		}
		return connectors.BadInput("connection %q: credentials.%s is set but credentials.%s is missing: a service principal needs both its client id and an OAuth secret", s.conn.Name, given, missing)
	}
	vals, err := p.Resolve(ctx, s.conn.Name, keys)
	if err != nil {
		if secrets.IsMissing(err) || strings.Contains(err.Error(), "is not a valid key name") {
			return connectors.BadInput("%w", err)
		}
		return err
	}

	base := s.opts.HTTPClient.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cfg := &config.Config{
		Host:    s.host,
		Loaders: []config.Loader{explicitOnly{}},
		// The connector honours Retry-After itself (see callAPI); the
		// SDK's own retries cover only network errors, for this long.
		RetryTimeoutSeconds: 60,
		HTTPTransport:       hintTransport{base: base},
	}
	switch {
	case cr.TokenKey != "":
		cfg.AuthType, cfg.Credentials, cfg.Token = "pat", config.PatCredentials{}, vals["tokenKey"]
		s.auth = authMethod{"a personal access token", fmt.Sprintf("credentials.tokenKey (secret %q)", cr.TokenKey)}
	case vals["userKey"] == tokenUser:
		cfg.AuthType, cfg.Credentials, cfg.Token = "pat", config.PatCredentials{}, vals["passwordKey"]
		s.auth = authMethod{"a personal access token given as user \"token\" and password", fmt.Sprintf("credentials.passwordKey (secret %q)", cr.PasswordKey)}
	case cr.UserKey != "":
		cfg.AuthType, cfg.Credentials = "basic", config.BasicCredentials{}
		cfg.Username, cfg.Password = vals["userKey"], vals["passwordKey"]
		s.auth = authMethod{"basic auth", fmt.Sprintf("credentials.userKey and credentials.passwordKey (secrets %q and %q)", cr.UserKey, cr.PasswordKey)}
	default:
		cfg.AuthType, cfg.Credentials = "oauth-m2m", config.M2mCredentials{}
		cfg.ClientID, cfg.ClientSecret = vals["clientIdKey"], vals["clientSecretKey"]
		s.auth = authMethod{"OAuth machine-to-machine for a service principal", fmt.Sprintf("credentials.clientIdKey and credentials.clientSecretKey (secrets %q and %q)", cr.ClientIDKey, cr.ClientSecretKey)}
	}
	for _, v := range vals {
		if v != "" && v != tokenUser {
			s.secretValues = append(s.secretValues, v)
		}
	}

	cc, err := config.HTTPClientConfigFromConfig(cfg)
	if err != nil {
		return connectors.BadInput("connection %q: configuring the Databricks SDK for %s: %v", s.conn.Name, s.host, err)
	}
	cc.ErrorRetriable = func(context.Context, error) bool { return false }
	cc.TransientErrors = nil
	api, err := client.NewWithClient(cfg, httpclient.NewApiClient(cc))
	if err != nil {
		return connectors.BadInput("connection %q: configuring the Databricks SDK for %s: %v", s.conn.Name, s.host, err)
	}
	s.api = api
	s.stmts = sql.NewStatementExecution(api)
	s.files = files.NewFiles(api)
	s.http = s.opts.HTTPClient
	return nil
}
