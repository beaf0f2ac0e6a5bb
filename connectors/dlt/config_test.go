package dlt

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

// fileRoot lays out a file root with a database, a folder of CSV files, and
// symlinks that lead out of it.
func fileRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	outside := t.TempDir()
	for _, p := range []string{"clinic/clinic.db", "exports/visits.csv", "notes.txt"} {
		full := filepath.Join(root, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(outside, "secret.db"), []byte("x"), 0o644)
	if err := os.Symlink(filepath.Join(outside, "secret.db"), filepath.Join(root, "escape.db")); err != nil {
		t.Fatal(err)
	}
	os.Symlink(outside, filepath.Join(root, "away"))
	os.Symlink("clinic/clinic.db", filepath.Join(root, "inside.db"))
	return root
}

func TestParseURL(t *testing.T) {
	root := fileRoot(t)
	realRoot, _ := filepath.EvalSymlinks(root)
	good := []struct {
		url   string
		check func(sp spec) string
	}{
		{"sql_database+sqlite:///clinic/clinic.db", func(sp spec) string {
			return sp.sqlURL + " want sqlite:///file:" + realRoot + "/clinic/clinic.db?mode=ro&uri=true"
		}},
		{"sql_database+sqlite:////clinic/clinic.db", func(sp spec) string {
			return sp.sqlURL + " want sqlite:///file:" + realRoot + "/clinic/clinic.db?mode=ro&uri=true"
		}},
		{"sql_database+sqlite:///inside.db", func(sp spec) string { // a link that stays inside
			return sp.sqlURL + " want sqlite:///file:" + realRoot + "/clinic/clinic.db?mode=ro&uri=true"
		}},
		{"sql_database+postgresql://reader@db.example.org:5432/clinic?sslmode=require", func(sp spec) string {
			return sp.sqlURL + " want postgresql://reader@db.example.org:5432/clinic?sslmode=require"
		}},
		{"rest_api+https://api.example.org/v1", func(sp spec) string { return sp.restBase + " want https://api.example.org/v1/" }},
		{"filesystem+file:///exports", func(sp spec) string {
			return sp.fsFolderURL + " " + sp.fsGlob + " " + sp.fsFormat + " want file://" + realRoot + "/exports {table}.csv csv"
		}},
		{"filesystem+file:///exports?glob={table}/part-*.jsonl", func(sp spec) string {
			return sp.fsGlob + " " + sp.fsFormat + " want {table}/part-*.jsonl jsonl"
		}},
		{"filesystem+file:///?glob=*.dat&format=parquet", func(sp spec) string {
			return sp.fsFolderURL + " " + sp.fsFormat + " want file://" + realRoot + " parquet"
		}},
	}
	for _, c := range good {
		sp, err := parseURL(model.Connection{Name: "c", Type: model.ConnDLT, URL: c.url}, root)
		if err != nil {
			t.Errorf("%s: %v", c.url, err)
			continue
		}
		got, want, _ := strings.Cut(c.check(sp), " want ")
		if got != want {
			t.Errorf("%s: got %s, want %s", c.url, got, want)
		}
	}

	bad := []struct{ url, root, want string }{
		{"", root, "url: missing"},
		{"sqlite:///clinic.db", root, "<dlt source>+<location>"},
		{"duckdb+file:///x", root, `unknown dlt source "duckdb"`},
		{"sql_database+sqlite:///missing.db", root, "does not exist below the worker's file root"},
		{"sql_database+sqlite:///../outside.db", root, "escapes its root"},
		{"sql_database+sqlite:///escape.db", root, "through a symlink: the connector does not follow links"},
		{"sql_database+sqlite:///away/secret.db", root, "through a symlink: the connector does not follow links"},
		{"sql_database+sqlite:///clinic", root, "is not a file"},
		{"sql_database+sqlite://", root, "name the SQLite database file"},
		{"sql_database+sqlite:///clinic/clinic.db?mode=rw", root, "takes no query"},
		{"sql_database+sqlite:///clinic/clinic.db", "", "set connectors.dlt.fileRoot"},
		{"sql_database+postgresql://reader:hunter22@db/clinic", root, "holds a password"},
		{"sql_database+postgresql:///clinic", root, "name the database server"},
		{"rest_api+ftp://api.example.org", root, "rest_api+https://"},
		{"rest_api+https://user:pw@api.example.org", root, "holds credentials"},
		{"rest_api+https://api.example.org/v1?key=abc", root, "takes no query"},
		{"filesystem+s3://bucket/x", root, "reads local folders"},
		{"filesystem+file:///notes.txt", root, "is not a folder"},
		{"filesystem+file:///away", root, "leads outside"},
		{"filesystem+file:///exports?glob=../*.csv", root, "'..' would leave the folder"},
		{"filesystem+file:///exports?glob=/etc/*.csv", root, "relative to the folder"},
		{"filesystem+file:///exports?glob=*.xlsx", root, "cannot tell the files' format"},
		{"filesystem+file:///exports?format=xml", root, `format "xml"`},
		{"filesystem+file:///exports?pattern=*.csv", root, `unknown parameter "pattern"`},
		{"filesystem+file://server/exports", root, "three slashes"},
	}
	for _, c := range bad {
		_, err := parseURL(model.Connection{Name: "c", Type: model.ConnDLT, URL: c.url}, c.root)
		switch {
		case err == nil:
			t.Errorf("%s: accepted", c.url)
		case !connectors.IsBadInput(err):
			t.Errorf("%s: %v is not BadInput", c.url, err)
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: error %q does not say %q", c.url, err, c.want)
		case strings.Contains(err.Error(), "hunter22") && !strings.Contains(c.url, "hunter22"):
			t.Errorf("%s: error shows the password", c.url)
		}
	}
}

func TestCredentials(t *testing.T) {
	root := fileRoot(t)
	env := map[string]string{
		secrets.EnvVar("db-user"):   "reader",
		secrets.EnvVar("db-pass"):   "pw-4c1d9e77",
		secrets.EnvVar("api-token"): "tok-77aa01bc",
	}
	p := &secrets.Provider{Getenv: func(k string) string { return env[k] }}
	python, _ := os.Executable() // New checks that the python exists, nothing more
	opts := Options{Python: python, FileRoot: root}
	newSource := func(url string, creds model.Credentials) (*Source, error) {
		return New(context.Background(), p, opts, model.Connection{Type: model.ConnDLT, Name: "c", URL: url, Credentials: creds})
	}

	s, err := newSource("sql_database+postgresql://db.example.org/clinic", model.Credentials{UserKey: "db-user", PasswordKey: "db-pass"})
	if err != nil {
		t.Fatal(err)
	}
	if s.spec.env[envSQLUser] != "reader" || s.spec.env[envSQLPassword] != "pw-4c1d9e77" || len(s.spec.env) != 2 {
		t.Errorf("sql env = %v", s.spec.env)
	}
	s, err = newSource("rest_api+https://api.example.org", model.Credentials{TokenKey: "api-token"})
	if err != nil {
		t.Fatal(err)
	}
	if s.spec.env[envRESTToken] != "tok-77aa01bc" || s.spec.restAuth != "bearer" {
		t.Errorf("rest env = %v, auth %q", s.spec.env, s.spec.restAuth)
	}
	s, err = newSource("rest_api+http://127.0.0.1:8080", model.Credentials{UserKey: "db-user", PasswordKey: "db-pass"})
	if err != nil {
		t.Fatal(err)
	}
	if s.spec.restAuth != "http_basic" || s.spec.env[envRESTUser] != "reader" {
		t.Errorf("basic auth: env = %v, auth %q", s.spec.env, s.spec.restAuth)
	}

	bad := []struct {
		url   string
		creds model.Credentials
		want  string
	}{
		{"rest_api+https://api.example.org", model.Credentials{TokenKey: "no-such-token"}, `secret "no-such-token" not found`},
		{"sql_database+postgresql://db/clinic", model.Credentials{PasswordKey: "missing-pass"}, `credentials.passwordKey: secret "missing-pass" not found`},
		{"sql_database+sqlite:///clinic/clinic.db", model.Credentials{PasswordKey: "db-pass"}, "credentials.passwordKey is not used by a dlt sqlite connection"},
		{"filesystem+file:///exports", model.Credentials{TokenKey: "api-token"}, "credentials.tokenKey is not used by a dlt filesystem connection"},
		{"sql_database+postgresql://db/clinic", model.Credentials{TokenKey: "api-token"}, "it takes only credentials.userKey, credentials.passwordKey"},
		{"sql_database+postgresql://reader@db/clinic", model.Credentials{UserKey: "db-user"}, "keep one"},
		{"rest_api+https://api.example.org", model.Credentials{TokenKey: "api-token", UserKey: "db-user", PasswordKey: "db-pass"}, "not both"},
		{"rest_api+https://api.example.org", model.Credentials{UserKey: "db-user"}, "needs both"},
		{"rest_api+http://api.example.org", model.Credentials{TokenKey: "api-token"}, "only over https"},
	}
	for _, c := range bad {
		_, err := newSource(c.url, c.creds)
		switch {
		case err == nil:
			t.Errorf("%s %+v: accepted", c.url, c.creds)
		case !connectors.IsBadInput(err):
			t.Errorf("%s: %v is not BadInput", c.url, err)
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: error %q does not say %q", c.url, err, c.want)
		}
		for _, v := range env {
			if err != nil && strings.Contains(err.Error(), v) {
				t.Errorf("%s: error shows a secret value: %v", c.url, err)
			}
		}
	}

	_, err = New(context.Background(), p, Options{Python: filepath.Join(root, "no-python")}, model.Connection{Type: model.ConnDLT, Name: "c", URL: "rest_api+https://api.example.org"})
	if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "deploy/tools/install.sh dlt") {
		t.Errorf("missing python: %v", err)
	}
}

func TestListAndObjectChecks(t *testing.T) {
	python, _ := os.Executable()
	s, err := New(context.Background(), nil, Options{Python: python}, model.Connection{Type: model.ConnDLT, Name: "api", URL: "rest_api+https://api.example.org/v1"})
	if err != nil {
		t.Fatal(err)
	}
	items, err := s.List(context.Background(), table("v2/samples", "api"))
	if err != nil || len(items) != 1 || items[0].Path != "v2/samples/" || items[0].Size != -1 {
		t.Errorf("List = %+v, %v", items, err)
	}
	if s.Produces(model.Object{File: &model.FileObject{Path: "x.csv"}}) {
		t.Error("Produces(file) = true")
	}
	query := table("samples", "api")
	query.Table.Query = "select 1"
	format := table("samples", "api")
	format.Table.Format = "xlsx"
	for _, c := range []struct {
		obj  model.Object
		want string
	}{
		{model.Object{File: &model.FileObject{Path: "x.csv"}}, "describe this object as table"},
		{table("../up", "api"), "escapes its root"},
		{table("a//b", "api"), `write it as "a/b"`},
		{query, "query is not supported"},
		{format, `format "xlsx"`},
	} {
		_, err := s.List(context.Background(), c.obj)
		if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("List(%s) = %v, want BadInput saying %q", c.obj.Describe(), err, c.want)
		}
	}
	if _, err := s.Open(context.Background(), connectors.Item{Path: "samples/"}, 0); !connectors.IsBadInput(err) {
		t.Errorf("Open = %v, want BadInput", err)
	}
}

func TestChildEnvironmentHoldsOnlyWhatTheRunnerNeeds(t *testing.T) {
	t.Setenv(secrets.EnvVar("api-token"), "tok-5150aa99")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-should-not-pass")
	t.Setenv("HTTPS_PROXY", "http://proxy.example.org:3128")
	p := &secrets.Provider{}
	python, _ := os.Executable()
	s, err := New(context.Background(), p, Options{Python: python}, model.Connection{
		Type: model.ConnDLT, Name: "api", URL: "rest_api+https://api.example.org", Credentials: model.Credentials{TokenKey: "api-token"},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range s.childEnv("/work/.dlt-run-1") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if env[envRESTToken] != "tok-5150aa99" || env["HOME"] != "/work/.dlt-run-1" || env["RUNTIME__DLTHUB_TELEMETRY"] != "false" || env["HTTPS_PROXY"] == "" {
		t.Errorf("child env = %v", env)
	}
	for k, v := range env {
		if strings.HasPrefix(k, secrets.EnvPrefix) || k == "AWS_SECRET_ACCESS_KEY" || (v == "tok-5150aa99" && k != envRESTToken) {
			t.Errorf("the child's environment holds %s", k)
		}
	}
	rc := s.spec.runnerConfig("samples", "", "/work", "/work/.dlt-run-1")
	cfg, _ := json.Marshal(rc)
	if strings.Contains(string(cfg), "tok-5150aa99") {
		t.Errorf("the runner's config file holds the token: %s", cfg)
	}
}

func TestProgressLinesAreScrubbed(t *testing.T) {
	p := &secrets.Provider{Getenv: func(string) string { return "s3cr3t-value-42" }}
	if _, err := p.Lookup(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	var got []string
	sink := &lineSink{progress: func(l string) { got = append(got, l) }, scrub: p.Scrub}
	w := &lineWriter{sink: sink}
	w.Write([]byte("connecting with s3cr3t-"))
	w.Write([]byte("value-42\r\n\n   \nsecond line\npartial"))
	w.Write([]byte(strings.Repeat("y", 3*maxLine) + "s3cr3t-value-42" + strings.Repeat("z", 6*maxLine)))
	w.flush()
	if len(got) != 3 || got[0] != "connecting with [redacted]" || got[1] != "second line" {
		t.Fatalf("lines = %q", got)
	}
	for _, l := range got {
		if strings.Contains(l, "s3cr3t") || len(l) > maxLine+10 {
			t.Errorf("line not scrubbed or not cut: %.80q… (%d bytes)", l, len(l))
		}
	}
	if tail := sink.tailText(2); !strings.Contains(tail, "second line") || strings.Contains(tail, "s3cr3t") {
		t.Errorf("tail = %.200q", tail)
	}
}

func TestPipelineName(t *testing.T) {
	for in, want := range map[string]string{"patients": "airlock_patients", "public.Visits": "airlock_public_visits", "v2/samples-x": "airlock_v2_samples_x"} {
		if got := pipelineName(in); got != want {
			t.Errorf("pipelineName(%q) = %q, want %q", in, got, want)
		}
	}
	sp := spec{source: sourceSQL, sqlURL: "sqlite:///file:/x.db?mode=ro&uri=true"}
	rc := sp.runnerConfig("public.visits", "csv", "/work", "/work/.s")
	if rc.SQL.Schema != "public" || rc.SQL.Table != "visits" || rc.DatasetName != "public.visits" || rc.BucketDir != "/work" || rc.LoaderFileFormat != "csv" {
		t.Errorf("runner config = %+v %+v", rc, rc.SQL)
	}
	rest := spec{source: sourceREST, restBase: "https://a/"}
	rc = rest.runnerConfig("v2/samples", "", "/work", "/work/.s")
	if rc.BucketDir != "/work/v2" || rc.DatasetName != "samples" || rc.REST.Path != "v2/samples" || rc.LoaderFileFormat != "parquet" {
		t.Errorf("runner config = %+v %+v", rc, rc.REST)
	}
}
