package localstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/airlockhq/airlock/connectors"
)

var ctx = context.Background()

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// put writes and commits key.
func put(t *testing.T, s *Store, key, content string) {
	t.Helper()
	w, err := s.Create(ctx, key, nil)
	if err != nil {
		t.Fatalf("Create %s: %v", key, err)
	}
	if _, err := io.WriteString(w, content); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit %s: %v", key, err)
	}
}

func read(t *testing.T, s *Store, key string) []byte {
	t.Helper()
	rc, err := s.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keys(t *testing.T, s *Store, prefix string) []string {
	t.Helper()
	infos, err := s.List(ctx, prefix)
	if err != nil {
		t.Fatalf("List %q: %v", prefix, err)
	}
	out := []string{}
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

func partials(t *testing.T, s *Store) []string {
	t.Helper()
	p, err := s.Partials()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func badInput(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error mentioning %q, got nil", parts)
	}
	if !connectors.IsBadInput(err) {
		t.Fatalf("expected a BadInputError, got %T: %v", err, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func isNotFound(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("expected ErrNotFound, got %v", err)
	}
}

// noPartialFolders checks that .airlock-partial holds nothing at all.
func noPartialFolders(t *testing.T, s *Store) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Root(), PartialDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in %s: %s", PartialDir, e.Name())
	}
}

func TestNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "staging")
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Root() != dir {
		t.Errorf("Root = %q, want %q", s.Root(), dir)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		t.Fatalf("root not created: %v", err)
	}
	if fi.Mode().Perm()&^0o750 != 0 {
		// umask may only take permissions away from 0750.
		t.Errorf("mode %v is wider than 0750", fi.Mode().Perm())
	}

	_, err = New("")
	badInput(t, err, "no folder")

	file := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(filepath.Join(file, "store")); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("store below a file: %v", err)
	}

	rel, err := New(filepath.Join(t.TempDir(), ".", "rel"))
	if err != nil {
		t.Fatal(err)
	}
	defer rel.Close()
	if !filepath.IsAbs(rel.Root()) {
		t.Errorf("Root %q is not absolute", rel.Root())
	}
}

func TestWriteCommitRoundTrip(t *testing.T) {
	s := newStore(t)
	key := "req-1/data/visits.csv"
	content := strings.Repeat("id,date\n", 300_000) // > the 1 MiB buffer
	w, err := s.Create(ctx, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 0 {
		t.Fatalf("fresh Offset = %d", w.Offset())
	}
	if _, err := io.Copy(w, strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if w.Offset() != int64(len(content)) {
		t.Fatalf("Offset = %d, want %d", w.Offset(), len(content))
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("second Commit: %v", err)
	}
	if string(read(t, s, key)) != content {
		t.Fatal("content differs")
	}
	info, err := s.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != key || info.Size != int64(len(content)) || info.ModTime.IsZero() {
		t.Errorf("Stat = %+v", info)
	}
	equal(t, keys(t, s, ""), []string{key})
	equal(t, keys(t, s, "req-1"), []string{key})
	equal(t, keys(t, s, "req-1/data/"), []string{key})
	equal(t, partials(t, s), nil)
	noPartialFolders(t, s)
	if b, err := os.ReadFile(filepath.Join(s.Root(), "req-1", "data", "visits.csv")); err != nil || string(b) != content {
		t.Fatalf("file on disk: %v", err)
	}

	// Writing after Commit is refused; Abort after Commit leaves the file.
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if _, err := w.Checkpoint(); err == nil {
		t.Error("Checkpoint after Commit succeeded")
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if string(read(t, s, key)) != content {
		t.Fatal("Abort after Commit changed the file")
	}

	// Committing again replaces the file atomically.
	put(t, s, key, "new")
	if string(read(t, s, key)) != "new" {
		t.Fatal("not replaced")
	}
	// Keys are cleaned.
	put(t, s, "req-1/./other.txt", "o")
	equal(t, keys(t, s, "req-1"), []string{"req-1/data/visits.csv", "req-1/other.txt"})
	if string(read(t, s, "req-1//other.txt")) != "o" {
		t.Fatal("cleaned key not found")
	}
}

func TestPartialInvisibleUntilCommit(t *testing.T) {
	s := newStore(t)
	put(t, s, "req-1/done.csv", "done")
	key := "req-1/data/part.csv"
	w, err := s.Create(ctx, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	cp, err := w.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if cp.Offset != 4 || cp.Token != "" {
		t.Fatalf("Checkpoint = %+v", cp)
	}
	// The bytes are on disk, but only under the partial name.
	if b, err := os.ReadFile(filepath.Join(s.Root(), PartialDir, "req-1", "data", "part.csv.part")); err != nil || string(b) != "half" {
		t.Fatalf("partial on disk: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "req-1", "data", "part.csv")); !os.IsNotExist(err) {
		t.Fatalf("final name exists before Commit: %v", err)
	}
	_, err = s.Stat(ctx, key)
	isNotFound(t, err)
	_, err = s.Open(ctx, key)
	isNotFound(t, err)
	equal(t, keys(t, s, ""), []string{"req-1/done.csv"})
	equal(t, keys(t, s, "req-1/data"), []string{})
	equal(t, partials(t, s), []string{key})
	// Reading the partial area directly is refused.
	_, err = s.Open(ctx, PartialDir+"/"+key+".part")
	badInput(t, err, PartialDir, "reserved")
	_, err = s.List(ctx, PartialDir)
	badInput(t, err, "reserved")

	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if string(read(t, s, key)) != "half" {
		t.Fatal("content differs")
	}
	equal(t, keys(t, s, ""), []string{"req-1/data/part.csv", "req-1/done.csv"})
	equal(t, partials(t, s), nil)
	noPartialFolders(t, s)
}

func TestAbortLeavesNothing(t *testing.T) {
	s := newStore(t)
	w, err := s.Create(ctx, "req-1/a/b/c.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bytes.Repeat([]byte{7}, 2<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Abort succeeded")
	}
	equal(t, partials(t, s), nil)
	equal(t, keys(t, s, ""), []string{})
	noPartialFolders(t, s)
	entries, err := os.ReadDir(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != PartialDir {
			t.Errorf("left in the store: %s", e.Name())
		}
	}
}

func TestAbortKeepsOtherPartials(t *testing.T) {
	s := newStore(t)
	a, err := s.Create(ctx, "req-1/data/a.csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(ctx, "req-1/data/b.csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(a, "a")
	io.WriteString(b, "b")
	if err := a.Abort(); err != nil {
		t.Fatal(err)
	}
	equal(t, partials(t, s), []string{"req-1/data/b.csv"})
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	equal(t, keys(t, s, ""), []string{"req-1/data/b.csv"})
	noPartialFolders(t, s)
}

// pattern returns n deterministic bytes starting at byte position off of an
// endless pattern, so any slice of the file can be produced on its own.
func pattern(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		p := off + i
		b[i] = byte(p*7 + p/251)
	}
	return b
}

func TestResumeFromCheckpoint(t *testing.T) {
	s := newStore(t)
	key := "req-1/big.bin"
	const first, total = 3 << 20, 5<<20 + 123
	want := pattern(0, total)

	w, err := s.Create(ctx, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(want[:first]); err != nil {
		t.Fatal(err)
	}
	cp, err := w.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if cp.Offset != first {
		t.Fatalf("Checkpoint.Offset = %d, want %d", cp.Offset, first)
	}
	// More bytes after the checkpoint, some of which reach the disk, then
	// the process "dies": the writer is dropped without Commit or Abort.
	// These bytes are garbage so that keeping them would be detected.
	if _, err := w.Write(bytes.Repeat([]byte{0xEE}, 3<<19)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(s.Root(), PartialDir, "req-1", "big.bin.part"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() <= first {
		t.Fatalf("partial holds %d bytes; the test needs bytes beyond the checkpoint on disk", fi.Size())
	}
	w = nil
	equal(t, partials(t, s), []string{key})

	// The process restarts with a fresh store on the same folder.
	s2, err := New(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	w2, err := s2.Create(ctx, key, &cp)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Offset() != cp.Offset {
		t.Fatalf("resumed Offset = %d, want %d", w2.Offset(), cp.Offset)
	}
	if _, err := w2.Write(want[w2.Offset():]); err != nil {
		t.Fatal(err)
	}
	if w2.Offset() != total {
		t.Fatalf("Offset = %d, want %d", w2.Offset(), total)
	}
	if err := w2.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, s2, key); !bytes.Equal(got, want) {
		t.Fatalf("content differs: got %d bytes, want %d", len(got), len(want))
	}
	equal(t, partials(t, s2), nil)
	noPartialFolders(t, s2)
}

func TestResumeRestartsWhenPartialTooShortOrMissing(t *testing.T) {
	s := newStore(t)
	key := "req-1/x.bin"
	w, err := s.Create(ctx, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "0123456789")
	cp, err := w.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	// A checkpoint beyond what the partial holds cannot be trusted.
	big := connectors.Checkpoint{Offset: cp.Offset + 100}
	w2, err := s.Create(ctx, key, &big)
	if err != nil {
		t.Fatal(err)
	}
	if w2.Offset() != 0 {
		t.Fatalf("Offset = %d, want 0", w2.Offset())
	}
	io.WriteString(w2, "fresh")
	if err := w2.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := string(read(t, s, key)); got != "fresh" {
		t.Fatalf("content = %q", got)
	}

	// No partial at all: start at 0.
	w3, err := s.Create(ctx, "req-1/y.bin", &connectors.Checkpoint{Offset: 5})
	if err != nil {
		t.Fatal(err)
	}
	if w3.Offset() != 0 {
		t.Fatalf("Offset = %d, want 0", w3.Offset())
	}
	w3.Abort()

	// Without a checkpoint an old partial is discarded, not appended to.
	w4, err := s.Create(ctx, "req-1/z.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w4, "old bytes")
	if _, err := w4.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	w5, err := s.Create(ctx, "req-1/z.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if w5.Offset() != 0 {
		t.Fatalf("Offset = %d, want 0", w5.Offset())
	}
	io.WriteString(w5, "new")
	if err := w5.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := string(read(t, s, "req-1/z.bin")); got != "new" {
		t.Fatalf("content = %q", got)
	}

	// A checkpoint exactly at the partial's end resumes there.
	w6, err := s.Create(ctx, "req-1/e.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w6, "abc")
	cp6, _ := w6.Checkpoint()
	w7, err := s.Create(ctx, "req-1/e.bin", &cp6)
	if err != nil {
		t.Fatal(err)
	}
	if w7.Offset() != 3 {
		t.Fatalf("Offset = %d, want 3", w7.Offset())
	}
	io.WriteString(w7, "def")
	if err := w7.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := string(read(t, s, "req-1/e.bin")); got != "abcdef" {
		t.Fatalf("content = %q", got)
	}
}

// snapshot lists every path below dir, to prove nothing was written there.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBadKeysRefused(t *testing.T) {
	parent := t.TempDir()
	s, err := New(filepath.Join(parent, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	outside := filepath.Join(parent, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(outside, "target.txt")
	if err := os.WriteFile(target, []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(s.Root(), "link")); err != nil {
		t.Fatalf("cannot create a symlink to test escapes: %v", err)
	}
	if err := os.Symlink(target, filepath.Join(s.Root(), "filelink")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, parent)

	for key, why := range map[string]string{
		"../x":                     "..",
		"a/../../x":                "..",
		"/etc/passwd":              "absolute",
		"":                         "empty",
		`a\b`:                      "backslash",
		"a/\x00b":                  "control",
		PartialDir + "/x.part":     "reserved",
		PartialDir:                 "reserved",
		"link/x":                   "outside",
		"link/target.txt":          "outside",
		"filelink":                 "outside",
		"link/deeper/new-file.csv": "outside",
	} {
		w, err := s.Create(ctx, key, nil)
		if err == nil {
			// Make sure a writer that was wrongly allowed cannot land outside.
			io.WriteString(w, "pwned")
			w.Commit()
		}
		badInput(t, err, why)
		if err != nil && key != "" && !strings.Contains(err.Error(), fmt.Sprintf("%q", key)) {
			t.Errorf("error %q does not name the key %q", err, key)
		}
		if key == "link/x" || key == "filelink" {
			continue // Stat/Open through the link are checked below
		}
		_, err = s.Stat(ctx, key)
		badInput(t, err, why)
		_, err = s.Open(ctx, key)
		badInput(t, err, why)
	}
	_, err = s.Stat(ctx, "link/target.txt")
	badInput(t, err, "outside")
	_, err = s.Open(ctx, "filelink")
	badInput(t, err, "outside")
	_, err = s.List(ctx, "../")
	badInput(t, err, "..")
	if err := s.DeletePrefix(ctx, "link"); err != nil {
		// Removing the link itself is allowed; it must not follow it.
		t.Fatal(err)
	}

	after := snapshot(t, parent)
	// Only the link went away; nothing appeared or changed outside the store.
	var lost []string
	for _, p := range before {
		if p != filepath.Join(s.Root(), "link") {
			lost = append(lost, p)
		}
	}
	equal(t, after, lost)
	if b, err := os.ReadFile(target); err != nil || string(b) != "original" {
		t.Fatalf("target outside changed: %q, %v", b, err)
	}
	equal(t, partials(t, s), nil)
	// Symlinks are not listed.
	equal(t, keys(t, s, ""), []string{})
}

func TestKeysThatClashWithFolders(t *testing.T) {
	s := newStore(t)
	put(t, s, "req-1/file", "x")
	_, err := s.Create(ctx, "req-1/file/inner", nil)
	badInput(t, err, "req-1/file", "is a file")
	_, err = s.Create(ctx, "req-1", nil)
	badInput(t, err, "folder")
	_, err = s.Stat(ctx, "req-1")
	isNotFound(t, err)
	_, err = s.Open(ctx, "req-1")
	isNotFound(t, err)
	_, err = s.Stat(ctx, "req-1/file/inner")
	isNotFound(t, err)
	equal(t, partials(t, s), nil)
}

func TestNotFound(t *testing.T) {
	s := newStore(t)
	_, err := s.Stat(ctx, "nope/x.csv")
	isNotFound(t, err)
	if !strings.Contains(err.Error(), "nope/x.csv") {
		t.Errorf("error %q does not name the key", err)
	}
	_, err = s.Open(ctx, "nope.csv")
	isNotFound(t, err)
	if connectors.IsBadInput(err) {
		t.Error("a missing key is not bad input")
	}
}

func TestList(t *testing.T) {
	s := newStore(t)
	for _, k := range []string{"a/x", "a.txt", "a-b", "b/c/d/e.csv", "b/c.csv"} {
		put(t, s, k, k)
	}
	w, err := s.Create(ctx, "a/pending", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	io.WriteString(w, "p")
	w.Checkpoint()

	equal(t, keys(t, s, ""), []string{"a-b", "a.txt", "a/x", "b/c.csv", "b/c/d/e.csv"})
	equal(t, keys(t, s, "a"), []string{"a/x"})
	equal(t, keys(t, s, "b/"), []string{"b/c.csv", "b/c/d/e.csv"})
	equal(t, keys(t, s, "b/c"), []string{"b/c/d/e.csv"})
	equal(t, keys(t, s, "a.txt"), []string{"a.txt"})
	equal(t, keys(t, s, "missing"), []string{})
	equal(t, keys(t, s, "a.txt/below"), []string{})
	infos, err := s.List(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if infos[0].Size != int64(len("b/c.csv")) || infos[0].ModTime.IsZero() {
		t.Errorf("info = %+v", infos[0])
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.List(cctx, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("List after cancel: %v", err)
	}
	if _, err := s.Create(cctx, "k", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create after cancel: %v", err)
	}
}

func TestDeletePrefix(t *testing.T) {
	s := newStore(t)
	put(t, s, "req-1/data/a.csv", "a")
	put(t, s, "req-1/b.csv", "b")
	put(t, s, "req-10/c.csv", "c")
	put(t, s, "req-2/d.csv", "d")
	left, err := s.Create(ctx, "req-1/data/pending.csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(left, "pending")
	left.Checkpoint()
	left2, err := s.Create(ctx, "req-2/pending.csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	left2.Checkpoint()
	equal(t, partials(t, s), []string{"req-1/data/pending.csv", "req-2/pending.csv"})

	if err := s.DeletePrefix(ctx, "req-1"); err != nil {
		t.Fatal(err)
	}
	// req-10 shares the string prefix but is another folder: it stays.
	equal(t, keys(t, s, ""), []string{"req-10/c.csv", "req-2/d.csv"})
	equal(t, partials(t, s), []string{"req-2/pending.csv"})
	if _, err := os.Stat(filepath.Join(s.Root(), PartialDir, "req-1")); !os.IsNotExist(err) {
		t.Errorf("partial folder left: %v", err)
	}
	if err := s.DeletePrefix(ctx, "req-1/"); err != nil {
		t.Fatalf("deleting again: %v", err)
	}
	if err := s.DeletePrefix(ctx, "never-there"); err != nil {
		t.Fatalf("deleting a missing prefix: %v", err)
	}

	// A prefix naming one key removes its file and its partial.
	w, err := s.Create(ctx, "req-2/d.csv", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Checkpoint()
	if err := s.DeletePrefix(ctx, "req-2/d.csv"); err != nil {
		t.Fatal(err)
	}
	equal(t, keys(t, s, ""), []string{"req-10/c.csv"})
	equal(t, partials(t, s), []string{"req-2/pending.csv"})

	err = s.DeletePrefix(ctx, "")
	badInput(t, err, "empty prefix", "whole store")
	err = s.DeletePrefix(ctx, "/")
	badInput(t, err, "empty prefix")
	err = s.DeletePrefix(ctx, "../x")
	badInput(t, err, "..")
	err = s.DeletePrefix(ctx, PartialDir)
	badInput(t, err, "reserved")
	equal(t, keys(t, s, ""), []string{"req-10/c.csv"})
}

func TestPartialsReportsLeftovers(t *testing.T) {
	s := newStore(t)
	equal(t, partials(t, s), nil)
	for _, k := range []string{"z/last.csv", "a/first.csv", "m.csv"} {
		w, err := s.Create(ctx, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, k)
		// dropped without Commit or Abort
	}
	equal(t, partials(t, s), []string{"a/first.csv", "m.csv", "z/last.csv"})
	// A stray file without the .part suffix is not a partial.
	if err := os.WriteFile(filepath.Join(s.Root(), PartialDir, "stray"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	equal(t, partials(t, s), []string{"a/first.csv", "m.csv", "z/last.csv"})
}

func TestConcurrentWritersInOneFolder(t *testing.T) {
	// Commits remove empty partial folders while other writers create their
	// partial files in the same folders: no writer may lose its folder.
	s := newStore(t)
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for round := 0; round < 5; round++ {
				key := fmt.Sprintf("req-1/data/f%02d-%d.csv", i, round)
				w, err := s.Create(ctx, key, nil)
				if err != nil {
					errs <- err
					return
				}
				if _, err := io.WriteString(w, key); err != nil {
					errs <- err
					return
				}
				if err := w.Commit(); err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(keys(t, s, "req-1/data")); got != n*5 {
		t.Fatalf("%d files, want %d", got, n*5)
	}
	equal(t, partials(t, s), nil)
	noPartialFolders(t, s)
}

func TestURL(t *testing.T) {
	s := newStore(t)
	want := "file://" + filepath.ToSlash(filepath.Join(s.Root(), "req-1", "a.csv"))
	if got := s.URL("req-1/a.csv"); got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if got := s.URL("../../etc/passwd"); !strings.HasPrefix(got, "file://"+filepath.ToSlash(s.Root())+"/") {
		t.Errorf("URL of a bad key leaves the store: %q", got)
	}
	if got := s.URL(""); got != "file://"+filepath.ToSlash(s.Root()) {
		t.Errorf("URL(\"\") = %q", got)
	}
}
