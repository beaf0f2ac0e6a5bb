package s3

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/testservers"
)

// One gateway serves the whole package; each test has its own bucket.
func TestMain(m *testing.M) {
	code := m.Run()
	testservers.StopSharedVersityGW()
	os.Exit(code)
}

// fixture is a bucket on the gateway, a client for it, and a connection
// whose credentials are secret references resolved from a fake environment.
type fixture struct {
	g      *testservers.VersityGWServer
	api    *s3.Client
	bucket string
	conn   model.Connection
	prov   *secrets.Provider
	ctx    context.Context
}

// newFixture creates a bucket for t; prefix is the connection's prefix.
func newFixture(t *testing.T, prefix string) *fixture {
	t.Helper()
	g := testservers.SharedVersityGW(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	bucket := g.TestBucket(t, ctx, "t")
	env := map[string]string{
		secrets.EnvVar("s3-access"): g.AccessKey,
		secrets.EnvVar("s3-secret"): g.SecretKey,
	}
	url := "s3://" + bucket
	if prefix != "" {
		url += "/" + prefix
	}
	return &fixture{
		g:      g,
		api:    g.Client(),
		bucket: bucket,
		ctx:    ctx,
		prov:   &secrets.Provider{NoEnv: false, Getenv: func(k string) string { return env[k] }},
		conn: model.Connection{
			Type:      model.ConnS3,
			Name:      "src",
			URL:       url,
			Endpoint:  g.Endpoint,
			PathStyle: true,
			Credentials: model.Credentials{
				AccessKeyIDKey:     "s3-access",
				SecretAccessKeyKey: "s3-secret",
			},
		},
	}
}

func (f *fixture) put(t *testing.T, key string, data []byte) {
	t.Helper()
	_, err := f.api.PutObject(f.ctx, &s3.PutObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (f *fixture) get(t *testing.T, key string) []byte {
	t.Helper()
	out, err := f.api.GetObject(f.ctx, &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b
}

// uploads lists the multipart uploads in progress in the bucket, as key → ids.
func (f *fixture) uploads(t *testing.T) map[string][]string {
	t.Helper()
	out, err := f.api.ListMultipartUploads(f.ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(f.bucket)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for _, u := range out.Uploads {
		m[aws.ToString(u.Key)] = append(m[aws.ToString(u.Key)], aws.ToString(u.UploadId))
	}
	return m
}

// randomBytes returns n reproducible pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}
