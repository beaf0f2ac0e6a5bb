package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/model"
)

func writeConfig(t *testing.T, stores string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "airlock.yaml")
	cfg := stores + `
secrets: {dir: secrets}
workDir: work
connectors:
  s3: {partSize: 8388608, concurrency: 2}
  databricks: {warehouseId: abc123}
sources: {fileRoot: data}
`
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStoreConfigKinds(t *testing.T) {
	p := writeConfig(t, `stores:
  staging: {path: staging}
  workspaces: {type: s3, url: "s3://bucket/ws", endpoint: "http://127.0.0.1:7070", pathStyle: true, credentials: {accessKeyIdKey: a, secretAccessKeyKey: b}}`)
	cfg, _, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	if st := cfg.Stores.Staging; st.Type != StoreLocal || st.Path != filepath.Join(dir, "staging") {
		t.Errorf("staging = %+v; want a local store at %s", st, filepath.Join(dir, "staging"))
	}
	if ws := cfg.Stores.Workspaces; ws.Type != "s3" || ws.URL != "s3://bucket/ws" || !ws.PathStyle || ws.Credentials.AccessKeyIDKey != "a" || ws.Name != "stores.workspaces" {
		t.Errorf("workspaces = %+v; want the s3 connection as written", ws)
	}
	if cfg.Secrets.Dir != filepath.Join(dir, "secrets") || cfg.WorkDir != filepath.Join(dir, "work") || cfg.Connectors.DLT.FileRoot != filepath.Join(dir, "data") {
		t.Errorf("paths not resolved against the config's folder: secrets %q, workDir %q, dlt fileRoot %q", cfg.Secrets.Dir, cfg.WorkDir, cfg.Connectors.DLT.FileRoot)
	}
	if cfg.Connectors.S3.PartSize != 8388608 || cfg.Connectors.S3.Concurrency != 2 || cfg.Connectors.Databricks.WarehouseID != "abc123" {
		t.Errorf("connectors = %+v", cfg.Connectors)
	}
}

func TestStoreConfigRefusals(t *testing.T) {
	for _, tc := range []struct{ stores, want string }{
		{"stores:\n  workspaces: {path: ws}", "stores.staging: missing: give path (a local folder) or type (s3, azureblob)"},
		{"stores:\n  staging: {path: s}\n  workspaces: {type: s3}", "stores.workspaces.url: missing"},
		{"stores:\n  staging: {type: gcs, url: gs://x}\n  workspaces: {path: ws}", `stores.staging.type: unknown store type "gcs"`},
		{"stores:\n  staging: {path: s, type: s3, url: s3://b}\n  workspaces: {path: ws}", "stores.staging: give either path"},
		{"stores:\n  staging: {type: local}\n  workspaces: {path: ws}", "stores.staging.path: missing"},
	} {
		_, _, err := Load(writeConfig(t, tc.stores))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("stores %q: err = %v; want %q", tc.stores, err, tc.want)
		}
	}
}

// directory.attestedRoles reaches every directory the policy book makes:
// with it, a role the API attests counts as membership; without it, only
// the roster does.
func TestDirectoryAttestedRoles(t *testing.T) {
	pol := model.Policy{Name: "p", Version: "1", Stages: []model.Stage{{Name: "eng", Role: "data-engineer", Approvals: 1}}}
	for _, tc := range []struct {
		directory string
		want      bool
	}{
		{"directory: {users: {dana: [data-engineer]}}", false},
		{"directory: {attestedRoles: true, users: {dana: [data-engineer]}}", true},
	} {
		_, book, err := Load(writeConfig(t, "stores:\n  staging: {path: s}\n  workspaces: {path: ws}\n"+tc.directory))
		if err != nil {
			t.Fatalf("%s: %v", tc.directory, err)
		}
		d := book.Directory(pol)
		if d.AttestedRoles != tc.want || book.AttestedRoles != tc.want {
			t.Errorf("%s: directory attests roles = %v (book %v); want %v", tc.directory, d.AttestedRoles, book.AttestedRoles, tc.want)
		}
		if !d.Admits("dana", nil, "data-engineer") {
			t.Errorf("%s: the roster's member is refused", tc.directory)
		}
		if got := d.Admits("zed", []string{"data-engineer"}, "data-engineer"); got != tc.want {
			t.Errorf("%s: an attested data-engineer admitted = %v; want %v", tc.directory, got, tc.want)
		}
	}
}

func TestEgressConfig(t *testing.T) {
	p := writeConfig(t, `stores:
  staging: {path: staging}
  workspaces: {path: workspaces}
egress:
  signingKey: airlock-egress-signing-key
  destinations:
  - name: partner-outbox
    description: the partner's drop
    path: outbox
  - name: archive
    description: write-once archive
    type: s3
    url: s3://archive/released
    endpoint: http://127.0.0.1:7070
    pathStyle: true
    credentials: {accessKeyIdKey: a, secretAccessKeyKey: b}
    revocable: false`)
	cfg, _, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	e := cfg.Egress
	if e.SigningKey != "airlock-egress-signing-key" || len(e.Destinations) != 2 {
		t.Fatalf("egress = %+v", e)
	}
	out, arc := e.Destinations[0], e.Destinations[1]
	if out.Name != "partner-outbox" || out.Type != StoreLocal || out.Path != filepath.Join(dir, "outbox") || !out.IsRevocable() || out.Description != "the partner's drop" {
		t.Errorf("outbox = %+v; want a revocable local store at %s", out, filepath.Join(dir, "outbox"))
	}
	if arc.Name != "archive" || arc.Type != "s3" || arc.URL != "s3://archive/released" || !arc.PathStyle || arc.Credentials.SecretAccessKeyKey != "b" || arc.IsRevocable() {
		t.Errorf("archive = %+v; want the s3 store as written, not revocable", arc)
	}

	// Opening needs no server for a local folder; the s3 one is left out.
	cfg.Egress.Destinations = cfg.Egress.Destinations[:1]
	dests, err := cfg.OpenDestinations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d, ok := dests["partner-outbox"]
	if len(dests) != 1 || !ok || !d.Revocable || d.Description != "the partner's drop" || d.Store.URL("x") != "file://"+filepath.ToSlash(filepath.Join(dir, "outbox", "x")) {
		t.Errorf("destinations = %+v", dests)
	}
	if fi, err := os.Stat(filepath.Join(dir, "outbox")); err != nil || !fi.IsDir() {
		t.Errorf("the outbox folder was not made: %v", err)
	}

	// No egress block: no destinations, and nothing is required.
	cfg, _, err = Load(writeConfig(t, "stores:\n  staging: {path: s}\n  workspaces: {path: ws}"))
	if err != nil {
		t.Fatal(err)
	}
	if dests, err := cfg.OpenDestinations(context.Background()); err != nil || len(dests) != 0 {
		t.Errorf("no egress block: destinations %v, err %v", dests, err)
	}
}

func TestEgressConfigRefusals(t *testing.T) {
	const stores = "stores:\n  staging: {path: staging}\n  workspaces: {path: workspaces}\n"
	for _, tc := range []struct{ egress, want string }{
		{"egress:\n  signingKey: k\n  destinations:\n  - {path: out}", "egress.destinations[0].name: missing"},
		{"egress:\n  signingKey: k\n  destinations:\n  - {name: Partner_Outbox, path: out}", `egress.destinations[0].name: invalid name "Partner_Outbox"`},
		{"egress:\n  signingKey: k\n  destinations:\n  - {name: out, path: a}\n  - {name: out, path: b}", `egress.destinations[1].name: a second destination named "out" (also egress.destinations[0])`},
		{"egress:\n  signingKey: k\n  destinations:\n  - {name: out}", "egress.destinations[0]: missing: give path (a local folder) or type (s3, azureblob) and url"},
		{"egress:\n  signingKey: k\n  destinations:\n  - {name: out, type: s3}", "egress.destinations[0].url: missing"},
		{"egress:\n  signingKey: k\n  destinations:\n  - {name: out, type: ftp, url: ftp://x}", `egress.destinations[0].type: unknown store type "ftp"`},
		{"egress:\n  destinations:\n  - {name: out, path: out}", "egress.signingKey: missing"},
		{"egress:\n  signingKey: k\n  destinations:\n  - {name: out, path: workspaces/outbox}", "egress.destinations[0].path: " + "PLACEHOLDER"},
		{"egress:\n  signingKey: k\n  destinations:\n  - {name: out, path: .}", "overlaps stores."},
		{"egress:\n  signingKey: k\n  destinations:\n  - {name: out, path: out, colour: red}", "field colour not found"},
	} {
		p := writeConfig(t, stores+tc.egress)
		want := strings.Replace(tc.want, "PLACEHOLDER", filepath.Join(filepath.Dir(p), "workspaces", "outbox")+" overlaps stores.workspaces", 1)
		_, _, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v; want %q", tc.egress, err, want)
		}
	}
}
