// Package databricks is the connector for "databricks" connections: tables
// read through a SQL warehouse with the SQL Statement Execution API, and
// files read from Unity Catalog volumes with the Files API. It uses the
// Databricks SDK for Go for authentication and the API clients, and
// arrow-go to write tables as Parquet.
//
// # The connection
//
// url is the workspace URL. Its scheme and host (https://<workspace-host>)
// are the workspace; its path says more:
//
//   - /sql/1.0/warehouses/<id> (a SQL warehouse's HTTP path, as the
//     warehouse's connection details show it; the older
//     /sql/1.0/endpoints/<id> too) names the SQL warehouse that runs table
//     statements.
//   - /Volumes/<catalog>/<schema>/<volume>[/folder...] is the volume folder
//     that file and prefix objects are relative to; <catalog> and <schema>
//     also qualify table names.
//   - Any other path ends in catalog.schema: two names separated by a dot
//     that qualify table names that are not fully qualified. The path
//     /path/to/datasource.location means catalog "datasource" and schema
//     "location"; the segments before the last are ignored.
//   - No path at all: no warehouse, no defaults, no volume.
//
// A query string (such as Azure's ?o=<workspace-id>) is ignored. When the url
// names no warehouse, table objects run on the worker's default warehouse
// (Options.DefaultWarehouseID, config field databricks.warehouseId); with
// neither, listing a table object is refused, saying how to fix it. http:
// URLs are accepted only for loopback hosts (tests and local fakes).
//
// prefix (the connection's prefix field) is the other place to give the
// volume folder, /Volumes/<catalog>/<schema>/<volume>[/folder...], for a
// connection whose url names a warehouse. Give the volume in url or prefix,
// not both. endpoint, region and pathStyle do not apply to databricks
// connections and are refused.
//
// # Credentials
//
// The credentials name secret keys, resolved by the worker's secret
// provider when the connector is built:
//
//   - tokenKey: a personal access token (or any Databricks bearer token).
//   - userKey and passwordKey: if the user is the literal "token", the
//     password is a personal access token (the JDBC/ODBC convention);
//     otherwise they are basic-auth credentials.
//   - clientIdKey and clientSecretKey: a service principal's OAuth secret,
//     used with OAuth machine-to-machine (client credentials at the
//     workspace's /oidc/v1/token, found through
//     /oidc/.well-known/oauth-authorization-server).
//
// Exactly one of the three must be given, complete. The SDK is configured
// with that single authentication method and no configuration loaders: it
// never reads ~/.databrickscfg or DATABRICKS_* environment variables and
// never falls back to another method. Secret values never appear in errors,
// Describe or anything the connector returns.
//
// # Table objects
//
// A table object {name, query?, format?} is produced, not opened: Produce
// runs SELECT * FROM <name> (each part of the name quoted with backticks,
// qualified with the url's catalog and schema when the name has fewer than
// three parts), or the object's query, on the warehouse with
// disposition EXTERNAL_LINKS and format ARROW_STREAM, polls the statement
// until it finishes (cancelling it if the activity is cancelled), downloads
// the result chunks from their presigned links in parallel (bounded by
// Options.DownloadConcurrency, spooled to disk so memory stays bounded) and
// writes the rows, in order, to <name>.parquet, or <name>.csv with format
// csv. A table name is one to three dot-separated parts of letters, digits,
// '_' and '-' (at most 200 characters), so that it is also a safe file name;
// for anything else give the object a simple name and the SQL in query. The
// rows are written to <name>.parquet.partial and renamed when complete, so a
// failed run never leaves a file under the final name.
//
// Column types follow the result manifest: BOOLEAN→bool, TINYINT→int8,
// SMALLINT→int16, INT→int32, BIGINT→int64, FLOAT→float32, DOUBLE→float64,
// DECIMAL(p,s)→decimal128(p,s) (decimal256 above 38 digits), STRING, CHAR and
// VARCHAR→string, BINARY→binary, DATE→date32, TIMESTAMP→timestamp(µs, UTC),
// TIMESTAMP_NTZ→timestamp(µs, no zone); ARRAY, MAP, STRUCT, INTERVAL, VARIANT
// and any other type→string (Databricks sends them as JSON text). CSV files
// have a header row, leave NULL fields empty, write timestamps as
// 2006-01-02 15:04:05.999999Z and binary values in base64.
//
// A statement that fails because of the SQL (a syntax error, a missing
// table, missing permissions) is bad input and not retried; other failures
// are. A result Databricks truncated (manifest.truncated) is refused. API
// calls answered 429 or 503 are retried a few times, waiting as Retry-After
// says. Result links that expired are fetched again through the chunk
// endpoint; they get the link's http_headers and never the workspace's
// Authorization header.
//
// # File and prefix objects
//
// file and prefix paths are relative to the volume folder. List reads
// directories with GET /api/2.0/fs/directories (all pages, recursively for
// a prefix) and files with HEAD /api/2.0/fs/files; Open streams GET
// /api/2.0/fs/files with a Range header from the resume offset and
// If-Unmodified-Since the listed modification time, and checks the answer's
// Content-Range against the listed size, so a file that changed since it
// was listed is refused (bad input) rather than spliced. A server that
// ignores the Range header makes Open return connectors.ErrNotResumable.
package databricks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/client"
	"github.com/databricks/databricks-sdk-go/service/files"
	"github.com/databricks/databricks-sdk-go/service/sql"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/version"
)

// InstrumentName names this connector in a crate's CreateAction.
const InstrumentName = "airlock databricks connector"

// Options are the worker's settings for databricks connections.
type Options struct {
	// DefaultWarehouseID (config field databricks.warehouseId) is the SQL
	// warehouse for connections whose url names none.
	DefaultWarehouseID string
	// PollInterval is the first wait between statement status polls (default
	// 500ms); the wait grows by half each poll up to MaxPollInterval (default
	// 10s).
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// DownloadConcurrency is how many result chunks are downloaded at once
	// (default 4); it also bounds the chunks spooled on disk.
	DownloadConcurrency int
	// HTTPClient sends the requests (nil: a client with sensible timeouts).
	// Its transport carries the workspace API calls too.
	HTTPClient *http.Client
}

func (o Options) withDefaults() Options {
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.MaxPollInterval <= 0 {
		o.MaxPollInterval = 10 * time.Second
	}
	if o.MaxPollInterval < o.PollInterval {
		o.MaxPollInterval = o.PollInterval
	}
	if o.DownloadConcurrency <= 0 {
		o.DownloadConcurrency = 4
	}
	if o.HTTPClient == nil {
		o.HTTPClient = defaultHTTPClient
	}
	return o
}

// defaultHTTPClient is shared by every source, so that connections to a
// workspace are pooled across the sources activities build.
var defaultHTTPClient = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 2 * time.Minute
	return &http.Client{Transport: t}
}()

// Factories returns the factory for databricks connections. p resolves the
// connections' secret references when a source is built.
func Factories(p *secrets.Provider, opts Options) connectors.Registry {
	return connectors.Registry{
		model.ConnDatabricks: func(ctx context.Context, conn model.Connection) (connectors.Source, error) {
			s, err := New(ctx, p, opts, conn)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	}
}

// Source reads one databricks connection.
type Source struct {
	conn model.Connection
	opts Options
	// host is the workspace, scheme and host.
	host string
	// warehouse runs table statements ("" for none); warehouseFrom says
	// where it came from, for messages.
	warehouse, warehouseFrom string
	// catalog and schema qualify table names ("" for none).
	catalog, schema string
	// volume is the volume folder file and prefix objects are relative to
	// ("" for none), without a trailing slash.
	volume string

	auth     authMethod
	api      *client.DatabricksClient
	stmts    *sql.StatementExecutionAPI
	files    *files.FilesAPI
	http     *http.Client
	provider *secrets.Provider
	// secretValues are the resolved credentials, scrubbed from errors.
	secretValues []string
}

var (
	_ connectors.Source   = (*Source)(nil)
	_ connectors.Producer = (*Source)(nil)
)

// New builds the source for a databricks connection: it checks the url and
// prefix, resolves the credentials and configures the SDK. It makes no
// request to the workspace.
func New(ctx context.Context, p *secrets.Provider, opts Options, conn model.Connection) (*Source, error) {
	if conn.Type != model.ConnDatabricks {
		return nil, connectors.BadInput("connection %q has type %q: the databricks connector reads only %s connections", conn.Name, conn.Type, model.ConnDatabricks)
	}
	if p == nil {
		p = &secrets.Provider{} // the zero provider reads the environment
	}
	s := &Source{conn: conn, opts: opts.withDefaults(), provider: p}
	if err := s.parseLocation(); err != nil {
		return nil, err
	}
	if err := s.configure(ctx, p); err != nil {
		return nil, s.clean(err)
	}
	return s, nil
}

var (
	warehousePathRE = regexp.MustCompile(`^/sql/1\.0/(?:warehouses|endpoints)/([^/]+)$`)
	// nameRE is one part of a catalog, schema, volume or table name as the
	// connector accepts it.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*$`)
)

// parseLocation reads the workspace, warehouse, defaults and volume from
// the connection's url and prefix.
func (s *Source) parseLocation() error {
	c := s.conn
	bad := func(format string, args ...any) error {
		return connectors.BadInput("connection %q: url %q: %s", c.Name, c.URL, fmt.Sprintf(format, args...))
	}
	forms := "write it as https://<workspace-host>/sql/1.0/warehouses/<warehouse-id>, https://<workspace-host>/<catalog>.<schema>, https://<workspace-host>/Volumes/<catalog>/<schema>/<volume> or https://<workspace-host>"
	switch {
	case c.Endpoint != "":
		return connectors.BadInput("connection %q: endpoint does not apply to databricks connections: put the workspace URL in url and remove endpoint", c.Name)
	case c.Region != "":
		return connectors.BadInput("connection %q: region does not apply to databricks connections: remove it", c.Name)
	case c.PathStyle:
		return connectors.BadInput("connection %q: pathStyle does not apply to databricks connections: remove it", c.Name)
	case c.URL == "":
		return connectors.BadInput("connection %q: url is missing: %s", c.Name, forms)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return bad("not a valid URL (%v): %s", errors.Unwrap(err), forms)
	}
	if u.User != nil {
		return bad("the url must not carry credentials: name secret keys in credentials instead (tokenKey, userKey and passwordKey, or clientIdKey and clientSecretKey)")
	}
	switch {
	case u.Host == "":
		return bad("no workspace host: %s", forms)
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return bad("the workspace must be reached over https: %s", forms)
	}
	if u.Fragment != "" {
		return bad("a workspace URL has no fragment (#%s): remove it", u.Fragment)
	}
	s.host = u.Scheme + "://" + u.Host

	p := strings.TrimSuffix(u.Path, "/")
	switch {
	case p == "":
	case warehousePathRE.MatchString(p):
		s.warehouse, s.warehouseFrom = warehousePathRE.FindStringSubmatch(p)[1], "the connection's url"
	case p == "/Volumes" || strings.HasPrefix(p, "/Volumes/"):
		v, err := volumeFolder(p)
		if err != nil {
			return bad("%v", err)
		}
		s.volume = v
	default:
		last := path.Base(p)
		parts := strings.Split(last, ".")
		if len(parts) != 2 || !nameRE.MatchString(parts[0]) || !nameRE.MatchString(parts[1]) {
			return bad("the path must be a SQL warehouse's HTTP path (/sql/1.0/warehouses/<id>), a volume folder (/Volumes/<catalog>/<schema>/<volume>) or end in <catalog>.<schema> (two names of letters, digits, '_' and '-' separated by a dot), found last segment %q", last)
		}
		s.catalog, s.schema = parts[0], parts[1]
	}
	if c.Prefix != "" {
		if s.volume != "" {
			return connectors.BadInput("connection %q: both url (%s) and prefix (%s) name a volume folder: give it once", c.Name, s.volume, c.Prefix)
		}
		v, err := volumeFolder(strings.TrimSuffix(c.Prefix, "/"))
		if err != nil {
			return connectors.BadInput("connection %q: prefix %q: %v", c.Name, c.Prefix, err)
		}
		s.volume = v
	}
	if s.volume != "" && s.catalog == "" {
		segs := strings.Split(s.volume, "/")
		s.catalog, s.schema = segs[2], segs[3]
	}
	if s.warehouse == "" && s.opts.DefaultWarehouseID != "" {
		s.warehouse, s.warehouseFrom = s.opts.DefaultWarehouseID, "the worker's databricks.warehouseId"
	}
	return nil
}

// volumeFolder checks that p names a folder inside a Unity Catalog volume
// and returns it clean.
func volumeFolder(p string) (string, error) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(segs) < 4 || segs[0] != "Volumes" {
		return "", fmt.Errorf("a volume folder is /Volumes/<catalog>/<schema>/<volume>[/folder...], found %q", p)
	}
	for _, seg := range segs[1:4] {
		if !nameRE.MatchString(seg) {
			return "", fmt.Errorf("volume folder %q: %q is not a catalog, schema or volume name (letters, digits, '_' and '-')", p, seg)
		}
	}
	if len(segs) > 4 {
		if _, err := model.CleanRelPath(strings.Join(segs[4:], "/")); err != nil {
			return "", fmt.Errorf("volume folder %q: %v", p, err)
		}
	}
	return path.Clean(p), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Describe says where the connection reads, without secrets, e.g.
// `https://adb-1.azuredatabricks.net (databricks connection "db", warehouse abc123)`.
func (s *Source) Describe() string {
	var parts []string
	if s.warehouse != "" {
		parts = append(parts, "warehouse "+s.warehouse)
	} else {
		parts = append(parts, "no warehouse")
	}
	if s.catalog != "" {
		parts = append(parts, "tables in "+s.catalog+"."+s.schema)
	}
	if s.volume != "" {
		parts = append(parts, "files in "+s.volume)
	}
	return fmt.Sprintf("%s (databricks connection %q, %s)", s.host, s.conn.Name, strings.Join(parts, ", "))
}

// Instrument names the connector and the Airlock release it belongs to.
func (s *Source) Instrument() connectors.Instrument {
	return connectors.Instrument{Name: InstrumentName, Version: version.Version}
}

// Produces reports whether obj is made by running a statement: tables are.
func (s *Source) Produces(obj model.Object) bool { return obj.Table != nil }

// List returns the files obj names: for a table, the single file Produce
// will write (without asking the workspace); for a file or prefix, the
// volume files, sorted by Path.
func (s *Source) List(ctx context.Context, obj model.Object) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var items []connectors.Item
	var err error
	switch {
	case obj.Table != nil:
		var plan tablePlan
		if plan, err = s.planTable(obj); err == nil {
			items = []connectors.Item{{Path: plan.file, Ref: tableRefPrefix + obj.Table.Name, Size: -1, EncodingFormat: plan.mediaType}}
		}
	case obj.File != nil:
		items, err = s.listFile(ctx, obj.File.Path)
	case obj.Prefix != nil:
		items, err = s.listPrefix(ctx, obj.Prefix.Path)
	default:
		err = connectors.BadInput("connection %q: empty object: give exactly one of table, file or prefix", s.conn.Name)
	}
	return items, s.clean(err)
}

// tableRefPrefix starts the Ref of a table's planned file.
const tableRefPrefix = "table:"

// scrubbedError is an error whose message had secret values replaced. It
// keeps its cause for errors.Is (context cancellation) but does not unwrap
// to it, so the unscrubbed text cannot leak.
type scrubbedError struct {
	msg   string
	cause error
}

func (e *scrubbedError) Error() string        { return e.msg }
func (e *scrubbedError) Is(target error) bool { return errors.Is(e.cause, target) }

// clean replaces the connection's secret values in err's message, keeping
// it bad input if it was.
func (s *Source) clean(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := msg
	for _, v := range s.secretValues {
		out = strings.ReplaceAll(out, v, secrets.Redacted)
	}
	out = s.provider.Scrub(out)
	if out == msg {
		return err
	}
	e := &scrubbedError{msg: out, cause: err}
	if connectors.IsBadInput(err) {
		return &connectors.BadInputError{Err: e}
	}
	return e
}
