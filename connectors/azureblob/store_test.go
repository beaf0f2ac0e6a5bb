package azureblob

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
)

const testPart = 64 << 10

// newStore is a store over its own container, below the prefix "staging",
// with 64 KiB parts staged two at a time.
func newStore(t *testing.T) (*Store, *container.Client) {
	t.Helper()
	name, c := newContainer(t)
	conn, p := keyConn(name, "staging")
	s, err := NewStore(testCtx(t), conn, p, Options{PartSize: testPart, Concurrency: 2, ListPageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// writeChunks writes data in uneven pieces, as a copy loop would.
func writeChunks(t *testing.T, w connectors.Writer, data []byte) {
	t.Helper()
	for i, n := 0, 1; i < len(data); n = n*3 + 7 {
		k := min(n, len(data)-i, 100_000)
		if _, err := w.Write(data[i : i+k]); err != nil {
			t.Fatal(err)
		}
		i += k
	}
}

func create(t *testing.T, s *Store, key string, from *connectors.Checkpoint) *writer {
	t.Helper()
	w, err := s.Create(testCtx(t), key, from)
	if err != nil {
		t.Fatal(err)
	}
	return w.(*writer)
}

func TestStoreWriteReadListDelete(t *testing.T) {
	s, c := newStore(t)
	ctx := testCtx(t)
	if got, want := s.URL("req1/data/a.csv"), azurite.BlobEndpoint+"/"+s.loc.container+"/staging/req1/data/a.csv"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}

	files := map[string][]byte{
		"req1/data/a.csv":     randomBytes(3*testPart + 5),
		"req1/data/b.parquet": randomBytes(testPart),
		"req1/empty.txt":      nil,
		"req1/small.json":     []byte(`{"x":1}`),
		"req10/other.csv":     randomBytes(10),
	}
	for key, data := range files {
		w := create(t, s, key, nil)
		if w.PartSize() != testPart {
			t.Fatalf("PartSize() = %d", w.PartSize())
		}
		writeChunks(t, w, data)
		if w.Offset() != int64(len(data)) {
			t.Fatalf("%s: Offset() = %d after %d bytes", key, w.Offset(), len(data))
		}
		// Nothing is visible before Commit.
		if _, err := s.Stat(ctx, key); !errors.Is(err, connectors.ErrNotFound) {
			t.Fatalf("%s: before Commit, Stat gave %v", key, err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatalf("a second Commit: %v", err)
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("Abort after Commit: %v", err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Fatal("Write after Commit succeeded")
		}
	}
	for key, data := range files {
		st, err := s.Stat(ctx, key)
		if err != nil || st.Key != key || st.Size != int64(len(data)) || st.ModTime.IsZero() {
			t.Errorf("Stat(%s) = %+v, %v", key, st, err)
		}
		r, err := s.Open(ctx, key)
		mustEqual(t, "read "+key, readAll(t, r, err), data)
	}
	props, err := c.NewBlobClient("staging/req1/data/a.csv").GetProperties(ctx, nil)
	if err != nil || props.ContentType == nil || *props.ContentType != "text/csv" {
		t.Errorf("content type %v, %v", props.ContentType, err)
	}

	keys := func(prefix string) string {
		t.Helper()
		infos, err := s.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		var ks []string
		for _, in := range infos {
			ks = append(ks, in.Key)
		}
		return strings.Join(ks, " ")
	}
	if got, want := keys(""), "req1/data/a.csv req1/data/b.parquet req1/empty.txt req1/small.json req10/other.csv"; got != want {
		t.Errorf("List(\"\") = %q, want %q", got, want)
	}
	if got, want := keys("req1"), "req1/data/a.csv req1/data/b.parquet req1/empty.txt req1/small.json"; got != want {
		t.Errorf("List(req1) = %q, want %q", got, want)
	}
	if got, want := keys("req1/small.json"), "req1/small.json"; got != want {
		t.Errorf("List of a file = %q, want %q", got, want)
	}
	if got := keys("nothing"); got != "" {
		t.Errorf("List(nothing) = %q", got)
	}

	// A write left uncommitted under req1 is removed with it.
	w := create(t, s, "req1/partial.bin", nil)
	writeChunks(t, w, randomBytes(2*testPart))
	cp, err := w.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if got := keys("req1"); strings.Contains(got, "partial") {
		t.Errorf("an uncommitted write is listed: %q", got)
	}
	if err := s.DeletePrefix(ctx, "req1"); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(""), "req10/other.csv"; got != want {
		t.Errorf("after DeletePrefix(req1): %q, want %q", got, want)
	}
	if w := create(t, s, "req1/partial.bin", &cp); w.Offset() != 0 {
		t.Errorf("after DeletePrefix the partial write resumed at %d", w.Offset())
	}
	left := c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Include: container.ListBlobsInclude{UncommittedBlobs: true}})
	for left.More() {
		page, err := left.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.Segment.BlobItems {
			if strings.HasPrefix(*b.Name, "staging/req1/") {
				t.Errorf("DeletePrefix left %s", *b.Name)
			}
		}
	}
	if err := s.DeletePrefix(ctx, "req1"); err != nil {
		t.Errorf("deleting again: %v", err)
	}
	// A blob the service says does not exist (as Azure says of one with
	// only uncommitted blocks) is replaced by an empty blob, which is then
	// deleted: nothing is left.
	if err := s.deleteBlob(ctx, "staging/req1/never-committed"); err != nil {
		t.Errorf("deleting a blob that is not there: %v", err)
	}
	if _, err := s.Stat(ctx, "req1/never-committed"); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("after deleting a blob that was not there: %v", err)
	}

	for _, bad := range []string{"", "/"} {
		if err := s.DeletePrefix(ctx, bad); !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "whole store") {
			t.Errorf("DeletePrefix(%q) = %v", bad, err)
		}
	}
	for _, bad := range []string{"../x", "/abs", "a/../../b"} {
		if _, err := s.Create(ctx, bad, nil); !connectors.IsBadInput(err) {
			t.Errorf("Create(%q) = %v, want BadInput", bad, err)
		}
		if _, err := s.List(ctx, bad); !connectors.IsBadInput(err) {
			t.Errorf("List(%q) = %v, want BadInput", bad, err)
		}
	}
	if _, err := s.Open(ctx, "req1/data/a.csv"); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("Open of a deleted key: %v", err)
	}
}

func TestStoreAbort(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	w := create(t, s, "k.bin", nil)
	writeChunks(t, w, randomBytes(3*testPart+1))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "k.bin"); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("after Abort, Stat gave %v", err)
	}
	if err := w.Commit(); err == nil || !strings.Contains(err.Error(), "aborted") {
		t.Errorf("Commit after Abort: %v", err)
	}
	if _, err := w.Checkpoint(); err == nil {
		t.Error("Checkpoint after Abort succeeded")
	}
}

// TestStoreResume simulates a crash after a checkpoint: the next attempt
// resumes from it and the file holds the right bytes.
func TestStoreResume(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	data := randomBytes(7*testPart + 99)

	w := create(t, s, "big.bin", nil)
	writeChunks(t, w, data[:3*testPart])
	cp, err := w.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if cp.Offset != 3*testPart || cp.Token == "" {
		t.Fatalf("checkpoint %+v", cp)
	}
	writeChunks(t, w, data[3*testPart:5*testPart+10]) // lost in the crash
	// The writer is dropped without Commit or Abort.

	w2 := create(t, s, "big.bin", &cp)
	if w2.Offset() != cp.Offset {
		t.Fatalf("resumed at %d, want %d", w2.Offset(), cp.Offset)
	}
	writeChunks(t, w2, data[w2.Offset():5*testPart+100])
	// A checkpoint between part boundaries stages a shorter block.
	cp2, err := w2.Checkpoint()
	if err != nil || cp2.Offset != 5*testPart+100 {
		t.Fatalf("second checkpoint %+v, %v", cp2, err)
	}
	w3 := create(t, s, "big.bin", &cp2)
	if w3.Offset() != cp2.Offset {
		t.Fatalf("resumed at %d, want %d", w3.Offset(), cp2.Offset)
	}
	writeChunks(t, w3, data[w3.Offset():])
	if err := w3.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, "big.bin")
	mustEqual(t, "resumed file", readAll(t, r, err), data)

	// Checkpoints that do not match what the service holds start over.
	w = create(t, s, "other.bin", nil)
	writeChunks(t, w, data[:2*testPart])
	cp, err = w.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []connectors.Checkpoint{
		{Offset: cp.Offset + 1, Token: cp.Token},                               // more bytes than staged
		{Offset: cp.Offset, Token: "not json"},                                 // unreadable
		{Offset: cp.Offset},                                                    // no token (another store's)
		{Offset: cp.Offset, Token: `{"upload":"0123456789abcdef","blocks":2}`}, // another upload
	} {
		if w := create(t, s, "other.bin", &bad); w.Offset() != 0 {
			t.Errorf("checkpoint %+v resumed at %d", bad, w.Offset())
		}
	}
	if w := create(t, s, "missing.bin", &cp); w.Offset() != 0 {
		t.Errorf("a checkpoint for a key with no blocks resumed at %d", w.Offset())
	}
}

// TestStoreSecondWriter checks that two writes of one key never mix blocks.
func TestStoreSecondWriter(t *testing.T) {
	s, _ := newStore(t)
	ctx := testCtx(t)
	first, second := randomBytes(3*testPart), randomBytes(testPart+7)

	a := create(t, s, "k.bin", nil)
	writeChunks(t, a, first)
	cpA, err := a.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	b := create(t, s, "k.bin", nil)
	if b.Offset() != 0 || b.upload == a.upload {
		t.Fatalf("second writer: offset %d, upload %s (first %s)", b.Offset(), b.upload, a.upload)
	}
	writeChunks(t, b, second)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(ctx, "k.bin")
	mustEqual(t, "second writer's file", readAll(t, r, err), second)

	// The first write's blocks went with the second's commit: its
	// checkpoint no longer resumes, and its own commit fails rather than
	// publishing a file made of missing blocks.
	if c := create(t, s, "k.bin", &cpA); c.Offset() != 0 {
		t.Errorf("the first write resumed at %d after the second committed", c.Offset())
	}
	if err := a.Commit(); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("the first writer's commit: %v", err)
	}
	r, err = s.Open(ctx, "k.bin")
	mustEqual(t, "after the first writer's failed commit", readAll(t, r, err), second)
}

func TestBlockIDs(t *testing.T) {
	seen := map[string]bool{}
	n := -1
	for _, up := range []string{newUploadID(), newUploadID()} {
		for _, i := range []int{0, 1, 9, 10, 12345, MaxBlocks - 1} {
			id := blockID(up, i)
			if n >= 0 && len(id) != n {
				t.Fatalf("block ids of different lengths: %d and %d", n, len(id))
			}
			n = len(id)
			raw, err := base64.StdEncoding.DecodeString(id)
			if err != nil || len(raw) > 64 {
				t.Fatalf("block id %q: %v, %d bytes", id, err, len(raw))
			}
			if seen[id] {
				t.Fatalf("block id %q twice", id)
			}
			seen[id] = true
		}
	}
}

// TestStoreWriteErrors checks that a failing block surfaces from Write,
// Checkpoint or Commit, without the secret.
func TestStoreWriteErrors(t *testing.T) {
	name, _ := newContainer(t)
	conn, _ := keyConn(name, "")
	wrong := "d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5d3Jvbmdrd3Jvbmdr"
	s, err := NewStore(testCtx(t), conn, provider(map[string]string{"azure-key": wrong}), Options{PartSize: testPart, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	w := create(t, s, "x.bin", nil)
	var werr error
	for i := 0; i < 10 && werr == nil; i++ {
		_, werr = w.Write(randomBytes(testPart))
	}
	if werr == nil {
		_, werr = w.Checkpoint()
	}
	if werr == nil || !connectors.IsBadInput(werr) || !strings.Contains(werr.Error(), "access denied") || strings.Contains(werr.Error(), wrong) {
		t.Fatalf("got %v, want BadInput saying access was denied, without the key", werr)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit succeeded after a block failed")
	}
	w.Abort()
}

// TestStoreFactory builds a store through the factory the worker uses.
func TestStoreFactory(t *testing.T) {
	name, _ := newContainer(t)
	conn, p := keyConn(name, "")
	st, err := StoreFactory(p, Options{})(context.Background(), conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(testCtx(t), "nothing"); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("Stat of a missing key: %v", err)
	}
	conn.Credentials = model.Credentials{AccountKeyKey: "absent"}
	if _, err := StoreFactory(p, Options{})(context.Background(), conn); !connectors.IsBadInput(err) || !strings.Contains(err.Error(), `"absent"`) {
		t.Errorf("missing secret: %v", err)
	}
	if _, err := StoreFactory(p, Options{PartSize: -5})(context.Background(), conn); !connectors.IsBadInput(err) {
		t.Errorf("bad options: %v", err)
	}
}
