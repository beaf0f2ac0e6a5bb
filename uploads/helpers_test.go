package uploads

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/localstore"
	s3store "github.com/airlockhq/airlock/connectors/s3"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/testservers"
)

const (
	mib      = 1 << 20
	basePath = "/api/v1/files/"
	reqID    = "upload-visits-ab12cd"
)

// One gateway serves the package's S3 tests; each test has its own bucket.
func TestMain(m *testing.M) {
	code := m.Run()
	testservers.StopSharedVersityGW()
	os.Exit(code)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newLocalStore is a local store in a temporary folder.
func newLocalStore(t *testing.T) *localstore.Store {
	t.Helper()
	st, err := localstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newS3Store is an S3 store on versitygw, in a bucket of its own, with
// parts of S3's smallest size (5 MiB), keeping its files under "staging/".
func newS3Store(t *testing.T) (*s3store.Store, string) {
	t.Helper()
	g := testservers.SharedVersityGW(t)
	ctx := testContext(t)
	bucket := g.TestBucket(t, ctx, "u")
	env := map[string]string{
		secrets.EnvVar("s3-access"): g.AccessKey,
		secrets.EnvVar("s3-secret"): g.SecretKey,
	}
	conn := model.Connection{
		Type:      model.ConnS3,
		Name:      "staging",
		URL:       "s3://" + bucket + "/staging",
		Endpoint:  g.Endpoint,
		PathStyle: true,
		Credentials: model.Credentials{
			AccessKeyIDKey:     "s3-access",
			SecretAccessKeyKey: "s3-secret",
		},
	}
	prov := &secrets.Provider{Getenv: func(k string) string { return env[k] }}
	st, err := s3store.NewStore(ctx, conn, prov, s3store.Options{PartSize: s3store.MinUploadPartSize, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	return st, bucket
}

// multipartUploads lists the multipart uploads in progress in bucket.
func multipartUploads(t *testing.T, bucket string) []string {
	t.Helper()
	out, err := testservers.SharedVersityGW(t).Client().ListMultipartUploads(testContext(t), &s3api.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for _, u := range out.Uploads {
		ks = append(ks, aws.ToString(u.Key))
	}
	return ks
}

// authorizer records the calls to Authorize and refuses what refuse says.
type authorizer struct {
	mu     sync.Mutex
	calls  []string // "METHOD requestID"
	refuse func(r *http.Request, requestID string) error
}

func (a *authorizer) authorize(r *http.Request, requestID string) error {
	a.mu.Lock()
	a.calls = append(a.calls, r.Method+" "+requestID)
	refuse := a.refuse
	a.mu.Unlock()
	if refuse != nil {
		return refuse(r, requestID)
	}
	return nil
}

func (a *authorizer) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.calls
	a.calls = nil
	return c
}

// server is a Handler served over real HTTP.
type server struct {
	h    *Handler
	srv  *httptest.Server
	auth *authorizer
	tus  *tusClient
}

// serve starts a Handler over st. The handler is closed when t ends.
func serve(t *testing.T, st connectors.Store, o Options) *server {
	t.Helper()
	a := &authorizer{}
	o.Store = st
	if o.BasePath == "" {
		o.BasePath = basePath
	}
	if o.Authorize == nil {
		o.Authorize = a.authorize
	}
	if o.Logger == nil && testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = time.Nanosecond // every part boundary, so tests see checkpoints
	}
	h, err := NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(basePath, h)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		if err := h.Close(); err != nil {
			t.Errorf("closing the handler: %v", err)
		}
	})
	return &server{h: h, srv: srv, auth: a, tus: &tusClient{t: t, base: srv.URL + basePath, c: srv.Client()}}
}

// crash stops s as a killed process would: the HTTP server goes away and
// the handler's writers are let go of without being made durable.
func (s *server) crash() {
	s.srv.CloseClientConnections()
	s.srv.Close()
	s.h.closeOnce.Do(func() {
		close(s.h.stop)
		<-s.h.stopped
		s.h.cancelBase()
	})
}

// tusClient speaks tus 1.0.0 by hand.
type tusClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

type reply struct {
	status int
	header http.Header
	body   string
}

// message is the refusal's message from its JSON body.
func (r reply) message() string {
	var e struct {
		Error struct {
			Status  int    `json:"status"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		return "(not a JSON error: " + r.body + ")"
	}
	return e.Error.Message
}

func (r reply) offset() int64 {
	n, err := strconv.ParseInt(r.header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func (c *tusClient) send(method, url string, hdr map[string]string, body io.Reader, length int64) (reply, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if body != nil {
		req.ContentLength = length
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

func (c *tusClient) must(method, url string, hdr map[string]string, body io.Reader, length int64) reply {
	c.t.Helper()
	r, err := c.send(method, url, hdr, body, length)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// metadata encodes tus Upload-Metadata, keys sorted.
func metadata(kv map[string]string) string {
	var parts []string
	for k, v := range kv {
		parts = append(parts, k+" "+base64.StdEncoding.EncodeToString([]byte(v)))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// create POSTs a creation with the given metadata and length.
func (c *tusClient) create(meta map[string]string, size int64) reply {
	c.t.Helper()
	return c.must("POST", c.base, map[string]string{
		"Upload-Length":   strconv.FormatInt(size, 10),
		"Upload-Metadata": metadata(meta),
	}, nil, 0)
}

// newUpload creates an upload of name in reqID and returns its URL.
func (c *tusClient) newUpload(name string, size int64) string {
	c.t.Helper()
	r := c.create(map[string]string{"request": reqID, "filename": name}, size)
	if r.status != http.StatusCreated {
		c.t.Fatalf("creating %s: %d %s", name, r.status, r.body)
	}
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, c.base+reqID+".") {
		c.t.Fatalf("creating %s: Location %q is not %s<request>.<hex>", name, loc, c.base)
	}
	return loc
}

func (c *tusClient) patch(url string, offset int64, data []byte) reply {
	c.t.Helper()
	return c.must("PATCH", url, map[string]string{
		"Upload-Offset": strconv.FormatInt(offset, 10),
		"Content-Type":  "application/offset+octet-stream",
	}, bytes.NewReader(data), int64(len(data)))
}

func (c *tusClient) head(url string) reply {
	c.t.Helper()
	return c.must("HEAD", url, nil, nil, 0)
}

// sendAll PATCHes data[from:] in chunks of chunk bytes, checking every
// answer's offset.
func (c *tusClient) sendAll(url string, data []byte, from int64, chunk int) {
	c.t.Helper()
	for off := from; off < int64(len(data)); {
		end := min(off+int64(chunk), int64(len(data)))
		r := c.patch(url, off, data[off:end])
		if r.status != http.StatusNoContent || r.offset() != end {
			c.t.Fatalf("PATCH %d..%d: %d offset %q %s", off, end, r.status, r.header.Get("Upload-Offset"), r.body)
		}
		off = end
	}
}

// resume finishes an upload as a tus client does after an interruption:
// ask the offset, send the rest; on 409 (the server was still taking the
// interrupted request) ask again. It returns the offset it resumed from.
func (c *tusClient) resume(url string, data []byte, chunk int) int64 {
	c.t.Helper()
	first := int64(-1)
	for attempt := 0; attempt < 20; attempt++ {
		h := c.head(url)
		if h.status != http.StatusOK {
			c.t.Fatalf("HEAD %s: %d", url, h.status)
		}
		off := h.offset()
		if first < 0 {
			first = off
		}
		if off == int64(len(data)) {
			return first
		}
		end := min(off+int64(chunk), int64(len(data)))
		r := c.patch(url, off, data[off:end])
		switch {
		case r.status == http.StatusConflict:
			time.Sleep(20 * time.Millisecond)
			continue
		case r.status != http.StatusNoContent:
			c.t.Fatalf("PATCH from %d: %d %s", off, r.status, r.body)
		}
		if end < int64(len(data)) {
			c.sendAll(url, data, end, chunk)
		}
		return first
	}
	c.t.Fatalf("resuming %s: the offset kept changing", url)
	return 0
}

// randomData is n reproducible random bytes.
func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
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

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// storedDigest is the SHA-256 of a committed file in st.
func storedDigest(t *testing.T, st connectors.Store, key string) (string, int64) {
	t.Helper()
	r, err := st.Open(testContext(t), key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// storedRecord reads an upload's bookkeeping straight from the store.
func storedRecord(t *testing.T, st connectors.Store, uploadURL string) record {
	t.Helper()
	id := uploadURL[strings.LastIndex(uploadURL, "/")+1:]
	r, err := st.Open(testContext(t), reqID+"/.uploads/"+id+".json")
	if err != nil {
		t.Fatalf("reading the record of %s: %v", id, err)
	}
	defer r.Close()
	var rec record
	if err := json.NewDecoder(r).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// keys lists the committed keys under prefix.
func keys(t *testing.T, st connectors.Store, prefix string) []string {
	t.Helper()
	infos, err := st.List(testContext(t), prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

// failingReader yields data up to n bytes, then fails: a client whose
// connection drops part-way through a PATCH.
type failingReader struct {
	data []byte
	n    int
	pos  int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.pos >= f.n {
		return 0, fmt.Errorf("connection dropped after %d bytes", f.n)
	}
	k := copy(p[:min(len(p), f.n-f.pos)], f.data[f.pos:])
	f.pos += k
	return k, nil
}
