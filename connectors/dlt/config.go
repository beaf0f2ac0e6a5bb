package dlt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

// The dlt sources a connection's url may name before its '+'.
const (
	sourceSQL        = "sql_database"
	sourceREST       = "rest_api"
	sourceFilesystem = "filesystem"
)

// Environment variables, under dlt's config names, that carry secrets to the
// runner, which reads them through dlt.secrets.
const (
	envSQLUser      = "SOURCES__SQL_DATABASE__CREDENTIALS__USERNAME"
	envSQLPassword  = "SOURCES__SQL_DATABASE__CREDENTIALS__PASSWORD"
	envRESTToken    = "SOURCES__REST_API__CREDENTIALS__TOKEN"
	envRESTUser     = "SOURCES__REST_API__CREDENTIALS__USERNAME"
	envRESTPassword = "SOURCES__REST_API__CREDENTIALS__PASSWORD"
)

// defaultGlob is the filesystem source's glob when the url gives none.
const defaultGlob = "{table}.csv"

// spec is what a connection's url and credentials say, ready for the runner.
type spec struct {
	source string // sourceSQL, sourceREST or sourceFilesystem

	// sql_database
	sqlURL    string // SQLAlchemy URL without secrets
	sqlite    bool
	sqlHasURL bool // the URL names a user

	// rest_api
	restBase string // ends in '/'
	restAuth string // "", "bearer" or "http_basic"

	// filesystem
	fsFolderURL string // file:// URL of the folder's real path
	fsGlob      string // may hold {table}
	fsFormat    string // csv, jsonl or parquet
	fsRoot      string // real path of the file root

	// env holds the secrets, by dlt config name, for the child's environment.
	env map[string]string
}

// parseURL reads a connection's url: <dlt source>+<location>.
func parseURL(conn model.Connection, fileRoot string) (spec, error) {
	bad := func(why string, args ...any) error {
		return connectors.BadInput("connection %q: url %q: %s", conn.Name, conn.URL, fmt.Sprintf(why, args...))
	}
	forms := "sql_database+<SQLAlchemy URL> (sql_database+sqlite:///clinic.db, sql_database+postgresql://user@host/db), rest_api+https://api.example.org/v1 or filesystem+file:///folder?glob={table}.csv"
	if conn.URL == "" {
		return spec{}, connectors.BadInput("connection %q: url: missing: a dlt connection's url names the dlt source and where it reads: %s", conn.Name, forms)
	}
	source, loc, ok := strings.Cut(conn.URL, "+")
	if !ok || !strings.Contains(loc, ":") {
		return spec{}, bad("write it as <dlt source>+<location>: %s", forms)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return spec{}, bad("%s is not a valid URL (%v)", loc, errors.Unwrap(err))
	}
	sp := spec{source: source}
	switch source {
	case sourceSQL:
		err = sp.parseSQL(u, fileRoot, bad)
	case sourceREST:
		err = sp.parseREST(u, bad)
	case sourceFilesystem:
		err = sp.parseFilesystem(u, fileRoot, bad)
	default:
		return spec{}, bad("unknown dlt source %q (expected sql_database, rest_api or filesystem): %s", source, forms)
	}
	return sp, err
}

func (sp *spec) parseSQL(u *url.URL, fileRoot string, bad func(string, ...any) error) error {
	dialect, _, _ := strings.Cut(u.Scheme, "+")
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return bad("the URL holds a password: remove it and name the secret that holds it in credentials.passwordKey")
		}
	}
	if dialect == "sqlite" {
		sp.sqlite = true
		if u.Host != "" || u.User != nil {
			return bad("a sqlite URL names a file below the worker's file root: write sql_database+sqlite:///folder/file.db (three slashes)")
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return bad("a sqlite URL takes no query or fragment: the database is always opened read-only")
		}
		rel := strings.Trim(u.Path, "/")
		if rel == "" || rel == ":memory:" {
			return bad("name the SQLite database file, e.g. sql_database+sqlite:///clinic/clinic.db (resolved inside the worker's file root)")
		}
		dbPath, _, err := confine(fileRoot, rel, "database file", bad)
		if err != nil {
			return err
		}
		st, err := os.Stat(dbPath)
		switch {
		case err != nil:
			return bad("database file %s: %v", rel, err)
		case !st.Mode().IsRegular():
			return bad("%s is not a file: name the SQLite database file", rel)
		}
		// SQLite's URI form opens the file read-only, and never creates it.
		sp.sqlURL = "sqlite:///file:" + (&url.URL{Path: dbPath}).EscapedPath() + "?mode=ro&uri=true"
		return nil
	}
	if u.Host == "" {
		return bad("name the database server, e.g. sql_database+postgresql://reader@db.example.org:5432/clinic")
	}
	if u.Fragment != "" {
		return bad("a database URL takes no fragment")
	}
	sp.sqlHasURL = u.User != nil && u.User.Username() != ""
	sp.sqlURL = u.String()
	return nil
}

func (sp *spec) parseREST(u *url.URL, bad func(string, ...any) error) error {
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return bad("a rest_api url is rest_api+https://host/base/path")
	case u.Host == "":
		return bad("name the API's host, e.g. rest_api+https://api.example.org/v1")
	case u.User != nil:
		return bad("the URL holds credentials: remove them and name secrets in credentials.tokenKey (bearer) or userKey and passwordKey (HTTP basic)")
	case u.RawQuery != "" || u.Fragment != "":
		return bad("the base URL takes no query or fragment: each table object names an endpoint path below it")
	}
	base := u.String()
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	sp.restBase = base
	return nil
}

func (sp *spec) parseFilesystem(u *url.URL, fileRoot string, bad func(string, ...any) error) error {
	if u.Scheme != "file" {
		return bad("the filesystem source reads local folders: write filesystem+file:///folder (resolved inside the worker's file root)")
	}
	if u.Host != "" && u.Host != "localhost" {
		return bad("host %q is not supported: write filesystem+file:///%s%s (three slashes)", u.Host, u.Host, u.Path)
	}
	if u.Fragment != "" {
		return bad("a file URL takes no fragment; percent-encode '#' as %%23 in folder names")
	}
	q := u.Query()
	for k := range q {
		if k != "glob" && k != "format" {
			return bad("unknown parameter %q (expected glob and format)", k)
		}
	}
	sp.fsGlob = q.Get("glob")
	if sp.fsGlob == "" {
		sp.fsGlob = defaultGlob
	}
	if err := checkGlob(strings.ReplaceAll(sp.fsGlob, "{table}", "t")); err != "" {
		return bad("glob %q: %s", sp.fsGlob, err)
	}
	sp.fsFormat = q.Get("format")
	if sp.fsFormat == "" {
		g := strings.ToLower(sp.fsGlob)
		switch {
		case strings.HasSuffix(g, ".csv"):
			sp.fsFormat = "csv"
		case strings.HasSuffix(g, ".jsonl"), strings.HasSuffix(g, ".ndjson"):
			sp.fsFormat = "jsonl"
		case strings.HasSuffix(g, ".parquet"):
			sp.fsFormat = "parquet"
		default:
			return bad("cannot tell the files' format from the glob %q: end it in .csv, .jsonl or .parquet, or add &format=csv|jsonl|parquet", sp.fsGlob)
		}
	}
	switch sp.fsFormat {
	case "csv", "jsonl", "parquet":
	default:
		return bad("format %q: expected csv, jsonl or parquet", sp.fsFormat)
	}
	rel := strings.Trim(u.Path, "/")
	if rel == "" {
		rel = "."
	}
	folder, root, err := confine(fileRoot, rel, "folder", bad)
	if err != nil {
		return err
	}
	if st, err := os.Stat(folder); err != nil || !st.IsDir() {
		return bad("%s is not a folder below the worker's file root: point the url at the folder that holds the files", rel)
	}
	sp.fsFolderURL = (&url.URL{Scheme: "file", Path: folder}).String()
	sp.fsRoot = root
	return nil
}

// checkGlob explains why a glob could reach outside its folder, or returns "".
func checkGlob(g string) string {
	if strings.HasPrefix(g, "/") {
		return "give a pattern relative to the folder"
	}
	if strings.Contains(g, `\`) {
		return "use '/' between folders"
	}
	for _, seg := range strings.Split(g, "/") {
		if seg == ".." {
			return "'..' would leave the folder"
		}
	}
	return ""
}

// confine resolves rel (slash-separated, below fileRoot) to its real path,
// symlinks followed, and refuses a path that leads outside the root. It also
// returns the root's real path.
func confine(fileRoot, rel, what string, bad func(string, ...any) error) (resolved, root string, err error) {
	if fileRoot == "" {
		return "", "", bad("this worker is not configured to read local files with dlt: set connectors.dlt.fileRoot to the folder they are resolved in")
	}
	clean := "."
	if rel != "." {
		c, err := model.CleanRelPath(rel)
		if err != nil {
			return "", "", bad("%v", err)
		}
		clean = c
	}
	root, err = filepath.Abs(fileRoot)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return "", "", bad("the worker's connectors.dlt.fileRoot %s cannot be used: %v", fileRoot, err)
	}
	resolved, err = filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(clean)))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", "", bad("%s %s does not exist below the worker's file root %s: check the url", what, clean, root)
	case err != nil:
		return "", "", bad("%s %s: %v", what, clean, err)
	}
	if r, err := filepath.Rel(root, resolved); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return "", "", bad("%s %s leads outside the worker's file root %s through a symlink: the connector does not follow links out of its root", what, clean, root)
	}
	return resolved, root, nil
}

// checkTable checks a table name against what the source can load.
func (sp *spec) checkTable(conn model.Connection, name string) error {
	if sp.source == sourceSQL && strings.Count(name, ".") > 1 {
		return connectors.BadInput("connection %q: table %q: name a table as table or schema.table", conn.Name, name)
	}
	return nil
}

// credentialUse says which credential fields a source takes.
var credentialUse = map[string][]string{
	sourceSQL:        {"userKey", "passwordKey"},
	sourceREST:       {"tokenKey", "userKey", "passwordKey"},
	sourceFilesystem: nil,
}

// resolveCredentials checks which credentials the connection names, looks
// the secrets up and keeps them, by dlt config name, for the child's env.
func (sp *spec) resolveCredentials(ctx context.Context, p *secrets.Provider, conn model.Connection) error {
	keys := conn.Credentials.Keys()
	allowed := credentialUse[sp.source]
	if sp.sqlite {
		allowed = nil
	}
	var fields []string
	for f := range keys {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		ok := false
		for _, a := range allowed {
			ok = ok || a == f
		}
		if !ok {
			takes := "no credentials"
			if len(allowed) > 0 {
				takes = "only credentials." + strings.Join(allowed, ", credentials.")
			}
			what := sp.source
			if sp.sqlite {
				what = "sqlite"
			}
			return connectors.BadInput("connection %q: credentials.%s is not used by a dlt %s connection (it takes %s): remove it", conn.Name, f, what, takes)
		}
	}
	switch sp.source {
	case sourceSQL:
		if keys["userKey"] != "" && sp.sqlHasURL {
			return connectors.BadInput("connection %q: the url names a user and credentials.userKey names one too: keep one", conn.Name)
		}
	case sourceREST:
		_, token := keys["tokenKey"]
		_, user := keys["userKey"]
		_, pass := keys["passwordKey"]
		switch {
		case token && (user || pass):
			return connectors.BadInput("connection %q: give either credentials.tokenKey (a bearer token) or userKey and passwordKey (HTTP basic), not both", conn.Name)
		case user != pass:
			return connectors.BadInput("connection %q: HTTP basic auth needs both credentials.userKey and credentials.passwordKey", conn.Name)
		case token:
			sp.restAuth = "bearer"
		case user:
			sp.restAuth = "http_basic"
		}
		if sp.restAuth != "" && strings.HasPrefix(sp.restBase, "http:") && !loopback(sp.restBase) {
			return connectors.BadInput("connection %q: url %q: credentials are sent only over https (plain http only to a loopback address): use an https URL", conn.Name, conn.URL)
		}
	}
	values, err := p.Resolve(ctx, conn.Name, keys)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return connectors.BadInput("%w", err)
	}
	names := map[string]map[string]string{
		sourceSQL:  {"userKey": envSQLUser, "passwordKey": envSQLPassword},
		sourceREST: {"tokenKey": envRESTToken, "userKey": envRESTUser, "passwordKey": envRESTPassword},
	}[sp.source]
	sp.env = map[string]string{}
	for f, v := range values {
		sp.env[names[f]] = v
	}
	return nil
}

// loopback reports whether a URL's host is a loopback address.
func loopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// runnerConfig is the runner's CONFIG.json. It never holds a secret.
type runnerConfig struct {
	Source           string `json:"source"`
	Table            string `json:"table"`
	PipelineName     string `json:"pipeline_name"`
	PipelinesDir     string `json:"pipelines_dir"`
	OutputDir        string `json:"output_dir"`
	BucketDir        string `json:"bucket_dir"`
	DatasetName      string `json:"dataset_name"`
	LoaderFileFormat string `json:"loader_file_format"`
	LogPeriod        int    `json:"log_period"`

	SQL        *sqlConfig        `json:"sql,omitempty"`
	REST       *restConfig       `json:"rest,omitempty"`
	Filesystem *filesystemConfig `json:"filesystem,omitempty"`
}

type sqlConfig struct {
	URL    string `json:"url"`
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table"`
}

type restConfig struct {
	BaseURL string `json:"base_url"`
	Path    string `json:"path"`
	Auth    string `json:"auth,omitempty"`
}

type filesystemConfig struct {
	BucketURL string `json:"bucket_url"`
	Glob      string `json:"glob"`
	Format    string `json:"format"`
	Root      string `json:"root"`
}

// runnerConfig builds the runner's configuration for table name, written
// into outDir (the work folder) with dlt's working files in scratch.
func (sp *spec) runnerConfig(name, format, outDir, scratch string) runnerConfig {
	if format == "" {
		format = "parquet"
	}
	parent, base := path.Split(name)
	rc := runnerConfig{
		Source:           sp.source,
		Table:            name,
		PipelineName:     pipelineName(name),
		PipelinesDir:     filepath.Join(scratch, "pipelines"),
		OutputDir:        outDir,
		BucketDir:        filepath.Join(outDir, filepath.FromSlash(parent)),
		DatasetName:      base,
		LoaderFileFormat: format,
		LogPeriod:        10,
	}
	switch sp.source {
	case sourceSQL:
		c := &sqlConfig{URL: sp.sqlURL, Table: name}
		if schema, table, ok := strings.Cut(name, "."); ok {
			c.Schema, c.Table = schema, table
		}
		rc.SQL = c
	case sourceREST:
		rc.REST = &restConfig{BaseURL: sp.restBase, Path: name, Auth: sp.restAuth}
	case sourceFilesystem:
		rc.Filesystem = &filesystemConfig{
			BucketURL: sp.fsFolderURL,
			Glob:      strings.ReplaceAll(sp.fsGlob, "{table}", name),
			Format:    sp.fsFormat,
			Root:      sp.fsRoot,
		}
	}
	return rc
}

// pipelineName is the dlt pipeline's name for a table: airlock_<table>, with
// anything but letters, digits and '_' as '_'.
func pipelineName(table string) string {
	var b strings.Builder
	b.WriteString("airlock_")
	for _, r := range strings.ToLower(table) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
