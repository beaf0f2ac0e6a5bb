package config

import (
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
