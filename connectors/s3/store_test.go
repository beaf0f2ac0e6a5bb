package s3

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/rangereader"
)

const mib = 1 << 20

func newStore(t *testing.T, f *fixture, concurrency int) *Store {
	t.Helper()
	st, err := NewStore(f.ctx, f.conn, f.prov, Options{PartSize: MinUploadPartSize, Concurrency: concurrency, ListPageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// writeChunks writes data to w in chunks of chunk bytes.
func writeChunks(t *testing.T, w connectors.Writer, data []byte, chunk int) {
	t.Helper()
	for off := 0; off < len(data); off += chunk {
		n, err := w.Write(data[off:min(off+chunk, len(data))])
		if err != nil {
			t.Fatal(err)
		}
		if n != min(chunk, len(data)-off) {
			t.Fatalf("wrote %d of %d", n, min(chunk, len(data)-off))
		}
	}
}

// write writes data to key and commits it.
func write(t *testing.T, f *fixture, st *Store, key string, data []byte) {
	t.Helper()
	w, err := st.Create(f.ctx, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, w, data, 1<<20+17)
	if w.Offset() != int64(len(data)) {
		t.Fatalf("offset %d after %d bytes", w.Offset(), len(data))
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, f *fixture, st *Store, key string) []byte {
	t.Helper()
	r, err := st.Open(f.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keys(infos []connectors.ObjectInfo) string {
	var out []string
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return strings.Join(out, " ")
}

func TestStoreWriteReadListDelete(t *testing.T) {
	f := newFixture(t, "staging")
	st := newStore(t, f, 2)
	big := randomBytes(12*mib+3, 10) // parts of 5, 5 and 2 MiB
	small := randomBytes(1000, 11)

	// Nothing shows under the key before Commit.
	w, err := st.Create(f.ctx, "req-1/data/big.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if pw, ok := w.(connectors.PartWriter); !ok || pw.PartSize() != MinUploadPartSize {
		t.Fatalf("not a PartWriter of %d-byte parts: %T", MinUploadPartSize, w)
	}
	writeChunks(t, w, big, 777777)
	if _, err := st.Stat(f.ctx, "req-1/data/big.bin"); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("before Commit, Stat: %v; want ErrNotFound", err)
	}
	if l, err := st.List(f.ctx, "req-1"); err != nil || len(l) != 0 {
		t.Fatalf("before Commit, List: %v %v", keys(l), err)
	}
	if len(f.uploads(t)["staging/req-1/data/big.bin"]) != 1 {
		t.Fatalf("no multipart upload in progress: %v", f.uploads(t))
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("a second Commit: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	if len(f.uploads(t)) != 0 {
		t.Fatalf("uploads left after Commit: %v", f.uploads(t))
	}
	// The object sits below the store's prefix, whole.
	if got := f.get(t, "staging/req-1/data/big.bin"); !bytes.Equal(got, big) {
		t.Fatalf("stored %d bytes, differ from the %d written", len(got), len(big))
	}

	write(t, f, st, "req-1/small.csv", small)
	write(t, f, st, "req-1/empty", nil)
	write(t, f, st, "req-1/data/exact.bin", big[:MinUploadPartSize]) // exactly one part
	write(t, f, st, "req-10/other.csv", small)
	write(t, f, st, "req-2/a/b/c.txt", small)

	// Open: the big one through parallel ranged GETs, the rest with one GET.
	r, err := st.Open(f.ctx, "req-1/data/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*rangereader.Reader); !ok {
		t.Errorf("a %d-byte object opened with %T, not the ranged reader", len(big), r)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("Open big: %d bytes, %v", len(got), err)
	}
	for key, want := range map[string][]byte{"req-1/small.csv": small, "req-1/empty": {}, "req-1/data/exact.bin": big[:MinUploadPartSize]} {
		if got := readAll(t, f, st, key); !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, want %d", key, len(got), len(want))
		}
	}

	info, err := st.Stat(f.ctx, "req-1/data/big.bin")
	if err != nil || info.Key != "req-1/data/big.bin" || info.Size != int64(len(big)) || info.ModTime.IsZero() {
		t.Fatalf("Stat %+v %v", info, err)
	}
	for _, missing := range []string{"req-1/nope", "req-1/data"} {
		if _, err := st.Stat(f.ctx, missing); !errors.Is(err, connectors.ErrNotFound) {
			t.Errorf("Stat %s: %v; want ErrNotFound", missing, err)
		}
		if _, err := st.Open(f.ctx, missing); !errors.Is(err, connectors.ErrNotFound) {
			t.Errorf("Open %s: %v; want ErrNotFound", missing, err)
		}
	}
	if _, err := st.Stat(f.ctx, "../x"); !connectors.IsBadInput(err) {
		t.Errorf("Stat ../x: %v; want BadInput", err)
	}

	// List: sorted keys relative to the store, a folder and not its
	// siblings (req-10 is not under req-1), paged by 3.
	l, err := st.List(f.ctx, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(l); got != "req-1/data/big.bin req-1/data/exact.bin req-1/empty req-1/small.csv" {
		t.Fatalf("List req-1: %s", got)
	}
	if l[0].Size != int64(len(big)) || l[0].ModTime.IsZero() {
		t.Errorf("List entry %+v", l[0])
	}
	if l, _ := st.List(f.ctx, ""); len(l) != 6 {
		t.Errorf("List of the whole store: %s", keys(l))
	}
	if l, _ := st.List(f.ctx, "req-1/small.csv"); keys(l) != "req-1/small.csv" {
		t.Errorf("List of a file: %s", keys(l))
	}
	if l, err := st.List(f.ctx, "none/"); err != nil || len(l) != 0 {
		t.Errorf("List of nothing: %s %v", keys(l), err)
	}

	// DeletePrefix takes committed files and uploads in progress, and
	// leaves siblings alone.
	pending, err := st.Create(f.ctx, "req-1/pending.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, pending, big[:6*mib], mib)
	if _, err := pending.Checkpoint(); err == nil {
		t.Error("Checkpoint away from a part boundary succeeded")
	}
	if len(f.uploads(t)["staging/req-1/pending.bin"]) != 1 {
		t.Fatalf("uploads: %v", f.uploads(t))
	}
	other, err := st.Create(f.ctx, "req-10/pending.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, other, big[:MinUploadPartSize], mib)
	if _, err := other.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if err := st.DeletePrefix(f.ctx, "req-1"); err != nil {
		t.Fatal(err)
	}
	if l, _ := st.List(f.ctx, "req-1"); len(l) != 0 {
		t.Errorf("after DeletePrefix: %s", keys(l))
	}
	up := f.uploads(t)
	if len(up["staging/req-1/pending.bin"]) != 0 || len(up["staging/req-10/pending.bin"]) != 1 {
		t.Errorf("uploads after DeletePrefix req-1: %v", up)
	}
	if l, _ := st.List(f.ctx, ""); keys(l) != "req-10/other.csv req-2/a/b/c.txt" {
		t.Errorf("after DeletePrefix, the store holds %s", keys(l))
	}
	if err := st.DeletePrefix(f.ctx, "req-1"); err != nil {
		t.Errorf("deleting again: %v", err)
	}
	if err := st.DeletePrefix(f.ctx, "req-2/a/b/c.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(f.ctx, "req-2/a/b/c.txt"); !errors.Is(err, connectors.ErrNotFound) {
		t.Errorf("a file named by DeletePrefix is still there: %v", err)
	}
	for _, p := range []string{"", "/"} {
		if err := st.DeletePrefix(f.ctx, p); !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "empty prefix") {
			t.Errorf("DeletePrefix(%q): %v; want a refusal", p, err)
		}
	}
	if err := other.Abort(); err != nil {
		t.Fatal(err)
	}
	if len(f.uploads(t)) != 0 {
		t.Errorf("uploads after Abort: %v", f.uploads(t))
	}
	if err := pending.Abort(); err != nil {
		t.Errorf("aborting an upload DeletePrefix already aborted: %v", err)
	}
}

func TestStoreAbort(t *testing.T) {
	f := newFixture(t, "")
	st := newStore(t, f, 2)
	w, err := st.Create(f.ctx, "a/b.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, w, randomBytes(11*mib, 12), 3*mib)
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if len(f.uploads(t)) != 0 {
		t.Fatalf("uploads after Abort: %v", f.uploads(t))
	}
	if _, err := st.Stat(f.ctx, "a/b.bin"); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("after Abort, Stat: %v", err)
	}
	// A small file never started an upload: Abort has nothing to do.
	w, err = st.Create(f.ctx, "a/small", nil)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, w, []byte("tiny"), 4)
	if cp, err := w.Checkpoint(); err == nil {
		t.Errorf("Checkpoint at byte 4 gave %+v", cp)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(f.ctx, "a/small"); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("after Abort, Stat: %v", err)
	}
}

func TestStoreResume(t *testing.T) {
	f := newFixture(t, "ws")
	st := newStore(t, f, 3)
	const part = MinUploadPartSize
	data := randomBytes(3*part+1234, 13)

	// First attempt: two parts, a checkpoint, then a third part of other
	// bytes (written after the checkpoint, so not covered by it) and the
	// process dies without Commit or Abort.
	w1, err := st.Create(f.ctx, "f.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := w1.Checkpoint(); err != nil || cp.Offset != 0 || cp.Token != "" {
		t.Fatalf("checkpoint before any byte: %+v %v", cp, err)
	}
	writeChunks(t, w1, data[:2*part], 999999)
	cp, err := w1.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if cp.Offset != 2*part || cp.Token == "" {
		t.Fatalf("checkpoint %+v", cp)
	}
	writeChunks(t, w1, randomBytes(part, 99), part)
	w1.(*writer).wg.Wait() // the dead process's last upload has landed

	// Second attempt resumes at the checkpoint and finishes.
	w2, err := st.Create(f.ctx, "f.bin", &cp)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Offset() != cp.Offset {
		t.Fatalf("resumed at %d; want %d", w2.Offset(), cp.Offset)
	}
	writeChunks(t, w2, data[cp.Offset:], 1<<20)
	if err := w2.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := f.get(t, "ws/f.bin"); !bytes.Equal(got, data) {
		t.Fatalf("resumed file: %d bytes, differ from the %d written", len(got), len(data))
	}
	if len(f.uploads(t)) != 0 {
		t.Fatalf("uploads left: %v", f.uploads(t))
	}

	// Checkpoints that cannot be continued start again from 0, and the
	// upload they name (if any) is aborted.
	fresh := func(name string, from func(cp connectors.Checkpoint) connectors.Checkpoint) {
		t.Helper()
		w, err := st.Create(f.ctx, "g.bin", nil)
		if err != nil {
			t.Fatal(err)
		}
		writeChunks(t, w, data[:2*part], part)
		cp, err := w.Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		bad := from(cp)
		w2, err := st.Create(f.ctx, "g.bin", &bad)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if w2.Offset() != 0 {
			t.Fatalf("%s: resumed at %d; want 0", name, w2.Offset())
		}
		if n := len(f.uploads(t)["ws/g.bin"]); n != 0 {
			t.Errorf("%s: %d uploads left in progress; the one the checkpoint named should be aborted", name, n)
			_ = w.Abort()
		}
		writeChunks(t, w2, data, 1<<20)
		if err := w2.Commit(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := f.get(t, "ws/g.bin"); !bytes.Equal(got, data) {
			t.Fatalf("%s: the file differs", name)
		}
	}
	fresh("aborted upload", func(cp connectors.Checkpoint) connectors.Checkpoint {
		var tok uploadToken
		_ = json.Unmarshal([]byte(cp.Token), &tok)
		if err := st.abortUpload(f.ctx, "ws/g.bin", tok.UploadID); err != nil {
			t.Fatal(err)
		}
		return cp
	})
	fresh("offset beyond the parts uploaded", func(cp connectors.Checkpoint) connectors.Checkpoint {
		cp.Offset = 3 * part
		return cp
	})
	fresh("offset off a part boundary", func(cp connectors.Checkpoint) connectors.Checkpoint {
		cp.Offset = part + 1
		return cp
	})
	fresh("another part size", func(cp connectors.Checkpoint) connectors.Checkpoint {
		var tok uploadToken
		_ = json.Unmarshal([]byte(cp.Token), &tok)
		tok.PartSize = 8 * mib
		b, _ := json.Marshal(tok)
		cp.Token = string(b)
		return cp
	})

	// Tokens naming no upload of this key: nothing to abort, start at 0.
	for name, cp := range map[string]connectors.Checkpoint{
		"bogus upload id": {Offset: 2 * part, Token: `{"uploadId":"bogus-upload-id","partSize":5242880}`},
		"not json":        {Offset: 2 * part, Token: "not json"},
		"no token":        {Offset: 2 * part},
	} {
		w, err := st.Create(f.ctx, "h.bin", &cp)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if w.Offset() != 0 {
			t.Fatalf("%s: resumed at %d", name, w.Offset())
		}
		writeChunks(t, w, data[:100], 100)
		if err := w.Commit(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := f.get(t, "ws/h.bin"); !bytes.Equal(got, data[:100]) {
			t.Fatalf("%s: the file differs", name)
		}
	}
}

func TestStoreResumeAtTheEnd(t *testing.T) {
	// The crash came after the last full part and its checkpoint: the
	// resumed writer has nothing left to write but Commit.
	f := newFixture(t, "")
	st := newStore(t, f, 2)
	data := randomBytes(2*MinUploadPartSize, 14)
	w, err := st.Create(f.ctx, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, w, data, 1<<20)
	cp, err := w.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	w2, err := st.Create(f.ctx, "x", &cp)
	if err != nil || w2.Offset() != int64(len(data)) {
		t.Fatalf("resumed at %d, %v", w2.Offset(), err)
	}
	if err := w2.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f, st, "x"); !bytes.Equal(got, data) {
		t.Fatal("the file differs")
	}
}
