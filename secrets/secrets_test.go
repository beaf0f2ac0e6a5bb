package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvVarName(t *testing.T) {
	for key, want := range map[string]string{
		"DatabricksPassword": "AIRLOCK_SECRET_DATABRICKSPASSWORD",
		"s3-access.key_id":   "AIRLOCK_SECRET_S3_ACCESS_KEY_ID",
	} {
		if got := EnvVar(key); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestLookupDirBeforeEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("from-file-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"AIRLOCK_SECRET_TOKEN": "from-env-value", "AIRLOCK_SECRET_OTHER": "other-env-value"}
	p := &Provider{Dir: dir, Getenv: func(k string) string { return env[k] }}
	ctx := context.Background()
	if v, err := p.Lookup(ctx, "token"); err != nil || v != "from-file-value" {
		t.Fatalf("token = %q, %v; want the file's value without its newline", v, err)
	}
	if v, err := p.Lookup(ctx, "other"); err != nil || v != "other-env-value" {
		t.Fatalf("other = %q, %v; want the environment's value", v, err)
	}
	p.NoEnv = true
	if _, err := p.Lookup(ctx, "other"); !IsMissing(err) {
		t.Fatalf("with the environment off, other: %v; want a MissingError", err)
	}
}

func TestMissingNamesKeyNotValue(t *testing.T) {
	dir := t.TempDir()
	p := &Provider{Dir: dir, Getenv: func(string) string { return "" }}
	_, err := p.Resolve(context.Background(), "warehouse", map[string]string{"passwordKey": "DatabricksPassword"})
	var m *MissingError
	if !errors.As(err, &m) || m.Key != "DatabricksPassword" {
		t.Fatalf("err = %v; want a MissingError for DatabricksPassword", err)
	}
	for _, want := range []string{`connection "warehouse"`, "credentials.passwordKey", `"DatabricksPassword"`, filepath.Join(dir, "DatabricksPassword"), "AIRLOCK_SECRET_DATABRICKSPASSWORD"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestRefusesKeysThatEscapeTheDir(t *testing.T) {
	p := &Provider{Dir: t.TempDir()}
	for _, key := range []string{"../etc/passwd", "a/b", "..", "", "has space"} {
		if _, err := p.Lookup(context.Background(), key); err == nil || IsMissing(err) {
			t.Errorf("Lookup(%q) = %v; want an invalid-key error", key, err)
		}
	}
}

func TestScrubRemovesResolvedValues(t *testing.T) {
	p := &Provider{Getenv: func(k string) string {
		if k == "AIRLOCK_SECRET_K" {
			return "s3cr3t-value"
		}
		return ""
	}}
	if _, err := p.Lookup(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	got := p.Scrub("GET https://x/?sig=s3cr3t-value failed: s3cr3t-value")
	if strings.Contains(got, "s3cr3t-value") || !strings.Contains(got, Redacted) {
		t.Fatalf("Scrub left the value in: %q", got)
	}
}
