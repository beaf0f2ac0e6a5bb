package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/auth/oidctest"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/testservers"
)

// playwrightCoreVersion is the playwright-core that deploy/tools/install.sh
// installs (npm) to drive Debian's chromium.
const playwrightCoreVersion = "1.65.1"

// browserTools finds Debian's chromium and the playwright-core package, or
// skips (fails under CI) naming the install step.
func browserTools(t *testing.T) (chromium, playwright string) {
	t.Helper()
	chromium = os.Getenv("AIRLOCK_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		testservers.Unavailable(t, fmt.Errorf("no chromium at %s: run deploy/tools/install.sh browser (or set AIRLOCK_CHROMIUM)", chromium))
	}
	cache := os.Getenv("AIRLOCK_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "airlock")
	}
	playwright = filepath.Join(cache, "playwright-core-"+playwrightCoreVersion, "node_modules", "playwright-core")
	if _, err := os.Stat(filepath.Join(playwright, "package.json")); err != nil {
		testservers.Unavailable(t, fmt.Errorf("no playwright-core at %s: run deploy/tools/install.sh browser", playwright))
	}
	if _, err := exec.LookPath("node"); err != nil {
		testservers.Unavailable(t, errors.New("no node on PATH: install Node.js (apt-get install nodejs)"))
	}
	return chromium, playwright
}

// TestConsoleUploadAndApproveInBrowser signs in through a real OIDC code
// flow (PKCE) in headless Chromium: a researcher uploads two files through
// the console (one connection is dropped mid-file and the page resumes),
// confirms; two approvers, whose roles come only from the identity
// provider's claims (a realm role, and a group), approve a stage each; the
// request ends COMPLETED and the workspace holds exactly the uploaded bytes.
// Screenshots of every step go to $AIRLOCK_SCREENSHOTS (default: a folder
// under the system temp dir, logged).
func TestConsoleUploadAndApproveInBrowser(t *testing.T) {
	c := needServer(t)
	chromium, playwright := browserTools(t)

	prov, err := oidctest.New("127.0.0.1:0")
	must(t, err)
	t.Cleanup(prov.Close)
	prov.SetClient("airlock-console", "console-client-secret")
	// Users unknown to the worker's roster: their roles reach the workflow
	// only as roles the API attests from their tokens.
	prov.AddUser("riley", []string{"researcher"}, nil)
	prov.AddUser("erin", []string{"data-engineer"}, nil)
	prov.AddUser("gina", nil, []string{"/information-governance"})

	e := newEnvConfig(t, "  checkpointEvery: 1s", localStores, `secrets:
  dir: secrets
uploads:
  maxFileSize: 104857600
  maxRequestSize: 209715200
  maxFiles: 10
  expireAfter: 1h
api:
  auth:
    mode: oidc
    oidc:
      issuer: `+prov.URL()+`
      clientId: airlock-console
      clientSecretKey: oidc-client-secret
    sessionKeyKey: session-key
    grants:
    - {role: researcher, capabilities: ["upload:*", "read:own"]}
    - {role: data-engineer, capabilities: ["read:*", "approve:data-engineer"]}
    - {group: /information-governance, capabilities: ["read:*", "approve:information-governance"]}`)
	cfg, err := os.ReadFile(e.config)
	must(t, err)
	must(t, os.WriteFile(e.config, bytes.Replace(cfg, []byte("directory:\n"), []byte("directory:\n  attestedRoles: true\n"), 1), 0o644))
	secretsDir := filepath.Join(e.dir, "secrets")
	must(t, os.MkdirAll(secretsDir, 0o700))
	must(t, os.WriteFile(filepath.Join(secretsDir, "oidc-client-secret"), []byte("console-client-secret"), 0o600))
	must(t, os.WriteFile(filepath.Join(secretsDir, "session-key"), []byte("a-session-key-of-at-least-32-bytes-for-tests"), 0o600))

	e.startWorker(e.config)
	api := e.startAPI(e.config)

	// A CSV to preview and a file larger than the page's upload chunk, so
	// that a connection can be dropped part-way through it.
	uploadDir := t.TempDir()
	csvPath := filepath.Join(uploadDir, "survey.csv")
	csv := "respondent,visit_date,score\nr001,2026-01-05,7\nr002,2026-01-06,9\nr003,2026-01-09,4\n"
	must(t, os.WriteFile(csvPath, []byte(csv), 0o644))
	bigPath := filepath.Join(uploadDir, "scans.bin")
	big := randomBytes(11, 20<<20)
	must(t, os.WriteFile(bigPath, big, 0o644))

	shots := os.Getenv("AIRLOCK_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "airlock-screenshots")
	}
	must(t, os.MkdirAll(shots, 0o755))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "browser/upload-and-approve.js")
	cmd.Env = append(os.Environ(),
		"PLAYWRIGHT_CORE="+playwright, "CHROMIUM="+chromium, "CONSOLE_URL="+api.url,
		"UPLOAD_FILES="+csvPath+string(os.PathListSeparator)+bigPath, "SCREENSHOTS="+shots,
		"PROJECT=d4e6", "WORKSPACE=ws-browser",
		"RESEARCHER=riley", "FIRST_APPROVER=erin", "SECOND_APPROVER=gina")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	runErr := cmd.Run()
	t.Logf("browser script:\n%s", errOut.String())
	if runErr != nil {
		t.Fatalf("the browser script failed: %v\nstdout: %s", runErr, out.String())
	}
	var res struct {
		ID        string `json:"id"`
		DroppedAt int64  `json:"dropped_at"`
		ResumedAt int64  `json:"resumed_at"`
	}
	must(t, json.Unmarshal(bytes.TrimSpace(out.Bytes()), &res))
	t.Logf("MEASURE browser upload: a PATCH was dropped at offset %d and the page resumed at %d", res.DroppedAt, res.ResumedAt)

	// What the workflow recorded, read straight from Temporal.
	st, err := (&requests.Service{Client: c}).Status(ctx, res.ID)
	must(t, err)
	if st.State != model.StateCompleted || st.Kind != model.KindUpload || st.Requester != "riley" {
		t.Fatalf("request %s: state %s, kind %s, requester %s; want COMPLETED upload by riley", res.ID, st.State, st.Kind, st.Requester)
	}
	wantBy := []string{"erin", "gina"}
	for i, stage := range st.Stages {
		if len(stage.Decisions) != 1 || stage.Decisions[0].By != wantBy[i] || stage.Decisions[0].Via != "api" || stage.Decisions[0].ManifestDigest != st.ManifestDigest {
			t.Errorf("stage %s decisions %+v; want one approval by %s via api on %s", stage.Name, stage.Decisions, wantBy[i], st.ManifestDigest)
		}
	}
	files := map[string]model.FileRecord{}
	for _, f := range st.Files {
		files[f.Path] = f
	}
	if len(files) != 2 || files["survey.csv"].SHA256 != sha([]byte(csv)) || files["scans.bin"].SHA256 != sha(big) {
		t.Fatalf("recorded files %+v; want survey.csv and scans.bin with the uploaded bytes' digests", st.Files)
	}
	// The workspace holds exactly the uploaded bytes, and the crate says who
	// uploaded and who approved.
	released := filepath.Join(e.workspaces, "ws-browser", st.DataSource, st.ID)
	for name, want := range map[string][]byte{"survey.csv": []byte(csv), "scans.bin": big} {
		got, err := os.ReadFile(filepath.Join(released, name))
		must(t, err)
		if sha(got) != sha(want) {
			t.Errorf("released %s has sha256 %s, want %s", name, sha(got), sha(want))
		}
	}
	crate, err := os.ReadFile(filepath.Join(released, model.CrateFileName))
	must(t, err)
	for _, want := range []string{"riley", "erin", "gina", st.ManifestDigest, "Airlock upload (tus)"} {
		if !strings.Contains(string(crate), want) {
			t.Errorf("the released crate does not mention %q", want)
		}
	}
	// The history replays against the current workflow code.
	replay(t, c, res.ID)
	if dir := os.Getenv("AIRLOCK_RECORD_HISTORIES"); dir != "" {
		recordHistory(t, c, res.ID, filepath.Join(dir, "upload-completed.json"))
	}
	entries, _ := filepath.Glob(filepath.Join(shots, "*.png"))
	if len(entries) < 8 {
		t.Errorf("expected a screenshot of every step in %s, found %d", shots, len(entries))
	}
	t.Logf("screenshots in %s: %d files", shots, len(entries))
}
