// Package integration runs Airlock end to end against a real Temporal dev
// server (the pinned Temporal CLI, started with testsuite.StartDevServer), the
// real worker binary and the real airlock CLI.
//
// The Temporal CLI is found at $AIRLOCK_TEMPORAL_CLI, else
// $AIRLOCK_CACHE/bin/temporal, else ~/.cache/airlock/bin/temporal
// (deploy/tools/install.sh puts it there). Without it the tests skip on a
// developer's machine and fail under CI=true.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/testservers"
	"github.com/airlockhq/airlock/workflows"
)

var (
	devServer *testsuite.DevServer
	binDir    string // holds airlock and airlock-worker built for this run
	skipWhy   string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	cli := temporalCLI()
	if _, err := os.Stat(cli); err != nil {
		skipWhy = fmt.Sprintf("the Temporal CLI is not at %s: run deploy/tools/install.sh (or set AIRLOCK_TEMPORAL_CLI)", cli)
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "FAIL: under CI the real servers are required:", skipWhy)
			return 1
		}
		return m.Run()
	}
	var err error
	binDir, err = os.MkdirTemp("", "airlock-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	for name, pkg := range map[string]string{"airlock": "../starter", "airlock-worker": "../workers", "airlock-api": "../api"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	args := []string{}
	args = append(args, workflows.DevServerSearchAttributeArgs()...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	devServer, err = testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  cli,
		LogLevel:      "error",
		ExtraArgs:     args,
		ClientOptions: &client.Options{Namespace: "default", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))},
		Stdout:        io.Discard,
		Stderr:        io.Discard,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the Temporal dev server:", err)
		return 1
	}
	defer devServer.Stop()
	return m.Run()
}

func temporalCLI() string {
	if p := os.Getenv("AIRLOCK_TEMPORAL_CLI"); p != "" {
		return p
	}
	cache := os.Getenv("AIRLOCK_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "airlock")
	}
	return filepath.Join(cache, "bin", "temporal")
}

func needServer(t *testing.T) client.Client {
	t.Helper()
	if devServer == nil {
		testservers.Unavailable(t, errors.New(skipWhy))
	}
	return devServer.Client()
}

// env is one test's Airlock: its own folders, config and workers.
type env struct {
	t          *testing.T
	dir        string
	sourceRoot string
	staging    string
	workspaces string
	config     string
	// workerEnv is added to the workers' environment (AIRLOCK_SECRET_* values).
	workerEnv []string
}

// localStores is the stores section for local staging and workspace folders.
const localStores = `stores:
  staging: {path: staging}
  workspaces: {path: workspaces}`

func newEnv(t *testing.T, transfer string) *env {
	t.Helper()
	return newEnvConfig(t, transfer, localStores, "")
}

// newEnvConfig is newEnv with the stores section and further top-level
// config (connectors, secrets) given.
func newEnvConfig(t *testing.T, transfer, stores, extra string) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.sourceRoot = filepath.Join(e.dir, "sources")
	e.staging = filepath.Join(e.dir, "staging")
	e.workspaces = filepath.Join(e.dir, "workspaces")
	must(t, os.MkdirAll(e.sourceRoot, 0o755))
	for _, name := range []string{"standard-import.yaml", "standard-upload.yaml", "standard-egress.yaml"} {
		policy, err := os.ReadFile("../examples/policies/" + name)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(e.dir, name), policy, 0o644))
	}
	e.config = filepath.Join(e.dir, "airlock.yaml")
	cfg := fmt.Sprintf(`taskQueue: %s
%s
workDir: work
%s
sources:
  fileRoot: sources
transfer:
%s
policies:
  files: [standard-import.yaml, standard-upload.yaml, standard-egress.yaml]
  rules:
  - {project: "*", kind: import, policies: [standard-import]}
  - {project: "*", kind: upload, policies: [standard-upload]}
  - {project: "*", kind: egress, policies: [standard-egress]}
directory:
  users:
    rita: [researcher]
    dana: [data-engineer]
    ian: [information-governance]
    carol: [output-checker]
    chris: [output-checker]
`, workflows.TaskQueue, stores, extra, transfer)
	must(t, os.WriteFile(e.config, []byte(cfg), 0o644))
	return e
}

// workerProc is a running worker process.
type workerProc struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

func (e *env) startWorker(config string) *workerProc {
	e.t.Helper()
	return e.startProcess("worker", "airlock-worker", "--config", config)
}

// startProcess runs one of the built binaries against the dev server, with
// the env's extra environment; it is stopped (SIGTERM, then SIGKILL) when
// the test ends, and its output logged if the test failed.
func (e *env) startProcess(label, bin string, args ...string) *workerProc {
	e.t.Helper()
	w := &workerProc{log: &lockedBuffer{}, done: make(chan struct{})}
	w.cmd = exec.Command(filepath.Join(binDir, bin), args...)
	w.cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+devServer.FrontendHostPort(), "TEMPORAL_NAMESPACE=default")
	w.cmd.Env = append(w.cmd.Env, e.workerEnv...)
	w.cmd.Stdout, w.cmd.Stderr = w.log, w.log
	must(e.t, w.cmd.Start())
	go func() { _ = w.cmd.Wait(); close(w.done) }()
	e.t.Cleanup(func() {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.done:
		case <-time.After(15 * time.Second):
			_ = w.cmd.Process.Kill()
		}
		if e.t.Failed() {
			e.t.Logf("%s log:\n%s", label, w.log.String())
		}
	})
	return w
}

// apiProc is a running API server process.
type apiProc struct {
	*workerProc
	url string
}

// startAPI runs the API server with config on a free loopback port and
// waits until it is ready.
func (e *env) startAPI(config string) *apiProc {
	e.t.Helper()
	port, err := testservers.FreePort()
	must(e.t, err)
	a := &apiProc{workerProc: e.startProcess("API", "airlock-api", "--config", config, "--listen", testservers.HostPort(port)), url: "http://" + testservers.HostPort(port)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(a.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a
			}
		}
		select {
		case <-a.done:
			e.t.Fatalf("the API exited: %s", a.log.String())
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the API at %s was not ready within 30s (last: %v)\n%s", a.url, err, a.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill stops the worker the hard way, as a crash would.
func (w *workerProc) kill(t *testing.T) {
	t.Helper()
	must(t, w.cmd.Process.Signal(syscall.SIGKILL))
	<-w.done
}

// airlock runs the CLI and returns its stdout, stderr and exit code.
func airlock(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "airlock"), args...)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+devServer.FrontendHostPort(), "TEMPORAL_NAMESPACE=default")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running airlock %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// airlockOK runs the CLI and fails the test unless it exits 0.
func airlockOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := airlock(t, args...)
	if code != 0 {
		t.Fatalf("airlock %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func status(t *testing.T, id string) model.RequestStatus {
	t.Helper()
	var st model.RequestStatus
	must(t, json.Unmarshal([]byte(airlockOK(t, "status", id, "-o", "json")), &st))
	return st
}

// waitState polls until the request is in state (or fails after timeout).
func waitState(t *testing.T, id string, state model.State, timeout time.Duration) model.RequestStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := status(t, id)
		if st.State == state {
			return st
		}
		if st.State.Terminal() || time.Now().After(deadline) {
			t.Fatalf("request %s is %s (error %q), want %s", id, st.State, st.Error, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
