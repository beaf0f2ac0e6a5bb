package testservers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// VersityGWTool is the versitygw binary deploy/tools/install.sh installs
// (v1.8.0): an S3 gateway that serves a local folder, our real S3 server.
const VersityGWTool = "versitygw"

// VersityGWRegion is the region the gateway is started with and signs for.
const VersityGWRegion = "us-east-1"

// VersityGWServer is a versitygw gateway running with its posix backend on a
// temporary folder: every top-level folder is a bucket.
type VersityGWServer struct {
	// Endpoint is the gateway's URL, http://127.0.0.1:PORT.
	Endpoint string
	// AccessKey and SecretKey are the root account's credentials, generated
	// at random for each start.
	AccessKey string
	SecretKey string
	// Region is the region requests must be signed for.
	Region string
	// Dir is the folder the posix backend serves.
	Dir string
	// Process is the gateway's child process (Pid, Output).
	Process *Process
}

// StartVersityGW starts a gateway on a free loopback port over a new
// temporary folder. Stop ends it and removes the folder.
func StartVersityGW() (*VersityGWServer, error) {
	bin, err := Tool(VersityGWTool)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "airlock-versitygw-")
	if err != nil {
		return nil, fmt.Errorf("versitygw: temporary folder: %w", err)
	}
	port, err := FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("versitygw: free port: %w", err)
	}
	g := &VersityGWServer{
		Endpoint:  "http://" + HostPort(port),
		AccessKey: "airlock" + randomHex(8),
		SecretKey: randomHex(20),
		Region:    VersityGWRegion,
		Dir:       dir,
	}
	args := []string{"--port", HostPort(port), "--region", g.Region, "--quiet", "posix", dir}
	// The root credentials go through the environment, not the command
	// line, so that they do not show in process listings.
	env := []string{"ROOT_ACCESS_KEY_ID=" + g.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + g.SecretKey}
	p, err := StartProcess("versitygw", bin, args, env, g.ready, 20*time.Second)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	g.Process = p
	return g, nil
}

// VersityGW starts a gateway for t and stops it when t ends. Without the
// tool it skips t (fails it under CI=true), as Unavailable does.
func VersityGW(t testing.TB) *VersityGWServer {
	t.Helper()
	if _, err := Tool(VersityGWTool); err != nil {
		Unavailable(t, err)
	}
	g, err := StartVersityGW()
	if err != nil {
		t.Fatalf("starting versitygw: %v", err)
	}
	t.Cleanup(g.Stop)
	return g
}

// shared is the one gateway a test binary's SharedVersityGW calls share.
var shared struct {
	once    sync.Once
	g       *VersityGWServer
	err     error
	buckets atomic.Int32
}

// SharedVersityGW starts one gateway for the whole test binary on first
// use and returns it; StopSharedVersityGW (from TestMain) stops it. Without
// the tool it skips t (fails it under CI=true), as Unavailable does.
func SharedVersityGW(t testing.TB) *VersityGWServer {
	t.Helper()
	if _, err := Tool(VersityGWTool); err != nil {
		Unavailable(t, err)
	}
	shared.once.Do(func() { shared.g, shared.err = StartVersityGW() })
	if shared.err != nil {
		t.Fatalf("starting versitygw: %v", shared.err)
	}
	return shared.g
}

// StopSharedVersityGW stops the gateway SharedVersityGW started, if any.
func StopSharedVersityGW() {
	if shared.g != nil {
		shared.g.Stop()
	}
}

var nonBucketChars = regexp.MustCompile(`[^a-z0-9]+`)

// TestBucket creates a bucket of t's own on the gateway, named after the
// test (prefix, a counter, then the test's name) so that tests sharing a
// gateway never meet.
func (g *VersityGWServer) TestBucket(t testing.TB, ctx context.Context, prefix string) string {
	t.Helper()
	name := strings.Trim(nonBucketChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(name) > 40 {
		name = strings.Trim(name[:40], "-")
	}
	bucket := fmt.Sprintf("%s%d-%s", prefix, shared.buckets.Add(1), name)
	if err := g.CreateBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	return bucket
}

// ready succeeds once the gateway answers an authenticated ListBuckets.
func (g *VersityGWServer) ready(ctx context.Context) error {
	if err := DialReady(g.Endpoint[len("http://"):])(ctx); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := g.Client().ListBuckets(cctx, &s3.ListBucketsInput{})
	return err
}

// Stop ends the gateway and removes its folder.
func (g *VersityGWServer) Stop() {
	if g.Process != nil {
		g.Process.Stop()
	}
	os.RemoveAll(g.Dir)
}

// Client returns an S3 client for the gateway, signed with the root
// credentials and using path-style addressing.
func (g *VersityGWServer) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       g.Region,
		BaseEndpoint: aws.String(g.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(g.AccessKey, g.SecretKey, ""),
	})
}

// CreateBucket creates bucket; one that already exists is not an error.
func (g *VersityGWServer) CreateBucket(ctx context.Context, bucket string) error {
	_, err := g.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if errors.As(err, &owned) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("versitygw %s: create bucket %q: %w", g.Endpoint, bucket, err)
	}
	return nil
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}
