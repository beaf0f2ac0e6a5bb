package main

// `bench upload` (make bench-upload) is the upload benchmark: it uploads one
// large file of random bytes (1 GiB by default) through the real API server
// on loopback, the way a client does (tus: create, then PATCH), into a local
// staging folder, and copies the same file with cp on the same disk, in the
// same run, interleaved. It reports each one's MB/s and Airlock's ratio to
// cp.
//
// Everything is real: a Temporal dev server (the pinned CLI), the worker and
// the API binaries built from this tree, an upload request created through
// the API (development sign-in, on loopback). Each upload's staged bytes are
// checked against the file's SHA-256: wrong bytes fail the bench.
//
//	go run ./bench upload [-size 1GiB] [-runs 3] [-chunk 0] [-dir /tmp]
//
// -chunk 0 sends each file in one PATCH (a Go or curl client); -chunk 8MiB
// sends 8 MiB PATCHes, as the web console's page does.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/airlockhq/airlock/testservers"
	"github.com/airlockhq/airlock/workflows"
)

// uploadCmd is the subcommand that runs the upload benchmark.
const uploadCmd = "upload"

// runUploadBench is `bench upload`.
func runUploadBench(args []string) int {
	fs := flag.NewFlagSet(uploadCmd, flag.ContinueOnError)
	size, chunk := int64(1<<30), int64(0)
	fs.Var(sizeFlag{&size}, "size", "size of the file to upload (KiB, MiB, GiB)")
	runs := fs.Int("runs", 3, "runs of each contender, interleaved")
	fs.Var(sizeFlag{&chunk}, "chunk", "PATCH size (0: the whole file in one PATCH; 8MiB: like the web console)")
	dir := fs.String("dir", os.TempDir(), "folder for the file, the copies and the servers' data (one disk for all)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := uploadBench(size, chunk, *runs, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench upload:", err)
		return 1
	}
	return 0
}

func uploadBench(size, chunk int64, runs int, base string) error {
	work, err := os.MkdirTemp(base, "airlock-upload-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	fmt.Fprintf(os.Stderr, "writing %d bytes of random data...\n", size)
	src := filepath.Join(work, "payload.bin")
	want, err := makeRandomFile(src, size)
	if err != nil {
		return err
	}

	ctx := context.Background()
	cli, err := testservers.Tool("temporal")
	if err != nil {
		return err
	}
	var saArgs []string
	saArgs = append(saArgs, workflows.DevServerSearchAttributeArgs()...)
	dev, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: cli, LogLevel: "error", ExtraArgs: saArgs,
		ClientOptions: &client.Options{Namespace: "default", Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))},
		Stdout:        io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		return fmt.Errorf("starting the Temporal dev server: %w", err)
	}
	defer dev.Stop()

	bin := filepath.Join(work, "bin")
	for name, pkg := range map[string]string{"airlock-worker": "./workers", "airlock-api": "./api"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("building %s (run from the repository's top folder): %v\n%s", pkg, err, out)
		}
	}
	port, err := testservers.FreePort()
	if err != nil {
		return err
	}
	listen := testservers.HostPort(port)
	cfgPath := filepath.Join(work, "airlock.yaml")
	policy, err := os.ReadFile("examples/policies/standard-upload.yaml")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "standard-upload.yaml"), policy, 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`stores:
  staging: {path: staging}
  workspaces: {path: workspaces}
policies:
  files: [standard-upload.yaml]
  rules:
  - {project: "*", kind: upload, policies: [standard-upload]}
directory:
  users:
    bench: [researcher]
uploads:
  maxFileSize: %d
  expireAfter: 1h
api:
  listen: %s
  auth:
    mode: dev
    grants:
    - {role: researcher, capabilities: ["upload:*", "read:own"]}
`, size, listen)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	env := []string{"TEMPORAL_ADDRESS=" + dev.FrontendHostPort(), "TEMPORAL_NAMESPACE=default"}
	worker, err := testservers.StartProcess("worker", filepath.Join(bin, "airlock-worker"), []string{"--config", cfgPath}, env, func(context.Context) error { return nil }, time.Second)
	if err != nil {
		return err
	}
	defer worker.Stop()
	apiURL := "http://" + listen
	api, err := testservers.StartProcess("api", filepath.Join(bin, "airlock-api"), []string{"--config", cfgPath}, env, func(ctx context.Context) error {
		resp, err := http.Get(apiURL + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	}, 60*time.Second)
	if err != nil {
		return err
	}
	defer api.Stop()

	var airlock, cp []float64
	for i := 0; i < runs; i++ {
		secs, err := uploadOnce(apiURL, src, size, chunk, filepath.Join(work, "staging"), want)
		if err != nil {
			return fmt.Errorf("upload run %d: %w\nAPI log:\n%s", i+1, err, api.Output())
		}
		airlock = append(airlock, float64(size)/secs/1e6)
		fmt.Fprintf(os.Stderr, "run %d: airlock upload %.1f MB/s\n", i+1, airlock[i])
		secs, err = cpOnce(src, filepath.Join(work, "cp-copy.bin"))
		if err != nil {
			return err
		}
		cp = append(cp, float64(size)/secs/1e6)
		fmt.Fprintf(os.Stderr, "run %d: cp %.1f MB/s\n", i+1, cp[i])
	}
	how := "one PATCH per file"
	if chunk > 0 {
		how = fmt.Sprintf("%d MiB PATCHes", chunk>>20)
	}
	fmt.Printf("\nUpload benchmark: %s file, %d interleaved runs each, loopback, one disk (%s); MB = 10^6 B\n", formatSize(size), runs, work)
	fmt.Printf("%-40s %10s %10s\n", "contender", "best MB/s", "median")
	fmt.Printf("%-40s %10.1f %10.1f\n", "airlock API upload ("+how+")", best(airlock), median(airlock))
	fmt.Printf("%-40s %10.1f %10.1f\n", "cp (same file, same disk)", best(cp), median(cp))
	fmt.Printf("ratio airlock/cp: best %.2f, median %.2f\n", best(airlock)/best(cp), median(airlock)/median(cp))
	return nil
}

// uploadOnce creates an upload request, uploads the file with tus and
// returns the seconds from the tus creation to the last byte acknowledged
// (the request's creation, a Temporal workflow start, is not timed). It
// checks the staged file's SHA-256.
func uploadOnce(apiURL, src string, size, chunk int64, staging, want string) (float64, error) {
	body := `{"project":"bench","workspace":"ws-bench","display_name":"Upload benchmark","description":"random bytes","license":"none","publisher":{"organisation":"Airlock","contact":{"name":"bench","role":"benchmark"}}}`
	var created struct {
		ID string `json:"id"`
	}
	if err := call(http.MethodPost, apiURL+"/api/v1/uploads", "application/json", strings.NewReader(body), nil, http.StatusCreated, &created); err != nil {
		return 0, fmt.Errorf("creating the upload request: %w", err)
	}
	meta := "request " + base64.StdEncoding.EncodeToString([]byte(created.ID)) + ",filename " + base64.StdEncoding.EncodeToString([]byte("payload.bin"))
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, apiURL+"/api/v1/files/", nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Metadata", meta)
	req.Header.Set("X-Airlock-Dev-User", "bench")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("tus creation: %s: %s", resp.Status, msg)
	}
	loc, err := resp.Location()
	if err != nil {
		return 0, err
	}
	step := chunk
	if step <= 0 {
		step = size
	}
	for off := int64(0); off < size; off += step {
		n := min(step, size-off)
		req, _ := http.NewRequest(http.MethodPatch, loc.String(), io.NewSectionReader(f, off, n))
		req.ContentLength = n
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
		req.Header.Set("X-Airlock-Dev-User", "bench")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return 0, fmt.Errorf("PATCH at %d: %s: %s", off, resp.Status, msg)
		}
	}
	secs := time.Since(start).Seconds()
	got, _, err := fileSHA256(filepath.Join(staging, created.ID, "payload.bin"))
	if err != nil {
		return 0, fmt.Errorf("reading the staged file: %w", err)
	}
	if got != want {
		return 0, fmt.Errorf("the staged file has sha256 %s, want %s", got, want)
	}
	// Cancel the request so its staging area is removed before the next run.
	_ = call(http.MethodPost, apiURL+"/api/v1/requests/"+created.ID+"/cancel", "application/json", strings.NewReader(`{"reason":"benchmark run done"}`), nil, http.StatusOK, nil)
	return secs, nil
}

func call(method, url, ctype string, body io.Reader, hdr http.Header, wantStatus int, out any) error {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("X-Airlock-Dev-User", "bench")
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// cpOnce copies src with cp and returns the seconds taken, with the copy
// flushed to disk (sync) as Airlock's local store flushes a committed file.
func cpOnce(src, dst string) (float64, error) {
	_ = os.Remove(dst)
	start := time.Now()
	if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("cp: %v: %s", err, out)
	}
	if out, err := exec.Command("sync", dst).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("sync: %v: %s", err, out)
	}
	secs := time.Since(start).Seconds()
	return secs, os.Remove(dst)
}

func best(xs []float64) float64 {
	b := 0.0
	for _, x := range xs {
		b = max(b, x)
	}
	return b
}
