package s3

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/airlockhq/airlock/model"
)

// countingTransport measures how many requests of each kind run at once.
type countingTransport struct {
	mu      sync.Mutex
	active  map[string]int
	maxSeen map[string]int
	total   map[string]int
}

func newCountingClient() (*http.Client, *countingTransport) {
	ct := &countingTransport{active: map[string]int{}, maxSeen: map[string]int{}, total: map[string]int{}}
	return &http.Client{Transport: ct}, ct
}

// kind names a request: "upload-part", "ranged-get", or method and nothing else.
func kind(r *http.Request) string {
	switch {
	case r.Method == http.MethodPut && r.URL.Query().Has("partNumber"):
		return "upload-part"
	case r.Method == http.MethodGet && r.Header.Get("Range") != "":
		return "ranged-get"
	}
	return r.Method
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	k := kind(r)
	c.mu.Lock()
	c.active[k]++
	c.total[k]++
	c.maxSeen[k] = max(c.maxSeen[k], c.active[k])
	c.mu.Unlock()
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || k != "ranged-get" {
		c.done(k)
		return resp, err
	}
	// A GET is active until its body is read and closed.
	resp.Body = &doneBody{ReadCloser: resp.Body, done: func() { c.done(k) }}
	return resp, nil
}

func (c *countingTransport) done(k string) {
	c.mu.Lock()
	c.active[k]--
	c.mu.Unlock()
}

func (c *countingTransport) stats(k string) (maxSeen, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.maxSeen[k], c.total[k]
}

type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// TestConcurrencyIsBounded checks, at the HTTP level, that writes upload
// at most Concurrency parts at once and reads run at most Concurrency
// ranged GETs at once, while still using more than one.
func TestConcurrencyIsBounded(t *testing.T) {
	f := newFixture(t, "")
	client, ct := newCountingClient()
	const conc = 3
	st, err := NewStore(f.ctx, f.conn, f.prov, Options{PartSize: MinUploadPartSize, Concurrency: conc, HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(40*mib+5, 20)
	write(t, f, st, "big.bin", data)
	maxUp, totalUp := ct.stats("upload-part")
	t.Logf("upload parts: %d in all, at most %d at once (concurrency %d)", totalUp, maxUp, conc)
	if totalUp != 9 || maxUp > conc || maxUp < 2 {
		t.Errorf("upload parts: %d in all (want 9), at most %d at once (want 2..%d)", totalUp, maxUp, conc)
	}

	src, err := New(f.ctx, f.conn, f.prov, Options{PartSize: 1 * mib, Concurrency: conc, HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	items, err := src.List(f.ctx, model.Object{File: &model.FileObject{Path: "big.bin"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := src.Open(f.ctx, items[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	// Read slowly, in small pieces, so fetches pile up if they can.
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("bytes differ")
	}
	maxGet, totalGet := ct.stats("ranged-get")
	t.Logf("ranged GETs: %d in all, at most %d at once (concurrency %d)", totalGet, maxGet, conc)
	if totalGet != 41 || maxGet > conc || maxGet < 2 {
		t.Errorf("ranged GETs: %d in all (want 41), at most %d at once (want 2..%d)", totalGet, maxGet, conc)
	}
}

func TestDeletePrefixInBatches(t *testing.T) {
	f := newFixture(t, "s")
	defer func(n int) { deleteBatch = n }(deleteBatch)
	deleteBatch = 2
	st := newStore(t, f, 2)
	for _, k := range []string{"p/a", "p/b", "p/c/d", "p/c/e", "p/f", "p-2/keep"} {
		write(t, f, st, k, []byte(k))
	}
	if err := st.DeletePrefix(f.ctx, "p"); err != nil {
		t.Fatal(err)
	}
	l, err := st.List(f.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(l); got != "p-2/keep" {
		t.Fatalf("after deleting p in batches of 2: %s", got)
	}
}
