// Package dlt is the connector for "dlt" connections: it loads tables with a
// dlt (dlthub.com) pipeline. dlt is a Python library, so the connector runs a
// pipeline as a child process: the runner script runner/airlock_dlt_run.py,
// embedded in the binary and written to the work folder at run time, under
// the python of a virtualenv that holds the pinned requirements.txt
// (deploy/tools/install.sh dlt makes it).
//
// # Data source documents
//
// A connection's url names the dlt source and where it reads, as
// <dlt source>+<location>; each object is a table to load:
//
//	connections:
//	  - {type: dlt, name: clinic, url: "sql_database+sqlite:///clinic/clinic.db"}
//	  - {type: dlt, name: registry, url: "sql_database+postgresql://reader@db.example.org:5432/registry?sslmode=require",
//	     credentials: {passwordKey: registry-password}}
//	  - {type: dlt, name: api, url: "rest_api+https://api.example.org/v1", credentials: {tokenKey: api-token}}
//	  - {type: dlt, name: exports, url: "filesystem+file:///exports?glob={table}/*.csv"}
//	objects:
//	  - table: {name: patients, connection: clinic}
//	  - table: {name: public.visits, connection: registry}
//	  - table: {name: samples, connection: api}
//	  - table: {name: visits, connection: exports}
//
// sql_database+<SQLAlchemy URL> reads the table the object names ("table",
// or "schema.table") with dlt's sql_database source. A sqlite URL's path is
// always resolved inside the worker's file root (connectors.dlt.fileRoot),
// like a chroot: sqlite:///clinic/clinic.db and sqlite:////clinic/clinic.db
// both mean <fileRoot>/clinic/clinic.db; the database must exist and is
// opened read-only. Other databases (PostgreSQL's driver is installed) are
// reached over the network; the URL may carry a user name but never a
// password: credentials.passwordKey (and optionally userKey) name secrets.
//
// rest_api+<http(s) base URL> reads, with dlt's rest_api source, the endpoint
// whose path below the base URL is the object's table name; dlt detects the
// JSON page layout and pagination. credentials.tokenKey sends a bearer token;
// userKey and passwordKey send HTTP basic auth. Credentials go over https
// only (plain http only to a loopback address, for tests).
//
// filesystem+file:///<folder>[?glob=<pattern>][&format=csv|jsonl|parquet]
// reads, with dlt's filesystem source, the files in the folder (below the
// file root, like sqlite) that match the glob, in which {table} stands for
// the object's table name (default {table}.csv). The format is the glob's
// extension unless format says otherwise. Symlinks that lead out of the file
// root are refused.
//
// A table object's format may be parquet (the default) or csv: the file
// format dlt writes. Its query is not supported.
//
// # What an object produces
//
// Each table object fills one folder of the crate, named as the table (List
// reports it as a single Item whose Path is "<table>/"), which is the dlt
// dataset the pipeline loaded into dlt's filesystem destination: one folder
// per dlt table holding <load id>.<file id>.parquet (nested JSON from an API
// becomes child tables <table>__<field>), and dlt's bookkeeping, which goes
// into the crate too because it is the provenance of the data and makes the
// folder a dataset dlt can read back: _dlt_loads (dlt's record that the load
// completed), _dlt_version (the dlt schema) and init (the storage version).
// For example patients/patients/1731400000.123456.5e2c8a9f01.parquet and
// patients/_dlt_loads/airlock_patients__1731400000.123456.jsonl. Produced
// names tables as dlt does (normalised: a table object v2/samples holds the
// dlt table v2_samples), with their row counts and column types. A csv
// format writes plain (uncompressed) .csv files. (dlt's state sync is
// off, RESTORE_FROM_DESTINATION=false, since every run starts from an empty
// folder and a fresh pipeline; so no _dlt_pipeline_state is written. Any
// file dlt does write into the folder is listed: none is left out.)
//
// A source that yields no rows fails with BadInput: there is nothing to
// import.
//
// Produce succeeds only when dlt recorded every load complete (its load
// package loaded without failed jobs and its _dlt_loads row has status 0),
// and every file the runner reports exists and no other file is in the
// folder. It empties the table's folder before the run and removes it after
// a failure, so a retried attempt never mixes files of two runs. dlt's own
// working files (its pipelines dir, HOME, TMPDIR) live in a scratch folder
// .dlt-run-* inside the work folder, removed when the run ends. Progress
// lines (dlt's counters every 10 seconds, each step's outcome, its warnings)
// go to the progress callback; a quiet run still reports every 15 seconds.
//
// The runner exits 2 for a configuration error (unknown table, endpoint
// answering 4xx, no matching file, missing driver, no rows), which Produce
// returns as BadInput; any other failure is an ordinary (retryable) error
// carrying the runner's message.
//
// # Secrets
//
// Secrets are resolved by the secrets.Provider when the connection's source
// is built and reach the child only through its environment, under dlt's own
// config names (SOURCES__SQL_DATABASE__CREDENTIALS__PASSWORD,
// SOURCES__REST_API__CREDENTIALS__TOKEN, ...). The child's environment is
// built from nothing: PATH, HOME (the run's scratch folder), LANG, TZ, proxy
// and CA-bundle variables, dlt's settings and those secrets; never the
// worker's AIRLOCK_SECRET_* variables. Nothing the child prints reaches
// progress or an error without being scrubbed of the secret values.
package dlt

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/version"
)

// InstrumentName names this connector in a crate's CreateAction; the dlt
// version a run used is in Produced.Properties.
const InstrumentName = "airlock-dlt-connector"

//go:embed runner/airlock_dlt_run.py
var runnerScript []byte

// RunnerFileName is the name the runner script is written under.
const RunnerFileName = "airlock_dlt_run.py"

// Options configure the dlt connector of a worker.
type Options struct {
	// Python (config field connectors.dlt.python) is the interpreter of
	// the virtualenv holding requirements.txt; default
	// $AIRLOCK_CACHE/dlt-venv/bin/python, else
	// ~/.cache/airlock/dlt-venv/bin/python.
	Python string
	// FileRoot (connectors.dlt.fileRoot) confines the local files a dlt
	// source reads: SQLite databases and filesystem folders. Empty means
	// the worker serves neither.
	FileRoot string
	// Timeout caps one pipeline run; zero means only the caller's context
	// does.
	Timeout time.Duration
}

// DefaultPython is the virtualenv python deploy/tools/install.sh dlt makes.
func DefaultPython() string {
	cache := os.Getenv("AIRLOCK_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "airlock")
	}
	return filepath.Join(cache, "dlt-venv", "bin", "python")
}

// Factories returns the factory for dlt connections. p resolves the
// connections' secret references.
func Factories(p *secrets.Provider, opts Options) connectors.Registry {
	return connectors.Registry{
		model.ConnDLT: func(ctx context.Context, conn model.Connection) (connectors.Source, error) {
			return New(ctx, p, opts, conn)
		},
	}
}

// Source loads the tables of one dlt connection.
type Source struct {
	conn    model.Connection
	opts    Options
	secrets *secrets.Provider
	spec    spec
}

var _ connectors.Producer = (*Source)(nil)

// New builds the source for a dlt connection: it checks the url, that the
// local files it names exist inside the file root, and the python, and
// resolves the credentials, so that a misconfigured data source fails before
// anything runs.
func New(ctx context.Context, p *secrets.Provider, opts Options, conn model.Connection) (*Source, error) {
	if conn.Type != model.ConnDLT {
		return nil, connectors.BadInput("connection %q has type %q: the dlt connector reads only %s connections", conn.Name, conn.Type, model.ConnDLT)
	}
	if opts.Python == "" {
		opts.Python = DefaultPython()
	}
	if p == nil {
		p = &secrets.Provider{}
	}
	sp, err := parseURL(conn, opts.FileRoot)
	if err != nil {
		return nil, err
	}
	if err := sp.resolveCredentials(ctx, p, conn); err != nil {
		return nil, err
	}
	if st, err := os.Stat(opts.Python); err != nil || st.IsDir() {
		return nil, connectors.BadInput("connection %q: the dlt python %s is missing: run deploy/tools/install.sh dlt on the worker, or set connectors.dlt.python to a virtualenv's python with connectors/dlt/requirements.txt installed", conn.Name, opts.Python)
	}
	return &Source{conn: conn, opts: opts, secrets: p, spec: sp}, nil
}

// Describe says where the connection reads, e.g.
// `sql_database+sqlite:///clinic.db (dlt connection "clinic")`. The url
// never holds a secret: New refuses one with a password.
func (s *Source) Describe() string {
	return fmt.Sprintf("%s (%s connection %q)", s.conn.URL, s.conn.Type, s.conn.Name)
}

// Instrument names the connector and the Airlock release it belongs to.
func (s *Source) Instrument() connectors.Instrument {
	return connectors.Instrument{Name: InstrumentName, Version: version.Version}
}

// Produces reports whether obj is one this connector makes: every table.
func (s *Source) Produces(obj model.Object) bool { return obj.Table != nil }

// List plans a table object as a single Item whose Path is the folder
// "<table>/" (ending in '/', Size -1): the folder Produce fills with the dlt
// dataset, whose files are known only once the pipeline has run. PlanImport
// treats such an Item as a folder the object will fill.
func (s *Source) List(ctx context.Context, obj model.Object) ([]connectors.Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, err := s.tableName(obj)
	if err != nil {
		return nil, err
	}
	return []connectors.Item{{Path: name + "/", Ref: name, Size: -1}}, nil
}

// Open refuses: a dlt object's files exist only once Produce has made them.
func (s *Source) Open(ctx context.Context, it connectors.Item, offset int64) (io.ReadCloser, error) {
	return nil, connectors.BadInput("connection %q: %s is made by a dlt pipeline: it is produced, not opened (the extract must call Produce for table objects)", s.conn.Name, it.Path)
}

// tableName checks a table object and returns its name, which is also the
// crate folder it fills.
func (s *Source) tableName(obj model.Object) (string, error) {
	switch {
	case obj.Table == nil:
		return "", connectors.BadInput("connection %q: object %s: dlt connections load tables; describe this object as table (name: the table, resource or endpoint to load)", s.conn.Name, obj.Describe())
	case obj.Table.Query != "":
		return "", connectors.BadInput("connection %q: table %q: query is not supported by dlt connections: name a table (or a database view) instead", s.conn.Name, obj.Table.Name)
	}
	switch obj.Table.Format {
	case "", "parquet", "csv":
	default:
		return "", connectors.BadInput("connection %q: table %q: format %q: dlt writes parquet or csv", s.conn.Name, obj.Table.Name, obj.Table.Format)
	}
	name := obj.Table.Name
	clean, err := model.CleanRelPath(name)
	if err != nil {
		return "", connectors.BadInput("connection %q: table name %q: %v (the name is also the table's folder in the crate)", s.conn.Name, name, err)
	}
	if clean != name || strings.HasSuffix(name, "/") {
		return "", connectors.BadInput("connection %q: table name %q: write it as %q (the name is also the table's folder in the crate)", s.conn.Name, name, clean)
	}
	if err := s.spec.checkTable(s.conn, name); err != nil {
		return "", err
	}
	return name, nil
}
