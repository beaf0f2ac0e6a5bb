package file

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/version"
)

// writeFiles creates files (slash-separated name -> content) below dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatalf("cannot create a symlink to test escapes: %v", err)
	}
}

// sample lays out a file root with a "sample-data" folder and returns the
// root and a source for file:///sample-data.
func sample(t *testing.T) (string, connectors.Source) {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, filepath.Join(root, "sample-data"), map[string]string{
		"visits.csv":                "id,date\n1,2024-01-01\n",
		"notes.txt":                 "hello",
		"sub/patients.parquet":      "PAR1....PAR1",
		"sub/deep/meta.json":        `{"a":1}`,
		"sub/deep/records.ndjson":   "{}\n{}\n",
		"other/readme.unknownext42": "x",
	})
	if err := os.MkdirAll(filepath.Join(root, "sample-data", "empty", "nested"), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := New(Config{FileRoot: root}, model.Connection{Type: model.ConnFile, Name: "sample", URL: "file:///sample-data"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return root, src
}

func prefix(p string) model.Object {
	return model.Object{Prefix: &model.FileObject{Path: p, Connection: "sample"}}
}

func fileObj(p string) model.Object {
	return model.Object{File: &model.FileObject{Path: p, Connection: "sample"}}
}

func paths(items []connectors.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Path)
	}
	return out
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// badInput checks that err is a BadInputError whose message holds every part.
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

func TestListPrefix(t *testing.T) {
	_, src := sample(t)
	ctx := context.Background()

	items, err := src.List(ctx, prefix("sub/"))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, paths(items), []string{"sub/deep/meta.json", "sub/deep/records.ndjson", "sub/patients.parquet"})
	for _, it := range items {
		if it.Ref != it.Path {
			t.Errorf("Ref %q != Path %q", it.Ref, it.Path)
		}
		if it.ModTime.IsZero() {
			t.Errorf("%s: no ModTime", it.Path)
		}
	}
	if items[2].Size != int64(len("PAR1....PAR1")) {
		t.Errorf("size = %d", items[2].Size)
	}
	if items[2].EncodingFormat != "application/vnd.apache.parquet" || items[0].EncodingFormat != "application/json" || items[1].EncodingFormat != "application/x-ndjson" {
		t.Errorf("formats: %+v", items)
	}

	for _, whole := range []string{"", "/"} {
		items, err := src.List(ctx, prefix(whole))
		if err != nil {
			t.Fatalf("prefix %q: %v", whole, err)
		}
		equal(t, paths(items), []string{
			"notes.txt", "other/readme.unknownext42", "sub/deep/meta.json",
			"sub/deep/records.ndjson", "sub/patients.parquet", "visits.csv",
		})
	}

	// Without a trailing slash, and with redundant segments.
	items, err = src.List(ctx, prefix("sub/./deep"))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, paths(items), []string{"sub/deep/meta.json", "sub/deep/records.ndjson"})
}

func TestListPrefixSortedByPath(t *testing.T) {
	root := t.TempDir()
	// ReadDir order visits folder "a" before "a.txt", but "a.txt" < "a/x" bytewise.
	writeFiles(t, root, map[string]string{"a/x": "1", "a.txt": "2", "a-b": "3"})
	src, err := New(Config{FileRoot: root}, model.Connection{Type: model.ConnFile, Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	items, err := src.List(context.Background(), prefix(""))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, paths(items), []string{"a-b", "a.txt", "a/x"})
}

func TestListPrefixErrors(t *testing.T) {
	_, src := sample(t)
	ctx := context.Background()

	_, err := src.List(ctx, prefix("empty"))
	badInput(t, err, `"sample"`, "empty", "no files")

	_, err = src.List(ctx, prefix("nope/"))
	badInput(t, err, "nope", "not found", "file:///sample-data")

	_, err = src.List(ctx, prefix("visits.csv"))
	badInput(t, err, "visits.csv", "describe this object as a file")

	_, err = src.List(ctx, prefix("../sample-data"))
	badInput(t, err, "prefix.path", "..")
}

func TestListFile(t *testing.T) {
	_, src := sample(t)
	items, err := src.List(context.Background(), fileObj("visits.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 {
		t.Fatalf("got %d items", len(items))
	}
	it := items[0]
	if it.Path != "visits.csv" || it.Ref != "visits.csv" || it.Size != int64(len("id,date\n1,2024-01-01\n")) || it.EncodingFormat != "text/csv" || it.ModTime.IsZero() {
		t.Errorf("item = %+v", it)
	}

	items, err = src.List(context.Background(), fileObj("sub/./deep/meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, paths(items), []string{"sub/deep/meta.json"})
}

func TestListFileErrors(t *testing.T) {
	_, src := sample(t)
	ctx := context.Background()

	_, err := src.List(ctx, fileObj("missing.csv"))
	badInput(t, err, `connection "sample"`, "file missing.csv not found under file:///sample-data")

	_, err = src.List(ctx, fileObj("visits.csv/inner"))
	badInput(t, err, "not found")

	_, err = src.List(ctx, fileObj("sub"))
	badInput(t, err, "sub", "folder", "prefix")

	_, err = src.List(ctx, fileObj("../sample-data/visits.csv"))
	badInput(t, err, "file.path", "..")

	_, err = src.List(ctx, fileObj("/etc/passwd"))
	badInput(t, err, "file.path", "absolute")

	_, err = src.List(ctx, model.Object{})
	badInput(t, err, "empty object")
}

func TestTableRefused(t *testing.T) {
	_, src := sample(t)
	_, err := src.List(context.Background(), model.Object{Table: &model.TableObject{Name: "patients", Connection: "sample"}})
	badInput(t, err, "patients", "file connections hold files; describe this object as file or prefix")
}

func TestURL(t *testing.T) {
	root, _ := sample(t)
	cfg := Config{FileRoot: root}
	ok := map[string]string{
		"":                              "",
		"file:///":                      "",
		"file:///sample-data":           "sample-data",
		"file:///sample-data/":          "sample-data",
		"file://localhost/sample-data":  "sample-data",
		"file:///sample-data//sub/deep": "sample-data/sub/deep",
		"file:sample-data":              "sample-data",
	}
	for u, want := range ok {
		s, err := New(cfg, model.Connection{Type: model.ConnFile, Name: "c", URL: u})
		if err != nil {
			t.Errorf("url %q: %v", u, err)
			continue
		}
		if got := s.(*Source).sub; got != want {
			t.Errorf("url %q: folder %q, want %q", u, got, want)
		}
		if got, wantDir := s.(*Source).dir, filepath.Join(root, filepath.FromSlash(want)); got != wantDir {
			t.Errorf("url %q: dir %q, want %q", u, got, wantDir)
		}
	}

	bad := map[string][]string{
		"file:///../etc":              {"url", `"c"`, ".."},
		"file:///sample-data/../../x": {"url", ".."},
		"file:///sample-data/%2e%2e":  {"url", ".."},
		"s3://bucket/x":               {"url", "file: URL"},
		"file://sample-data":          {"url", "three slashes"},
		"file:///a?b":                 {"url", "query"},
		"file:///a#b":                 {"url", "fragment"},
	}
	for u, parts := range bad {
		_, err := New(cfg, model.Connection{Type: model.ConnFile, Name: "c", URL: u})
		badInput(t, err, parts...)
	}
}

func TestChroot(t *testing.T) {
	// An absolute-looking URL path is resolved inside FileRoot, not on the host.
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"etc/passwd": "not the real one"})
	src, err := New(Config{FileRoot: root}, model.Connection{Type: model.ConnFile, Name: "c", URL: "file:///etc"})
	if err != nil {
		t.Fatal(err)
	}
	items, err := src.List(context.Background(), fileObj("passwd"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := src.Open(context.Background(), items[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	if string(b) != "not the real one" {
		t.Fatalf("read %q", b)
	}
}

func TestNotConfigured(t *testing.T) {
	_, err := New(Config{PVCRoot: t.TempDir()}, model.Connection{Type: model.ConnFile, Name: "c", URL: "file:///x"})
	badInput(t, err, "sources.fileRoot", `"c"`)
	_, err = New(Config{FileRoot: t.TempDir()}, model.Connection{Type: model.ConnPVC, Name: "claim"})
	badInput(t, err, "sources.pvcRoot", `"claim"`)
	_, err = New(Config{FileRoot: t.TempDir()}, model.Connection{Type: model.ConnS3, Name: "bucket"})
	badInput(t, err, "s3", `"bucket"`)
}

func TestMissingDirectory(t *testing.T) {
	root := t.TempDir()
	_, err := New(Config{FileRoot: root}, model.Connection{Type: model.ConnFile, Name: "c", URL: "file:///nowhere"})
	badInput(t, err, `"c"`, filepath.Join(root, "nowhere"), "does not exist")

	_, err = New(Config{FileRoot: filepath.Join(root, "missing-root")}, model.Connection{Type: model.ConnFile, Name: "c"})
	badInput(t, err, `"c"`, filepath.Join(root, "missing-root"), "sources.fileRoot")

	writeFiles(t, root, map[string]string{"plain": "x"})
	_, err = New(Config{FileRoot: root}, model.Connection{Type: model.ConnFile, Name: "c", URL: "file:///plain"})
	badInput(t, err, "not a directory")
}

func TestSymlinkedFileOutsideRefused(t *testing.T) {
	root, src := sample(t)
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.csv": "secret"})
	symlink(t, filepath.Join(outside, "secret.csv"), filepath.Join(root, "sample-data", "sub", "leak.csv"))
	// A relative link climbing out with ".." is refused too.
	symlink(t, "../../sample-data/visits.csv", filepath.Join(root, "sample-data", "other", "up.csv"))
	ctx := context.Background()

	_, err := src.List(ctx, prefix("sub"))
	badInput(t, err, "symlink sub/leak.csv", "outside")

	_, err = src.List(ctx, fileObj("sub/leak.csv"))
	badInput(t, err, "sub/leak.csv", "outside")

	_, err = src.List(ctx, fileObj("other/up.csv"))
	badInput(t, err, "other/up.csv", "outside")

	_, err = src.Open(ctx, connectors.Item{Path: "sub/leak.csv", Ref: "sub/leak.csv"}, 0)
	badInput(t, err, "sub/leak.csv", "outside")

	_, err = src.Open(ctx, connectors.Item{Path: "x", Ref: "../visits.csv"}, 0)
	badInput(t, err, "..")
}

func TestSymlinkedDirOutsideRefused(t *testing.T) {
	root, src := sample(t)
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.csv": "secret"})
	symlink(t, outside, filepath.Join(root, "sample-data", "sub", "linkdir"))
	ctx := context.Background()

	_, err := src.List(ctx, prefix(""))
	badInput(t, err, "symlink sub/linkdir", "outside")

	_, err = src.List(ctx, prefix("sub/linkdir"))
	badInput(t, err, "sub/linkdir", "outside")

	_, err = src.List(ctx, fileObj("sub/linkdir/secret.csv"))
	badInput(t, err, "sub/linkdir/secret.csv", "outside")

	_, err = src.Open(ctx, connectors.Item{Path: "s", Ref: "sub/linkdir/secret.csv"}, 0)
	badInput(t, err, "outside")
}

func TestConnectionFolderSymlinkOutsideRefused(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.csv": "secret"})
	symlink(t, outside, filepath.Join(root, "escape"))
	_, err := New(Config{FileRoot: root}, model.Connection{Type: model.ConnFile, Name: "c", URL: "file:///escape"})
	badInput(t, err, `"c"`, "outside")
}

func TestSymlinksInsideRootFollowed(t *testing.T) {
	root, src := sample(t)
	data := filepath.Join(root, "sample-data")
	symlink(t, "../visits.csv", filepath.Join(data, "other", "visits-link.csv"))
	symlink(t, "sub/deep", filepath.Join(data, "deeplink"))
	items, err := src.List(context.Background(), prefix("other"))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, paths(items), []string{"other/readme.unknownext42", "other/visits-link.csv"})
	if items[1].Size != int64(len("id,date\n1,2024-01-01\n")) || items[1].EncodingFormat != "text/csv" {
		t.Errorf("linked item = %+v", items[1])
	}
	items, err = src.List(context.Background(), prefix("deeplink/"))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, paths(items), []string{"deeplink/meta.json", "deeplink/records.ndjson"})

	// A link looping back to a folder above it is refused, not walked forever.
	symlink(t, "..", filepath.Join(data, "sub", "deep", "loop"))
	_, err = src.List(context.Background(), prefix("sub"))
	badInput(t, err, "sub/deep/loop", "loops")

	// A dangling link is reported rather than silently skipped.
	if err := os.Remove(filepath.Join(data, "sub", "deep", "loop")); err != nil {
		t.Fatal(err)
	}
	symlink(t, "gone.csv", filepath.Join(data, "sub", "dangling.csv"))
	_, err = src.List(context.Background(), prefix("sub"))
	badInput(t, err, "sub/dangling.csv", "does not exist")
}

func TestOpenAtOffset(t *testing.T) {
	root := t.TempDir()
	content := strings.Repeat("0123456789", 100_000) // 1 MB
	writeFiles(t, root, map[string]string{"big.bin": content})
	src, err := New(Config{FileRoot: root}, model.Connection{Type: model.ConnFile, Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	items, err := src.List(ctx, fileObj("big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	it := items[0]
	for _, off := range []int64{0, 1, 123_457, int64(len(content)) - 1, int64(len(content))} {
		rc, err := src.Open(ctx, it, off)
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		if string(b) != content[off:] {
			t.Fatalf("offset %d: read %d bytes, want the %d remaining", off, len(b), len(content)-int(off))
		}
	}

	_, err = src.Open(ctx, it, int64(len(content))+1)
	badInput(t, err, "big.bin", "fewer than the resume offset")
	_, err = src.Open(ctx, it, -1)
	badInput(t, err, "negative offset")
	_, err = src.Open(ctx, connectors.Item{Path: "gone", Ref: "gone"}, 0)
	badInput(t, err, "gone", "not found")
	_, err = src.Open(ctx, connectors.Item{Path: "", Ref: ""}, 0)
	badInput(t, err, "empty path")
}

func TestOpenStopsWhenCancelled(t *testing.T) {
	_, src := sample(t)
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := src.Open(ctx, connectors.Item{Path: "visits.csv", Ref: "visits.csv"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	cancel()
	if _, err := rc.Read(make([]byte, 4)); !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v", err)
	}
	if _, err := src.Open(ctx, connectors.Item{Path: "visits.csv", Ref: "visits.csv"}, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("open after cancel: %v", err)
	}
}

func TestListStopsWhenCancelled(t *testing.T) {
	_, src := sample(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.List(ctx, prefix("")); !errors.Is(err, context.Canceled) {
		t.Fatalf("List after cancel: %v", err)
	}
	// Cancellation while walking: the walker checks the context per entry.
	w := walker{s: src.(*Source)}
	root, err := src.(*Source).openRoot()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	w.root = root
	if err := w.walk(ctx, ".", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("walk after cancel: %v", err)
	}
}

func TestPVC(t *testing.T) {
	pvcRoot := t.TempDir()
	writeFiles(t, pvcRoot, map[string]string{
		"claim-a/raw/x.csv":   "1",
		"claim-a/raw/y.tsv":   "2",
		"claim-a/top.pdf":     "3",
		"claim-b/elsewhere.c": "4",
	})
	cfg := Config{PVCRoot: pvcRoot}
	ctx := context.Background()

	src, err := New(cfg, model.Connection{Type: model.ConnPVC, Name: "claim-a"})
	if err != nil {
		t.Fatal(err)
	}
	items, err := src.List(ctx, prefix(""))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, paths(items), []string{"raw/x.csv", "raw/y.tsv", "top.pdf"})
	if items[1].EncodingFormat != "text/tab-separated-values" || items[2].EncodingFormat != "application/pdf" {
		t.Errorf("formats: %+v", items)
	}
	if d := src.Describe(); d != `pvc://claim-a (pvc connection "claim-a")` {
		t.Errorf("Describe = %q", d)
	}

	sub, err := New(cfg, model.Connection{Type: model.ConnPVC, Name: "claim-a", URL: "file:///raw"})
	if err != nil {
		t.Fatal(err)
	}
	items, err = sub.List(ctx, prefix("/"))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, paths(items), []string{"x.csv", "y.tsv"})
	if got := sub.(*Source).dir; got != filepath.Join(pvcRoot, "claim-a", "raw") {
		t.Errorf("dir = %q", got)
	}
	rc, err := sub.Open(ctx, items[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "1" {
		t.Errorf("read %q", b)
	}

	// The sub-folder cannot reach another claim.
	_, err = New(cfg, model.Connection{Type: model.ConnPVC, Name: "claim-a", URL: "file:///../claim-b"})
	badInput(t, err, "url", "..")

	_, err = New(cfg, model.Connection{Type: model.ConnPVC, Name: "claim-c"})
	badInput(t, err, `"claim-c"`, filepath.Join(pvcRoot, "claim-c"), "mounted")

	for _, name := range []string{"../claim-b", "a/b", "..", ".", ""} {
		_, err = New(cfg, model.Connection{Type: model.ConnPVC, Name: name})
		badInput(t, err, "name")
	}

	// A claim folder that is a symlink out of the PVC root is refused.
	outside := t.TempDir()
	symlink(t, outside, filepath.Join(pvcRoot, "claim-out"))
	_, err = New(cfg, model.Connection{Type: model.ConnPVC, Name: "claim-out"})
	badInput(t, err, "outside")
}

func TestFactories(t *testing.T) {
	root, _ := sample(t)
	reg := Factories(Config{FileRoot: root, PVCRoot: root})
	if len(reg) != 2 || reg[model.ConnFile] == nil || reg[model.ConnPVC] == nil {
		t.Fatalf("registry: %v", reg)
	}
	src, err := reg.Source(context.Background(), model.Connection{Type: model.ConnFile, Name: "sample", URL: "file:///sample-data"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.List(context.Background(), fileObj("visits.csv")); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Source(context.Background(), model.Connection{Type: model.ConnPVC, Name: "sample-data"}); err != nil {
		t.Fatal(err)
	}
	_, err = reg.Source(context.Background(), model.Connection{Type: model.ConnS3, Name: "b"})
	badInput(t, err, "s3")
}

func TestInstrumentAndDescribe(t *testing.T) {
	_, src := sample(t)
	if in := src.Instrument(); in.Name != "airlock-file-connector" || in.Version != version.Version {
		t.Errorf("Instrument = %+v", in)
	}
	if d := src.Describe(); d != `file:///sample-data (file connection "sample")` {
		t.Errorf("Describe = %q", d)
	}
	root := t.TempDir()
	s, err := New(Config{FileRoot: root}, model.Connection{Type: model.ConnFile, Name: "all"})
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Describe(); d != `file:/// (file connection "all")` {
		t.Errorf("Describe = %q", d)
	}
}

func TestMediaType(t *testing.T) {
	for name, want := range map[string]string{
		"a.csv":          "text/csv",
		"A.CSV":          "text/csv",
		"a.tsv":          "text/tab-separated-values",
		"d/a.parquet":    "application/vnd.apache.parquet",
		"a.json":         "application/json",
		"a.jsonl":        "application/x-ndjson",
		"a.ndjson":       "application/x-ndjson",
		"a.txt":          "text/plain",
		"a.pdf":          "application/pdf",
		"a.zip":          "application/zip",
		"a.csv.gz":       "application/gzip",
		"a.xlsx":         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
		"a.png":          "image/png",
		"a.jpg":          "image/jpeg",
		"a.jpeg":         "image/jpeg",
		"noext":          "application/octet-stream",
		"a.unknownext42": "application/octet-stream",
	} {
		if got := MediaType(name); got != want {
			t.Errorf("MediaType(%q) = %q, want %q", name, got, want)
		}
	}
	// The system table fallback never carries parameters.
	if got := MediaType("a.css"); strings.Contains(got, ";") {
		t.Errorf("MediaType(a.css) = %q", got)
	}
}
