package testservers

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestVersityGW(t *testing.T) {
	g := VersityGW(t)
	if g.Process.Pid() <= 0 {
		t.Fatalf("pid %d", g.Process.Pid())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.CreateBucket(ctx, "airlock-test"); err != nil {
		t.Fatal(err)
	}
	if err := g.CreateBucket(ctx, "airlock-test"); err != nil {
		t.Fatalf("creating a bucket twice: %v", err)
	}
	c := g.Client()
	want := []byte("hello versitygw")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("airlock-test"), Key: aws.String("a/b.txt"), Body: bytes.NewReader(want)}); err != nil {
		t.Fatal(err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("airlock-test"), Key: aws.String("a/b.txt")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %q, %v", got, err)
	}
	// The posix backend keeps the object as a file under Dir.
	if disk, err := os.ReadFile(filepath.Join(g.Dir, "airlock-test", "a", "b.txt")); err != nil || !bytes.Equal(disk, want) {
		t.Fatalf("on disk: %q, %v", disk, err)
	}

	// Wrong credentials are refused: the gateway really checks signatures.
	bad := s3.New(s3.Options{Region: g.Region, BaseEndpoint: aws.String(g.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(g.AccessKey, g.SecretKey+"x", "")})
	if _, err := bad.ListBuckets(ctx, &s3.ListBucketsInput{}); err == nil {
		t.Fatal("a wrong secret key was accepted")
	}

	// Every start has its own credentials.
	g2 := VersityGW(t)
	if g2.AccessKey == g.AccessKey || g2.SecretKey == g.SecretKey || g2.Endpoint == g.Endpoint {
		t.Fatalf("two gateways share credentials or endpoint: %s %s", g.Endpoint, g2.Endpoint)
	}

	g.Stop()
	if _, err := os.Stat(g.Dir); !os.IsNotExist(err) {
		t.Fatalf("Stop left %s behind (%v)", g.Dir, err)
	}
	noRetry := func(o *s3.Options) { o.RetryMaxAttempts = 1 }
	if _, err := c.ListBuckets(ctx, &s3.ListBucketsInput{}, noRetry); err == nil {
		t.Fatal("the gateway still answers after Stop")
	}
}
