// Command dev runs Airlock for development on one machine: the Temporal dev
// server (pinned CLI, SQLite under .airlock/, Airlock's search attributes
// registered, Temporal UI), an S3 server (versitygw) and an Azure Blob
// emulator (Azurite) seeded with the sample data, an Airlock worker and the
// Airlock API and web console, both with deploy/dev/airlock.yaml (whose API
// signs people in as the directory's development users). Ctrl-C stops
// everything it started.
//
//	make dev            # or: go run ./deploy/dev
//
// The object stores listen on fixed ports so that the example data sources
// in examples/datasources can name them: versitygw on 127.0.0.1:7070 and
// Azurite's blob service on 127.0.0.1:10000. If a port is taken, a free one
// is used instead and the runner says which example endpoint to edit. Their
// data lives in .airlock/s3 and .airlock/azurite and persists across
// restarts. Their development credentials are fixed values (versitygw's root
// keys below, Azurite's published account key) that the runner writes into
// .airlock/secrets/<key>, the worker's secrets.dir, so that the examples
// name them by key only. The actual endpoints go into .airlock/env.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/testservers"
	"github.com/airlockhq/airlock/workflows"
)

// The development object stores' fixed settings. The example data sources
// (examples/datasources/s3.yaml, azureblob.yaml) name these endpoints and
// secret keys; change them together.
const (
	defaultS3Port      = 7070
	defaultAzuritePort = 10000
	// devS3AccessKey and devS3SecretKey are versitygw's root credentials
	// in development. They protect nothing: the gateway listens on
	// loopback only and serves .airlock/s3.
	devS3AccessKey = "airlock-dev"
	devS3SecretKey = "airlock-dev-secret-key-for-local-use-only"
	// Secret keys, files in .airlock/secrets, that the examples refer to.
	s3AccessKeyIDKey     = "dev-s3-access-key-id"
	s3SecretAccessKeyKey = "dev-s3-secret-access-key"
	azuriteAccountKeyKey = "dev-azurite-account-key"
	// egressSigningKeyKey is the secret holding the key release manifests
	// are signed with (deploy/dev/airlock.yaml egress.signingKey), and
	// egressPublicKeyFile where its public key is written for verifiers.
	egressSigningKeyKey = "airlock-egress-signing-key"
	egressPublicKeyFile = "egress-signing-key.pub.pem"
	// sampleBucket is both the S3 bucket and the Azure container seeded
	// with examples/sample-data/clinic under samplePrefix.
	sampleBucket = "sample-data"
	samplePrefix = "clinic/"
	sampleDir    = "examples/sample-data/clinic"
)

func main() {
	port := flag.Int("port", 7233, "Temporal frontend port (a free one is chosen if it is taken)")
	uiPort := flag.Int("ui-port", 8233, "Temporal UI port (a free one is chosen if it is taken)")
	s3Port := flag.Int("s3-port", defaultS3Port, "versitygw (S3) port; examples/datasources/s3.yaml names 7070 (a free one is chosen if it is taken)")
	azuritePort := flag.Int("azurite-port", defaultAzuritePort, "Azurite blob port; examples/datasources/azureblob.yaml names 10000 (a free one is chosen if it is taken)")
	apiPort := flag.Int("api-port", 8080, "Airlock API and console port (a free one is chosen if it is taken)")
	config := flag.String("config", "deploy/dev/airlock.yaml", "worker and API config")
	flag.Parse()
	// .airlock/ holds the dev servers' data, logs, secrets and binaries;
	// the stores are wherever the worker config puts them (.airlock/ too).
	if err := run(ports{*port, *uiPort, *s3Port, *azuritePort, *apiPort}, *config, ".airlock"); err != nil {
		fmt.Fprintln(os.Stderr, "airlock dev:", err)
		os.Exit(1)
	}
}

type ports struct{ temporal, ui, s3, azurite, api int }

func run(want ports, config, state string) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the repository's top folder (where go.mod is): make dev")
	}
	if err := step("installing pinned tools (temporal)", exec.Command("deploy/tools/install.sh", "temporal")); err != nil {
		return err
	}
	// The object stores and dlt are needed only by the examples that use
	// them: without one, make dev still runs and says what is missing.
	var missing []string
	optional := func(tool, needs string) bool {
		if err := step("installing pinned tools ("+tool+")", exec.Command("deploy/tools/install.sh", tool)); err != nil {
			missing = append(missing, fmt.Sprintf("%s: %v; %s will not run (fix the install, then run deploy/tools/install.sh %s)", tool, err, needs, tool))
			return false
		}
		return true
	}
	haveS3 := optional("versitygw", "examples/datasources/s3.yaml")
	haveAzurite := optional("azurite", "examples/datasources/azureblob.yaml")
	optional("dlt", "examples/datasources/dlt-filesystem.yaml")
	temporalCLI, err := testservers.Tool("temporal")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(state, "bin"), 0o755); err != nil {
		return err
	}
	if err := writeDevSecrets(filepath.Join(state, "secrets")); err != nil {
		return err
	}
	signingKeyID, err := ensureSigningKey(filepath.Join(state, "secrets"), filepath.Join(state, egressPublicKeyFile))
	if err != nil {
		return err
	}
	got := ports{temporal: freeOr(want.temporal), ui: freeOr(want.ui), api: freeOr(want.api)}
	addr := testservers.HostPort(got.temporal)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The servers start together, and start up while the worker and the
	// CLI are built (Azurite takes seconds); each is waited for below.
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(got.temporal),
		"--ui-port", strconv.Itoa(got.ui), "--db-filename", filepath.Join(state, "temporal.db"),
		"--log-level", "warn", "--namespace", "default"}
	args = append(args, workflows.DevServerSearchAttributeArgs()...)
	server, err := startLogged("Temporal dev server", filepath.Join(state, "temporal.log"), nil, temporalCLI, args...)
	if err != nil {
		return err
	}
	defer server.terminate()

	var s3srv, azsrv *child
	var gw *testservers.VersityGWServer
	var az *testservers.AzuriteServer
	if haveS3 {
		got.s3 = freeOr(want.s3)
		if s3srv, gw, err = startVersityGW(state, got.s3); err != nil {
			return err
		}
		defer s3srv.terminate()
	}
	if haveAzurite {
		got.azurite = freeOr(want.azurite)
		if azsrv, az, err = startAzurite(state, got.azurite); err != nil {
			return err
		}
		defer azsrv.terminate()
	}

	workerBin := filepath.Join(state, "bin", "airlock-worker")
	if err := step("building the worker", exec.Command("go", "build", "-o", workerBin, "./workers")); err != nil {
		return err
	}
	apiBin := filepath.Join(state, "bin", "airlock-api")
	if err := step("building the API server", exec.Command("go", "build", "-o", apiBin, "./api")); err != nil {
		return err
	}
	if err := step("building the airlock CLI into bin/airlock", exec.Command("go", "build", "-o", "bin/airlock", "./starter")); err != nil {
		return err
	}

	if err := server.waitUntil(ctx, 90*time.Second, temporalReady(addr)); err != nil {
		return err
	}
	var seeded []string
	if s3srv != nil {
		if err := s3srv.waitUntil(ctx, 30*time.Second, func(ctx context.Context) error {
			_, err := gw.Client().ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		}); err != nil {
			return err
		}
		msg, err := seedS3(ctx, gw)
		if err != nil {
			return err
		}
		seeded = append(seeded, msg)
	}
	if azsrv != nil {
		// Creating the container is the readiness check: it needs the
		// service to answer, not just to accept connections.
		if err := azsrv.waitUntil(ctx, 60*time.Second, func(ctx context.Context) error {
			_, err := az.CreateContainer(ctx, sampleBucket)
			return err
		}); err != nil {
			return err
		}
		msg, err := seedAzurite(ctx, az)
		if err != nil {
			return err
		}
		seeded = append(seeded, msg)
	}

	worker, err := startLogged("worker", "", []string{"TEMPORAL_ADDRESS=" + addr, "TEMPORAL_NAMESPACE=default"}, workerBin, "--config", config)
	if err != nil {
		return err
	}
	defer worker.terminate()
	apiURL := "http://" + testservers.HostPort(got.api)
	apiSrv, err := startLogged("API", "", []string{"TEMPORAL_ADDRESS=" + addr, "TEMPORAL_NAMESPACE=default"}, apiBin,
		"--config", config, "--listen", testservers.HostPort(got.api), "--temporal-ui", fmt.Sprintf("http://127.0.0.1:%d", got.ui))
	if err != nil {
		return err
	}
	defer apiSrv.terminate()
	if err := apiSrv.waitUntil(ctx, 30*time.Second, httpReady(apiURL+"/readyz")); err != nil {
		return err
	}

	env := "export TEMPORAL_ADDRESS=" + addr + "\nexport TEMPORAL_NAMESPACE=default\nexport AIRLOCK_API=" + apiURL + "\n"
	if gw != nil {
		env += "export AIRLOCK_DEV_S3_ENDPOINT=" + gw.Endpoint + "\n"
	}
	if az != nil {
		env += "export AIRLOCK_DEV_AZURE_BLOB_URL=" + az.BlobEndpoint + "\n"
	}
	envFile := filepath.Join(state, "env")
	_ = os.WriteFile(envFile, []byte(env), 0o644)

	fmt.Printf(`
Airlock is running.
  Web console:      %s  (development sign-in: pick rita to upload, dana then ian to approve)
  API:              %s/api/v1/requests
  Temporal UI:      http://127.0.0.1:%d/namespaces/default/workflows
  Temporal server:  %s (namespace default; data in %s)
`, apiURL, apiURL, got.ui, addr, filepath.Join(state, "temporal.db"))
	if gw != nil {
		fmt.Printf("  S3 (versitygw):   %s, bucket %s (data in %s)\n", gw.Endpoint, sampleBucket, gw.Dir)
	}
	if az != nil {
		fmt.Printf("  Azure Blob:       %s, container %s (Azurite; data in %s)\n", az.BlobEndpoint, sampleBucket, az.Dir)
	}
	fmt.Printf("  Secrets:          %s (the examples name these keys: %s, %s, %s)\n", filepath.Join(state, "secrets"), s3AccessKeyIDKey, s3SecretAccessKeyKey, azuriteAccountKeyKey)
	fmt.Printf("  Egress signing:   key %s in %s (public key: %s)\n", signingKeyID, filepath.Join(state, "secrets", egressSigningKeyKey), filepath.Join(state, egressPublicKeyFile))
	fmt.Printf("  Worker config:    %s\n", config)
	for _, s := range seeded {
		fmt.Printf("  %s\n", s)
	}
	if gw != nil && got.s3 != want.s3 {
		portNote("versitygw", want.s3, got.s3, "examples/datasources/s3.yaml", "endpoint", "AIRLOCK_DEV_S3_ENDPOINT")
	}
	if az != nil && got.azurite != want.azurite {
		portNote("Azurite", want.azurite, got.azurite, "examples/datasources/azureblob.yaml", "url", "AIRLOCK_DEV_AZURE_BLOB_URL")
	}
	for _, m := range missing {
		fmt.Printf("\nNOT AVAILABLE: %s\n", m)
	}
	fmt.Printf(`
In another terminal:
  source %s        # sets TEMPORAL_ADDRESS for the CLI
  bin/airlock import -f examples/datasources/sample-file.yaml --as rita --wait
  bin/airlock import -f examples/datasources/s3.yaml --as rita --wait
  bin/airlock import -f examples/datasources/azureblob.yaml --as rita --wait
  bin/airlock import -f examples/datasources/dlt-filesystem.yaml --as rita --wait

Ctrl-C stops everything.
`, envFile)

	select {
	case <-ctx.Done():
		fmt.Println("\nstopping...")
		return nil
	case <-server.done:
		return server.exitError()
	case <-worker.done:
		return worker.exitError()
	case <-apiSrv.done:
		return apiSrv.exitError()
	case <-s3srv.exited():
		return s3srv.exitError()
	case <-azsrv.exited():
		return azsrv.exitError()
	}
}

// portNote says, loudly, that a store is not where the examples expect it.
func portNote(what string, wantPort, gotPort int, example, field, envVar string) {
	want, got := "http://"+testservers.HostPort(wantPort), "http://"+testservers.HostPort(gotPort)
	fmt.Printf(`
NOTE: port %d is taken, so %s listens on %s instead.
      To run %s, change %s to %s in its %s
      (.airlock/env has the endpoint as %s).
`, wantPort, what, got, example, want, got, field, envVar)
}

// writeDevSecrets writes the development stores' credentials into dir, one
// file per key, as the worker's secrets.dir expects.
func writeDevSecrets(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the dev secrets folder: %w", err)
	}
	for key, value := range map[string]string{
		s3AccessKeyIDKey:     devS3AccessKey,
		s3SecretAccessKeyKey: devS3SecretKey,
		azuriteAccountKeyKey: testservers.AzuriteAccountKey,
	} {
		if err := os.WriteFile(filepath.Join(dir, key), []byte(value+"\n"), 0o600); err != nil {
			return fmt.Errorf("writing the dev secret %s: %w", key, err)
		}
	}
	return nil
}

// ensureSigningKey makes the development key that release manifests are
// signed with, in the secrets folder, unless one is there already (a key
// kept across restarts keeps earlier releases verifiable), and writes its
// public key to pubFile for verifiers. It returns the key's id.
func ensureSigningKey(secretsDir, pubFile string) (string, error) {
	keyFile := filepath.Join(secretsDir, egressSigningKeyKey)
	privPEM, err := os.ReadFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		if privPEM, _, err = releasemanifest.GenerateKey(); err != nil {
			return "", err
		}
		// O_EXCL: never overwrite a key that appeared meanwhile.
		f, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", fmt.Errorf("writing the egress signing key: %w", err)
		}
		_, werr := f.Write(privPEM)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			os.Remove(keyFile)
			return "", fmt.Errorf("writing the egress signing key %s: %w", keyFile, werr)
		}
	} else if err != nil {
		return "", fmt.Errorf("reading the egress signing key: %w", err)
	}
	priv, err := releasemanifest.ParsePrivateKey(privPEM)
	if err != nil {
		return "", fmt.Errorf("%s: %w (delete the file and run make dev again to make a new key; releases signed with the old key then no longer verify with the new public key)", keyFile, err)
	}
	pubPEM, err := releasemanifest.PublicKeyPEM(priv)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(pubFile, pubPEM, 0o644); err != nil {
		return "", fmt.Errorf("writing the egress public key: %w", err)
	}
	return releasemanifest.KeyID(priv.Public().(ed25519.PublicKey)), nil
}

// startVersityGW starts versitygw on 127.0.0.1:port serving state/s3, with
// the fixed development root credentials.
func startVersityGW(state string, port int) (*child, *testservers.VersityGWServer, error) {
	bin, err := testservers.Tool(testservers.VersityGWTool)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(state, "s3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("creating versitygw's data folder: %w", err)
	}
	// Only Endpoint, keys, Region and Dir are set: its Client and
	// CreateBucket are used. Never call its Stop: it would delete Dir.
	gw := &testservers.VersityGWServer{
		Endpoint:  "http://" + testservers.HostPort(port),
		AccessKey: devS3AccessKey,
		SecretKey: devS3SecretKey,
		Region:    testservers.VersityGWRegion,
		Dir:       dir,
	}
	// The root credentials go through the environment, not the command
	// line, like testservers does.
	c, err := startLogged("S3 server (versitygw)", filepath.Join(state, "versitygw.log"),
		[]string{"ROOT_ACCESS_KEY_ID=" + gw.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + gw.SecretKey},
		bin, "--port", testservers.HostPort(port), "--region", gw.Region, "--quiet", "posix", dir)
	return c, gw, err
}

// startAzurite starts Azurite's blob service on 127.0.0.1:port keeping its
// data in state/azurite.
func startAzurite(state string, port int) (*child, *testservers.AzuriteServer, error) {
	bin, err := testservers.Tool(testservers.AzuriteTool)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(state, "azurite")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("creating Azurite's data folder: %w", err)
	}
	endpoint := "http://" + testservers.HostPort(port) + "/" + testservers.AzuriteAccountName
	// Its ContainerClient and CreateContainer are used. Never call its
	// Stop: it would delete Dir.
	az := &testservers.AzuriteServer{
		Addr:         testservers.HostPort(port),
		BlobEndpoint: endpoint,
		AccountName:  testservers.AzuriteAccountName,
		AccountKey:   testservers.AzuriteAccountKey,
		ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + testservers.AzuriteAccountName +
			";AccountKey=" + testservers.AzuriteAccountKey + ";BlobEndpoint=" + endpoint + ";",
		Dir: dir,
	}
	c, err := startLogged("Azure Blob emulator (Azurite)", filepath.Join(state, "azurite.log"), nil, bin,
		"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port), "--location", dir,
		"--skipApiVersionCheck", "--disableTelemetry", "--disableProductStyleUrl", "--loose", "--silent")
	return c, az, err
}

// sampleFiles lists the files of examples/sample-data/clinic, by name.
func sampleFiles() ([]string, error) {
	entries, err := os.ReadDir(sampleDir)
	if err != nil {
		return nil, fmt.Errorf("reading the sample data: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// seedS3 creates the sample bucket and uploads the sample files that are
// not there yet; objects already there are left as they are.
func seedS3(ctx context.Context, gw *testservers.VersityGWServer) (string, error) {
	if err := gw.CreateBucket(ctx, sampleBucket); err != nil {
		return "", err
	}
	names, err := sampleFiles()
	if err != nil {
		return "", err
	}
	cl := gw.Client()
	added := 0
	for _, name := range names {
		key := samplePrefix + name
		_, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(sampleBucket), Key: aws.String(key)})
		var nf *types.NotFound
		switch {
		case err == nil:
			continue
		case !errors.As(err, &nf):
			return "", fmt.Errorf("seeding s3://%s/%s: %w", sampleBucket, key, err)
		}
		f, err := os.Open(filepath.Join(sampleDir, name))
		if err != nil {
			return "", err
		}
		_, err = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(sampleBucket), Key: aws.String(key), Body: f})
		f.Close()
		if err != nil {
			return "", fmt.Errorf("seeding s3://%s/%s: %w", sampleBucket, key, err)
		}
		added++
	}
	return seededMessage("bucket", gw.Endpoint, added, len(names)), nil
}

// seedAzurite uploads the sample files that are not in the sample container
// yet (which the readiness check created); blobs already there are kept.
func seedAzurite(ctx context.Context, az *testservers.AzuriteServer) (string, error) {
	cc, err := az.ContainerClient(sampleBucket)
	if err != nil {
		return "", err
	}
	names, err := sampleFiles()
	if err != nil {
		return "", err
	}
	added := 0
	for _, name := range names {
		bb := cc.NewBlockBlobClient(samplePrefix + name)
		_, err := bb.GetProperties(ctx, nil)
		var re *azcore.ResponseError
		switch {
		case err == nil:
			continue
		case !errors.As(err, &re) || re.StatusCode != 404:
			return "", fmt.Errorf("seeding %s/%s/%s%s: %w", az.BlobEndpoint, sampleBucket, samplePrefix, name, err)
		}
		f, err := os.Open(filepath.Join(sampleDir, name))
		if err != nil {
			return "", err
		}
		_, err = bb.UploadFile(ctx, f, nil)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("seeding %s/%s/%s%s: %w", az.BlobEndpoint, sampleBucket, samplePrefix, name, err)
		}
		added++
	}
	return seededMessage("container", az.BlobEndpoint, added, len(names)), nil
}

func seededMessage(what, endpoint string, added, total int) string {
	return fmt.Sprintf("Seeded %s %s at %s with %s: %d added, %d already there",
		what, sampleBucket, endpoint, strings.TrimSuffix(samplePrefix, "/")+"/*", added, total-added)
}

func step(what string, cmd *exec.Cmd) error {
	fmt.Fprintf(os.Stderr, "%s...\n", what)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// freeOr returns port if nothing listens on it, or else a free port.
func freeOr(port int) int {
	if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
		l.Close()
		return port
	}
	if p, err := testservers.FreePort(); err == nil {
		return p
	}
	return port
}

// temporalReady succeeds once the Temporal server at addr answers a health check.
func temporalReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		c, err := client.Dial(client.Options{HostPort: addr, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}
}

// child is a process the runner started in its own process group.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string        // its log file, "" when it writes to the terminal
	done chan struct{} // closed when it has exited; err is then set
	err  error
}

// startLogged starts bin in its own process group (so terminate reaches its
// children too), with env added to the runner's environment and its output
// in logFile, or on the terminal when logFile is "".
func startLogged(name, logFile string, env []string, bin string, args ...string) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child keeps its own descriptor
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() { c.err = cmd.Wait(); close(c.done) }()
	return c, nil
}

// exited is closed when c has exited; it is nil (never ready) for a child
// that was not started.
func (c *child) exited() <-chan struct{} {
	if c == nil {
		return nil
	}
	return c.done
}

// exitError describes an unexpected exit, pointing at the log.
func (c *child) exitError() error {
	if c.log != "" {
		return fmt.Errorf("the %s stopped: %v (see %s)", c.name, c.err, c.log)
	}
	return fmt.Errorf("the %s stopped: %v", c.name, c.err)
}

// waitUntil polls ready until it succeeds, the child exits, ctx ends or
// timeout passes.
func (c *child) waitUntil(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	fmt.Fprintf(os.Stderr, "waiting for the %s...\n", c.name)
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("the %s exited during start-up: %v (see %s)", c.name, c.err, c.log)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = ready(cctx)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("the %s did not become ready within %s: %v (see %s)", c.name, timeout, last, c.log)
}

// terminate stops the child's process group: SIGTERM, then SIGKILL after 10s.
func (c *child) terminate() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		fmt.Fprintf(os.Stderr, "the %s did not stop in 10s; killing it\n", c.name)
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// httpReady succeeds once url answers 200.
func httpReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s answered %s", url, resp.Status)
		}
		return nil
	}
}
