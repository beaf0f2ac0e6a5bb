package azureblob

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/version"
)

func TestList(t *testing.T) {
	name, c := newContainer(t)
	ctx := testCtx(t)
	blobs := map[string]int{
		"trial/a.csv":          10,
		"trial/b/c.parquet":    20,
		"trial/b/d.txt":        0,
		"trial/b/e/f.json":     5,
		"trial/bb.txt":         7,
		"trial/z.dcm":          3,
		"trial-other/x.csv":    1, // beside the prefix, not in it
		"elsewhere/y.csv":      1,
		"trial/empty-folder/":  0, // a folder marker
		"trial/hns-directory":  0, // a hierarchical namespace directory
		"trial/hns-directory/": 0,
	}
	for b, n := range blobs {
		var md map[string]*string
		if b == "trial/hns-directory" {
			md = map[string]*string{"hdi_isfolder": to.Ptr("true")}
		}
		put(t, c, b, randomBytes(n), md)
	}
	conn, p := keyConn(name, "")
	conn.Prefix = "trial"
	src, err := New(ctx, conn, p, Options{ListPageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := src.Describe(), azurite.ContainerURL(name)+`/trial (azureblob connection "blobs")`; got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	if in := src.Instrument(); in.Name != "airlock azureblob connector" || in.Version != version.Version {
		t.Errorf("Instrument() = %+v", in)
	}

	paths := func(items []connectors.Item) string {
		var ps []string
		for _, it := range items {
			ps = append(ps, it.Path)
		}
		return strings.Join(ps, " ")
	}
	for _, tc := range []struct {
		prefix, want string
	}{
		// Seven pages of two: the listing follows the continuation markers.
		{"", "a.csv b/c.parquet b/d.txt b/e/f.json bb.txt z.dcm"},
		{"/", "a.csv b/c.parquet b/d.txt b/e/f.json bb.txt z.dcm"},
		{"b", "b/c.parquet b/d.txt b/e/f.json"},
		{"b/", "b/c.parquet b/d.txt b/e/f.json"},
		{"b/e", "b/e/f.json"},
	} {
		items, err := src.List(ctx, model.Object{Prefix: &model.FileObject{Path: tc.prefix}})
		if err != nil {
			t.Errorf("prefix %q: %v", tc.prefix, err)
			continue
		}
		if got := paths(items); got != tc.want {
			t.Errorf("prefix %q: listed %q, want %q", tc.prefix, got, tc.want)
		}
	}
	items, err := src.List(ctx, model.Object{Prefix: &model.FileObject{Path: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if it := items[0]; it.Size != 20 || it.EncodingFormat != "application/vnd.apache.parquet" || it.ModTime.IsZero() || !strings.HasPrefix(it.Ref, "trial/b/c.parquet#etag=") {
		t.Errorf("item %+v", it)
	}

	items, err = src.List(ctx, model.Object{File: &model.FileObject{Path: "b/e/f.json"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Path != "b/e/f.json" || items[0].Size != 5 || items[0].EncodingFormat != "application/json" || items[0].ModTime.IsZero() {
		t.Errorf("file: %+v", items)
	}

	for _, tc := range []struct {
		obj  model.Object
		want []string
	}{
		{model.Object{File: &model.FileObject{Path: "missing.csv"}}, []string{"file missing.csv not found", `container "` + name + `"`}},
		{model.Object{File: &model.FileObject{Path: "b"}}, []string{"b is a folder", "describe this object as a prefix"}},
		{model.Object{File: &model.FileObject{Path: "hns-directory"}}, []string{"hns-directory is a folder"}},
		{model.Object{File: &model.FileObject{Path: "../elsewhere/y.csv"}}, []string{"file.path", "escapes"}},
		{model.Object{Prefix: &model.FileObject{Path: "nothing"}}, []string{"prefix nothing", "is empty"}},
		{model.Object{Prefix: &model.FileObject{Path: "empty-folder"}}, []string{"prefix empty-folder", "is empty"}},
		{model.Object{Prefix: &model.FileObject{Path: "a//b"}}, []string{"prefix.path", "not a clean path"}},
		{model.Object{Table: &model.TableObject{Name: "t"}}, []string{"table", "describe this object as file or prefix"}},
		{model.Object{}, []string{"empty object"}},
	} {
		_, err := src.List(ctx, tc.obj)
		if !connectors.IsBadInput(err) {
			t.Errorf("%s: got %v, want BadInput", tc.obj.Describe(), err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.obj.Describe(), err, w)
			}
		}
	}
}

// TestListRefusesUncleanNames checks that a blob whose name would not be a
// safe path in the crate is refused by name rather than copied.
func TestListRefusesUncleanNames(t *testing.T) {
	for _, bad := range []string{"data/x//y.csv", "data/nonempty-folder/", "data/./dot.csv"} {
		t.Run(bad, func(t *testing.T) {
			name, c := newContainer(t)
			put(t, c, "data/ok.csv", []byte("ok"), nil)
			put(t, c, bad, []byte("bad"), nil)
			ctx := testCtx(t)
			conn, p := keyConn(name, "")
			src, err := New(ctx, conn, p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			// Check what the emulator stored: it may normalise some names.
			stored, err := c.NewListBlobsFlatPager(nil).NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, b := range stored.Segment.BlobItems {
				found = found || *b.Name == bad
			}
			if !found {
				t.Fatalf("the emulator did not keep the name %q, so the refusal cannot be checked through it", bad)
			}
			_, err = src.List(ctx, model.Object{Prefix: &model.FileObject{Path: "data"}})
			if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "not a clean relative path") || !strings.Contains(err.Error(), bad) {
				t.Fatalf("got %v, want BadInput naming %q", err, bad)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	name, c := newContainer(t)
	ctx := testCtx(t)
	const part = 64 << 10
	data := randomBytes(5*part + 123)
	put(t, c, "in/big.bin", data, nil)
	put(t, c, "in/small.txt", data[:1000], nil)
	put(t, c, "in/empty", nil, nil)
	conn, p := keyConn(name, "in")
	src, err := New(ctx, conn, p, Options{PartSize: part, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	items, err := src.List(ctx, model.Object{Prefix: &model.FileObject{Path: "/"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("listed %+v", items)
	}
	big, empty, small := items[0], items[1], items[2]
	// Offsets on both sides of the parallel threshold (more than one part
	// left) and of part boundaries.
	for _, off := range []int64{0, 1, part - 1, part, part + 1, 3*part + 17, int64(len(data)) - part, int64(len(data)) - part - 1, int64(len(data)) - 1, int64(len(data))} {
		r, err := src.Open(ctx, big, off)
		mustEqual(t, "big from "+itoa(off), readAll(t, r, err), data[off:])
	}
	for _, off := range []int64{0, 999, 1000} {
		r, err := src.Open(ctx, small, off)
		mustEqual(t, "small from "+itoa(off), readAll(t, r, err), data[off:1000])
	}
	r, err := src.Open(ctx, empty, 0)
	mustEqual(t, "empty", readAll(t, r, err), nil)
	// An item without an ETag or size (made by hand) is read as it is now.
	r, err = src.Open(ctx, connectors.Item{Path: "big.bin", Ref: "in/big.bin", Size: -1}, 7)
	mustEqual(t, "item without ETag", readAll(t, r, err), data[7:])

	for _, tc := range []struct {
		it   connectors.Item
		off  int64
		want string
	}{
		{big, -1, "negative offset"},
		{big, int64(len(data)) + 1, "fewer than the resume offset"},
		{connectors.Item{Ref: "elsewhere/x"}, 0, "not a blob under"},
		{connectors.Item{Ref: "in/../x"}, 0, "not a clean path"},
	} {
		_, err := src.Open(ctx, tc.it, tc.off)
		if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("open %s at %d: got %v, want BadInput saying %q", tc.it.Ref, tc.off, err, tc.want)
		}
	}

	// A reader stops when its context ends.
	cctx, cancel := context.WithCancel(ctx)
	r, err = src.Open(cctx, big, 0)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
	r.Close()
}

// TestOpenChangedBlob checks that a blob replaced or deleted after it was
// listed, or while it is read, fails the read instead of mixing versions.
func TestOpenChangedBlob(t *testing.T) {
	name, c := newContainer(t)
	ctx := testCtx(t)
	const part = 64 << 10
	v1, v2 := randomBytes(16*part), randomBytes(16*part)
	conn, p := keyConn(name, "")
	src, err := New(ctx, conn, p, Options{PartSize: part, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	list := func(path string) connectors.Item {
		t.Helper()
		items, err := src.List(ctx, model.Object{File: &model.FileObject{Path: path}})
		if err != nil {
			t.Fatal(err)
		}
		return items[0]
	}
	changed := func(what string, err error) {
		t.Helper()
		if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "changed while it was being read") {
			t.Errorf("%s: got %v, want BadInput saying the blob changed", what, err)
		}
	}

	// Replaced while a parallel read is under way.
	put(t, c, "mid.bin", v1, nil)
	it := list("mid.bin")
	r, err := src.Open(ctx, it, 0)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 3*part)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "head", head, v1[:3*part])
	put(t, c, "mid.bin", v2, nil)
	_, err = io.ReadAll(r)
	r.Close()
	changed("replaced mid-read", err)

	// Replaced after listing: a single ranged read, and a resumed copy.
	put(t, c, "small.bin", v1[:part/2], nil)
	it = list("small.bin")
	put(t, c, "small.bin", v2[:part/2], nil)
	_, err = src.Open(ctx, it, 0)
	changed("replaced before a single read", err)
	_, err = src.Open(ctx, it, 100)
	changed("replaced before a resumed read", err)
	_, err = src.Open(ctx, it, part/2)
	changed("replaced before a read at the end", err)
	it = list("mid.bin")
	put(t, c, "mid.bin", v1, nil)
	_, err = io.ReadAll(mustOpen(t, src, it, 5*part))
	changed("replaced before a resumed parallel read", err)

	// Deleted after listing.
	it = list("small.bin")
	if _, err := c.NewBlobClient("small.bin").Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = src.Open(ctx, it, 0)
	if !connectors.IsBadInput(err) || !errors.Is(err, connectors.ErrNotFound) || !strings.Contains(err.Error(), "deleted") {
		t.Errorf("deleted blob: got %v", err)
	}
}

func mustOpen(t *testing.T, src connectors.Source, it connectors.Item, off int64) io.ReadCloser {
	t.Helper()
	r, err := src.Open(context.Background(), it, off)
	if err != nil {
		return io.NopCloser(&errReader{err})
	}
	t.Cleanup(func() { r.Close() })
	return r
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
