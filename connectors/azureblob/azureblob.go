// Package azureblob reads and keeps data in Azure Blob Storage: it is the
// source for "azureblob" connections and a connectors.Store (staging area or
// workspace) over a container.
//
// # Connections
//
// A connection's url is the container's URL, optionally followed by a
// prefix (a folder) inside it:
//
//	https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix]
//	http://127.0.0.1:10000/ACCOUNT/CONTAINER[/prefix]   (an emulator such as Azurite)
//
// The account is the first label of the host name, except when the host is
// an IP address or localhost, or the connection sets pathStyle: true (an
// emulator reached through a host name): then the account is the URL's
// first path segment, as emulators address it. The connection's prefix
// field, if set, is a further folder below the URL's. Endpoint and region
// are not used (the url says everything) and are refused. The url must not
// carry a query string: a SAS token is a secret, named by
// credentials.sasTokenKey.
//
// Credentials name secret keys, resolved by a secrets.Provider when the
// source or store is built. Exactly one way of authenticating is used:
//
//   - accountKeyKey: the storage account's shared key (the account name
//     comes from the url);
//   - sasTokenKey: a shared access signature (the query string, with or
//     without its leading '?', or a SAS URL whose query is used), appended
//     to every request;
//   - connectionStringKey: an Azure Storage connection string. It supplies
//     the endpoint and the credential (AccountName+AccountKey or
//     SharedAccessSignature); the url still names the container and prefix,
//     and must name the same endpoint as the connection string, so that what
//     Airlock shows is where it reads;
//   - clientIdKey + clientSecretKey + tenantIdKey: an Entra ID service
//     principal (all three are needed);
//   - none: azidentity's DefaultAzureCredential, where the worker's
//     environment configures one: the AZURE_CLIENT_ID/AZURE_TENANT_ID/...
//     environment variables, AKS workload identity, a managed identity, or
//     a signed-in Azure CLI. Token credentials need an https url.
//
// Secret values never appear in Describe, URL, errors or logs: error texts
// are built from the service's status and error code, URLs printed without
// their query string, and anything that still carries a secret value is
// scrubbed by the provider.
//
// # Reading
//
// A source lists blobs with a paged flat listing and reads them with ranged
// downloads conditioned on the ETag seen when listing (If-Match), so a blob
// replaced while it is copied, even between two attempts of a resumed copy,
// fails the copy instead of mixing two versions. Blobs larger than one part
// are fetched as parallel ranged downloads (Options.PartSize ×
// Options.Concurrency bytes in memory at most).
//
// # Writing
//
// A store writes a file as a block blob under its final key: blocks of
// Options.PartSize are staged in parallel and committed with one Put Block
// List, so nothing is visible under the key until Commit, and a checkpoint
// (the blocks staged so far) survives a crash; see Store.Create.
package azureblob

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/version"
)

// InstrumentName names this connector in a crate's CreateAction.
const InstrumentName = "airlock azureblob connector"

// Defaults for Options' zero fields.
const (
	// DefaultPartSize is the size of a staged block and of a ranged read.
	DefaultPartSize = 16 << 20
	// DefaultConcurrency is how many blocks are staged, or ranges fetched, at once.
	DefaultConcurrency = 3
	// DefaultListPageSize is the service's largest page of a blob listing.
	DefaultListPageSize = 5000
)

// Limits of Azure block blobs.
const (
	// MaxPartSize is the largest block Azure accepts (4000 MiB).
	MaxPartSize = 4000 << 20
	// MaxBlocks is the most blocks one blob can have: a file written through
	// a store can be at most PartSize × MaxBlocks bytes.
	MaxBlocks = 50000
)

// Options tune the connector. Zero fields take the defaults: 16 MiB parts,
// 3 at a time (so a writer holds at most 4 × 16 MiB and a reader 3 × 16 MiB),
// 5000 blobs per listing page.
type Options struct {
	// PartSize is the size of each staged block when writing and of each
	// ranged download when reading a blob larger than one part (1 byte to
	// MaxPartSize).
	PartSize int64
	// Concurrency is how many blocks are staged, or ranges fetched, at once.
	Concurrency int
	// ListPageSize is how many blobs one listing request returns (1 to 5000).
	ListPageSize int32

	// retry replaces the SDK's retry policy (tests shorten it).
	retry *policy.RetryOptions
}

// withDefaults fills zero fields and checks the others.
func (o Options) withDefaults() (Options, error) {
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ListPageSize == 0 {
		o.ListPageSize = DefaultListPageSize
	}
	switch {
	case o.PartSize < 0 || o.PartSize > MaxPartSize:
		return o, connectors.BadInput("azureblob: part size %d is out of range: use 1 byte to %d MiB (Azure's largest block), or 0 for %d MiB", o.PartSize, MaxPartSize>>20, DefaultPartSize>>20)
	case o.Concurrency < 0:
		return o, connectors.BadInput("azureblob: concurrency %d is negative: use 1 or more, or 0 for %d", o.Concurrency, DefaultConcurrency)
	case o.ListPageSize < 0 || o.ListPageSize > 5000:
		return o, connectors.BadInput("azureblob: list page size %d is out of range: use 1 to 5000, or 0 for %d", o.ListPageSize, DefaultListPageSize)
	}
	return o, nil
}

// location is where a connection points: an account's container and a
// prefix inside it.
type location struct {
	scheme, host string // host may include a port
	pathStyle    bool   // the account is the first path segment
	account      string
	container    string
	prefix       string // clean, without leading or trailing '/'; "" for the whole container
}

// serviceURL is the account's blob endpoint.
func (l location) serviceURL() string {
	u := l.scheme + "://" + l.host
	if l.pathStyle {
		u += "/" + l.account
	}
	return u
}

// containerURL is the container's URL, without credentials.
func (l location) containerURL() string { return l.serviceURL() + "/" + l.container }

// String is the URL of the prefix, for people: no credentials, not escaped.
func (l location) String() string {
	if l.prefix == "" {
		return l.containerURL()
	}
	return l.containerURL() + "/" + l.prefix
}

// blobName is the name in the container of rel, a path below the prefix.
func (l location) blobName(rel string) string {
	if l.prefix == "" {
		return rel
	}
	return l.prefix + "/" + rel
}

// listPrefix is the name prefix of the blobs below the folder rel ("" for the
// connection's own prefix).
func (l location) listPrefix(rel string) string {
	switch {
	case rel != "":
		return l.blobName(rel) + "/"
	case l.prefix != "":
		return l.prefix + "/"
	}
	return ""
}

// relName returns name relative to the connection's prefix, or false when
// the blob lies outside it.
func (l location) relName(name string) (string, bool) {
	if l.prefix == "" {
		return name, name != ""
	}
	rel, ok := strings.CutPrefix(name, l.prefix+"/")
	return rel, ok && rel != ""
}

// blobURL is the URL of a blob, for people.
func (l location) blobURL(name string) string { return l.containerURL() + "/" + name }

var accountRE = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// validContainer reports whether name is a container name Azure accepts:
// 3 to 63 lower-case letters, digits and '-', starting and ending with a
// letter or digit, without "--"; or the special $root.
func validContainer(name string) bool {
	if name == "$root" {
		return true
	}
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' || strings.Contains(name, "--") {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// parseLocation reads a connection's url and prefix.
func parseLocation(conn model.Connection) (location, error) {
	bad := func(field, why string, args ...any) error {
		return connectors.BadInput("connection %q: %s: %s", conn.Name, field, fmt.Sprintf(why, args...))
	}
	var l location
	switch {
	case conn.Endpoint != "":
		return l, bad("endpoint", "not used by azureblob connections: the url names the account's endpoint and the container; remove endpoint")
	case conn.Region != "":
		return l, bad("region", "not used by azureblob connections: the url names the account; remove region")
	case conn.URL == "":
		return l, bad("url", "missing: give the container's URL, e.g. https://ACCOUNT.blob.core.windows.net/CONTAINER")
	}
	u, err := url.Parse(conn.URL)
	if err != nil {
		// The URL may hold a SAS token: print neither it nor the parser's
		// message, which quotes it.
		return l, bad("url", "not a valid URL: write it as https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix]")
	}
	shown := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return l, bad("url", "%q is not an http(s) URL: write it as https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix]", shown)
	case u.RawQuery != "" || u.ForceQuery:
		return l, bad("url", "%s has a query string: do not put a SAS token in the url; store it as a secret and name it in credentials.sasTokenKey", shown)
	case u.User != nil:
		return l, bad("url", "%s carries user information: put credentials in secrets named by the connection's credentials, not in the url", shown)
	case u.Fragment != "":
		return l, bad("url", "%s has a fragment (#...): percent-encode '#' in folder names as %%23", shown)
	case u.Hostname() == "":
		return l, bad("url", "%s has no host: write it as https://ACCOUNT.blob.core.windows.net/CONTAINER[/prefix]", shown)
	}
	l.scheme, l.host = u.Scheme, u.Host
	host := u.Hostname()
	l.pathStyle = conn.PathStyle || host == "localhost" || net.ParseIP(host) != nil
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		segs = nil
	}
	if l.pathStyle {
		if len(segs) < 2 {
			return l, bad("url", "%s names no container: an emulator-style url is http://HOST:PORT/ACCOUNT/CONTAINER[/prefix]", shown)
		}
		l.account, segs = segs[0], segs[1:]
	} else {
		l.account, _, _ = strings.Cut(host, ".")
		if len(segs) < 1 {
			return l, bad("url", "%s names no container: write https://%s/CONTAINER[/prefix]", shown, u.Host)
		}
	}
	l.container, segs = segs[0], segs[1:]
	if !accountRE.MatchString(l.account) {
		return l, bad("url", "%q is not a storage account name (3 to 24 lower-case letters and digits): check the url %s", l.account, shown)
	}
	if !validContainer(l.container) {
		return l, bad("url", "%q is not a container name (3 to 63 lower-case letters, digits and single '-', starting and ending with a letter or digit): check the url %s", l.container, shown)
	}
	var parts []string
	if p := strings.Join(segs, "/"); p != "" {
		c, err := cleanPrefix(p)
		if err != nil {
			return l, bad("url", "the prefix %q after the container: %v", p, err)
		}
		parts = append(parts, c)
	}
	if p := strings.Trim(conn.Prefix, "/"); p != "" {
		c, err := cleanPrefix(p)
		if err != nil {
			return l, bad("prefix", "%v", err)
		}
		parts = append(parts, c)
	}
	l.prefix = strings.Join(parts, "/")
	return l, nil
}

// cleanPrefix checks a folder prefix: relative, without '.', '..' or empty
// segments (blob names are compared byte for byte, so "a//b" is not "a/b").
func cleanPrefix(p string) (string, error) {
	c, err := model.CleanRelPath(p)
	if err != nil {
		return "", err
	}
	if c != p {
		return "", fmt.Errorf("%q is not a clean path: write %q", p, c)
	}
	return c, nil
}

// The credential fields of a service principal, and the first field of
// each way of authenticating, in the order messages name them.
var (
	servicePrincipalFields = []string{"clientIdKey", "clientSecretKey", "tenantIdKey"}
	credentialMethods      = []string{"accountKeyKey", "sasTokenKey", "connectionStringKey", "clientIdKey"}
)

// client is an authenticated connection to one container.
type client struct {
	// role is what the connection is to Airlock, in messages: "connection"
	// for a source, "store" for a store.
	role    string
	conn    model.Connection
	loc     location
	opts    Options
	secrets *secrets.Provider
	c       *container.Client
}

// newClient parses conn, resolves its secrets and builds the container client.
func newClient(ctx context.Context, role string, conn model.Connection, p *secrets.Provider, opts Options) (*client, error) {
	if conn.Type != model.ConnAzureBlob {
		return nil, connectors.BadInput("connection %q has type %q: the azureblob connector serves only %s connections", conn.Name, conn.Type, model.ConnAzureBlob)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	loc, err := parseLocation(conn)
	if err != nil {
		return nil, err
	}
	if p == nil {
		p = &secrets.Provider{}
	}
	keys := conn.Credentials.Keys()
	if err := checkCredentialFields(conn.Name, keys); err != nil {
		return nil, err
	}
	vals, err := p.Resolve(ctx, conn.Name, keys)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, connectors.BadInput("%w", err)
	}
	cl := &client{role: role, conn: conn, loc: loc, opts: opts, secrets: p}
	copts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Telemetry: policy.TelemetryOptions{ApplicationID: "airlock/" + version.Version},
	}}
	if opts.retry != nil {
		copts.Retry = *opts.retry
	}
	credErr := func(field, why string, args ...any) error {
		return connectors.BadInput("connection %q: credentials.%s (secret %q): %s", conn.Name, field, keys[field], fmt.Sprintf(why, args...))
	}
	switch {
	case vals["accountKeyKey"] != "":
		cred, err := container.NewSharedKeyCredential(loc.account, vals["accountKeyKey"])
		if err != nil {
			return nil, credErr("accountKeyKey", "not a storage account key (a base64 string): copy key1 or key2 from the storage account's access keys")
		}
		cl.c, err = container.NewClientWithSharedKeyCredential(loc.containerURL(), cred, copts)
		if err != nil {
			return nil, cl.fail("connect", err)
		}
	case vals["sasTokenKey"] != "":
		sas := strings.TrimSpace(vals["sasTokenKey"])
		if i := strings.LastIndexByte(sas, '?'); i >= 0 {
			sas = sas[i+1:] // a pasted SAS URL, or the token with its '?'
		}
		q, err := url.ParseQuery(sas)
		if err != nil || q.Get("sig") == "" {
			return nil, credErr("sasTokenKey", "not a shared access signature (a query string such as sv=...&sp=rl&sig=...): generate a SAS for the container and store it")
		}
		cl.c, err = container.NewClientWithNoCredential(loc.containerURL()+"?"+sas, copts)
		if err != nil {
			return nil, cl.fail("connect", err)
		}
	case vals["connectionStringKey"] != "":
		cs := strings.TrimSpace(vals["connectionStringKey"])
		c, err := container.NewClientFromConnectionString(cs, loc.container, copts)
		if err != nil {
			return nil, credErr("connectionStringKey", "not a usable Azure Storage connection string (%s): copy one from the storage account's access keys", cl.scrub(err.Error()))
		}
		if got, want := withoutQuery(c.URL()), loc.containerURL(); !strings.EqualFold(strings.TrimSuffix(got, "/"), want) {
			return nil, credErr("connectionStringKey", "the connection string's endpoint gives the container URL %s, but the url names %s: make them name the same account and endpoint", got, want)
		}
		cl.c = c
	case vals["clientIdKey"] != "":
		cred, err := azidentity.NewClientSecretCredential(vals["tenantIdKey"], vals["clientIdKey"], vals["clientSecretKey"], nil)
		if err != nil {
			return nil, connectors.BadInput("connection %q: credentials.clientIdKey/clientSecretKey/tenantIdKey: %s: check the service principal's tenant id and client id", conn.Name, cl.scrub(err.Error()))
		}
		cl.c, err = container.NewClient(loc.containerURL(), cred, copts)
		if err != nil {
			return nil, cl.fail("connect", err)
		}
	default:
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, connectors.BadInput("connection %q: no credentials are named and the worker has no default Azure credential (%s): name a secret in credentials.accountKeyKey, sasTokenKey, connectionStringKey or clientIdKey+clientSecretKey+tenantIdKey, or give the worker a managed or workload identity", conn.Name, cl.scrub(err.Error()))
		}
		cl.c, err = container.NewClient(loc.containerURL(), cred, copts)
		if err != nil {
			return nil, cl.fail("connect", err)
		}
	}
	return cl, nil
}

// checkCredentialFields refuses credential fields an azureblob connection
// does not use, more than one way of authenticating, and an incomplete
// service principal.
func checkCredentialFields(conn string, keys map[string]string) error {
	for _, f := range []string{"userKey", "passwordKey", "tokenKey", "accessKeyIdKey", "secretAccessKeyKey", "sessionTokenKey"} {
		if keys[f] != "" {
			return connectors.BadInput("connection %q: credentials.%s is not used by azureblob connections: name the secret in accountKeyKey, sasTokenKey, connectionStringKey, or clientIdKey+clientSecretKey+tenantIdKey", conn, f)
		}
	}
	var sp, spMissing []string
	for _, f := range servicePrincipalFields {
		if keys[f] != "" {
			sp = append(sp, f)
		} else {
			spMissing = append(spMissing, f)
		}
	}
	if len(sp) > 0 && len(spMissing) > 0 {
		return connectors.BadInput("connection %q: credentials.%s set but credentials.%s missing: a service principal needs clientIdKey, clientSecretKey and tenantIdKey", conn, strings.Join(sp, " and credentials."), strings.Join(spMissing, " and credentials."))
	}
	var used []string
	for _, f := range credentialMethods {
		if keys[f] != "" {
			if f == "clientIdKey" {
				f = "clientIdKey+clientSecretKey+tenantIdKey"
			}
			used = append(used, "credentials."+f)
		}
	}
	if len(used) > 1 {
		return connectors.BadInput("connection %q: %s are all set: an azureblob connection authenticates one way; keep one of them", conn, strings.Join(used, " and "))
	}
	return nil
}

// queryRE matches the query string of a URL in a message.
var queryRE = regexp.MustCompile(`(https?://[^\s"'?]*)\?[^\s"']*`)

// withoutQuery removes the query strings (where a SAS token travels) of
// every URL in s.
func withoutQuery(s string) string { return queryRE.ReplaceAllString(s, "$1") }

// scrub makes a message safe to return: no URL query strings and no secret
// value the provider handed out.
func (c *client) scrub(s string) string { return c.secrets.Scrub(withoutQuery(s)) }

// serviceError is an error from Azure Storage reduced to what people need:
// the operation, the HTTP status and the service's error code, never a
// request URL's query string or a secret. It wraps the SDK's error, so
// bloberror.HasCode still works on it.
type serviceError struct {
	msg string
	err error
}

func (e *serviceError) Error() string { return e.msg }
func (e *serviceError) Unwrap() error { return e.err }

// describe says what err was, without secrets.
func (c *client) describe(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		s := fmt.Sprintf("HTTP %d", re.StatusCode)
		if re.ErrorCode != "" {
			s += " " + re.ErrorCode
		}
		return s
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return c.scrub(fmt.Sprintf("%s %s: %v", ue.Op, withoutQuery(ue.URL), ue.Err))
	}
	return c.scrub(err.Error())
}

// fail turns an error from the service during op into one that says what to
// do: denied access and a missing container or account are BadInput (no
// retry fixes them); anything else stays retryable. Context errors
// keep errors.Is working, with a message that holds no secret either.
func (c *client) fail(op string, err error) error {
	where := fmt.Sprintf("%s %q (%s): %s", c.role, c.conn.Name, c.loc.containerURL(), op)
	what := c.describe(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// Still rewritten: the SDK's message would quote the request's URL.
		return &serviceError{msg: fmt.Sprintf("%s: %s", where, what), err: err}
	}
	var re *azcore.ResponseError
	errors.As(err, &re)
	var azErr *azidentity.AuthenticationFailedError
	switch {
	case errors.As(err, &azErr):
		return connectors.BadInput("%w", &serviceError{msg: fmt.Sprintf("%s: authentication failed: %s: check the service principal or the worker's Azure identity", where, what), err: err})
	case re != nil && (re.StatusCode == 401 || re.StatusCode == 403):
		return connectors.BadInput("%w", &serviceError{msg: fmt.Sprintf("%s: access denied (%s): check the connection's credentials, that they have not expired, and that they allow this operation on the container", where, what), err: err})
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return connectors.BadInput("%w", &serviceError{msg: fmt.Sprintf("%s: the container %q does not exist in account %q (%s): check the url", where, c.loc.container, c.loc.account, what), err: err})
	case bloberror.HasCode(err, bloberror.InvalidResourceName, bloberror.InvalidURI):
		return connectors.BadInput("%w", &serviceError{msg: fmt.Sprintf("%s: the service refused the name (%s): check the url and the path", where, what), err: err})
	}
	return &serviceError{msg: fmt.Sprintf("%s: %s", where, what), err: err}
}
