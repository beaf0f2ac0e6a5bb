package s3

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/rangereader"
	"github.com/airlockhq/airlock/model"
)

func paths(items []connectors.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Path
	}
	return out
}

func TestSourceList(t *testing.T) {
	f := newFixture(t, "base/dir")
	// Objects outside the connection's prefix, or beside it, never show.
	f.put(t, "outside.csv", []byte("no"))
	f.put(t, "base/dirx/sibling.csv", []byte("no"))
	want := map[string][]byte{}
	for _, k := range []string{"top.csv", "data/2024/b.parquet", "data/2024/a.json", "data/2023/z.txt", "data/readme", "data/2025/x/y/z.tsv", "other/q.csv"} {
		want[k] = []byte("content of " + k)
		f.put(t, "base/dir/"+k, want[k])
	}
	// Folder markers, as consoles make for empty folders, are skipped.
	f.put(t, "base/dir/data/empty/", nil)
	f.put(t, "base/dir/data/2024/", nil)
	f.put(t, "base/dir/nothing/", nil)

	// A page size of 2 makes every listing below take several pages.
	src, err := New(f.ctx, f.conn, f.prov, Options{ListPageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	items, err := src.List(f.ctx, model.Object{Prefix: &model.FileObject{Path: "data/"}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(paths(items), " ")
	if got != "data/2023/z.txt data/2024/a.json data/2024/b.parquet data/2025/x/y/z.tsv data/readme" {
		t.Fatalf("prefix data/ listed %s", got)
	}
	for _, it := range items {
		if it.Ref != "base/dir/"+it.Path || it.Size != int64(len(want[it.Path])) || it.ModTime.IsZero() {
			t.Errorf("item %+v", it)
		}
	}
	if items[1].EncodingFormat != "application/json" || items[2].EncodingFormat != "application/vnd.apache.parquet" || items[4].EncodingFormat != "application/octet-stream" {
		t.Errorf("media types %s %s %s", items[1].EncodingFormat, items[2].EncodingFormat, items[4].EncodingFormat)
	}

	// The root of the connection: everything below its prefix.
	for _, root := range []string{"", "/"} {
		items, err = src.List(f.ctx, model.Object{Prefix: &model.FileObject{Path: root}})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != len(want) || items[0].Path != "data/2023/z.txt" || items[len(items)-1].Path != "top.csv" {
			t.Fatalf("root %q listed %v", root, paths(items))
		}
	}

	// A single file.
	items, err = src.List(f.ctx, model.Object{File: &model.FileObject{Path: "data/2024/a.json"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].Path != "data/2024/a.json" || items[0].Ref != "base/dir/data/2024/a.json" || items[0].Size != int64(len(want["data/2024/a.json"])) || items[0].EncodingFormat != "application/json" || items[0].ModTime.IsZero() {
		t.Fatalf("file listed %+v", items)
	}

	refusals := []struct {
		obj  model.Object
		want []string
	}{
		{model.Object{File: &model.FileObject{Path: "data/missing.csv"}}, []string{"file data/missing.csv not found", "bucket " + f.bucket}},
		{model.Object{File: &model.FileObject{Path: "data/2024"}}, []string{"data/2024 is a folder", "describe this object as a prefix"}},
		{model.Object{File: &model.FileObject{Path: "../outside.csv"}}, []string{"file.path", "'..'"}},
		{model.Object{Prefix: &model.FileObject{Path: "nothing"}}, []string{"prefix nothing", "is empty"}},
		{model.Object{Prefix: &model.FileObject{Path: "data/empty/"}}, []string{"prefix data/empty", "is empty"}},
		{model.Object{Prefix: &model.FileObject{Path: "a/../../x"}}, []string{"prefix.path", "'..'"}},
		{model.Object{Table: &model.TableObject{Name: "patients"}}, []string{`table "patients"`, "s3 connections hold files"}},
		{model.Object{}, []string{"empty object"}},
	}
	for _, r := range refusals {
		_, err := src.List(f.ctx, r.obj)
		if err == nil || !connectors.IsBadInput(err) {
			t.Errorf("%s: %v; want a BadInput", r.obj.Describe(), err)
			continue
		}
		for _, w := range r.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", r.obj.Describe(), err, w)
			}
		}
	}
}

func TestSourceListRefusesBadKeys(t *testing.T) {
	f := newFixture(t, "")
	f.put(t, "good/a.csv", []byte("a"))
	// versitygw normalises "a//b" and "a/../b" itself (and S3 listings,
	// XML, cannot carry control characters), but keeps a backslash, which
	// no crate path may hold. TestRelPathRefusesUncleanKeys covers the rest.
	f.put(t, "bad/back\\slash.csv", []byte("b"))
	src, err := New(f.ctx, f.conn, f.prov, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if items, err := src.List(f.ctx, model.Object{Prefix: &model.FileObject{Path: "good"}}); err != nil || len(items) != 1 {
		t.Fatalf("good: %v %v", items, err)
	}
	for p, want := range map[string]string{"bad": "backslash"} {
		_, err := src.List(f.ctx, model.Object{Prefix: &model.FileObject{Path: p}})
		if err == nil || !connectors.IsBadInput(err) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "rename the object") {
			t.Errorf("prefix %s: %v; want a BadInput about a %s", p, err, want)
		}
	}
}

func TestSourceListErrors(t *testing.T) {
	f := newFixture(t, "")
	conn := f.conn
	conn.URL = "s3://no-such-bucket-here"
	src, err := New(f.ctx, conn, f.prov, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.List(f.ctx, model.Object{Prefix: &model.FileObject{Path: "x"}})
	if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "bucket does not exist") {
		t.Errorf("missing bucket: %v", err)
	}

	// A wrong secret: the gateway rejects the signature; the message says
	// which credentials to check and holds no secret value.
	env := map[string]string{"AIRLOCK_SECRET_S3_ACCESS": f.g.AccessKey, "AIRLOCK_SECRET_S3_SECRET": "wrong-secret-value-123"}
	f.prov.Getenv = func(k string) string { return env[k] }
	src, err = New(f.ctx, f.conn, f.prov, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.List(f.ctx, model.Object{Prefix: &model.FileObject{Path: "x"}})
	if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "rejected the credentials") {
		t.Errorf("wrong secret: %v", err)
	}
	if err != nil && (strings.Contains(err.Error(), "wrong-secret-value-123") || strings.Contains(err.Error(), f.g.SecretKey)) {
		t.Errorf("the error holds a secret: %v", err)
	}
}

func TestSourceDefaultCredentialChain(t *testing.T) {
	f := newFixture(t, "")
	f.put(t, "a.csv", []byte("x,y\n"))
	// Without credentials the SDK's chain is used: here, the environment.
	t.Setenv("AWS_ACCESS_KEY_ID", f.g.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", f.g.SecretKey)
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	conn := f.conn
	conn.Credentials = model.Credentials{}
	src, err := New(f.ctx, conn, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	items, err := src.List(f.ctx, model.Object{File: &model.FileObject{Path: "a.csv"}})
	if err != nil || len(items) != 1 {
		t.Fatalf("%v %v", items, err)
	}
}

func TestSourceOpen(t *testing.T) {
	f := newFixture(t, "p")
	const partSize = 64 << 10
	big := randomBytes(10*partSize+123, 1)
	small := randomBytes(5000, 2)
	f.put(t, "p/big.bin", big)
	f.put(t, "p/small.bin", small)
	f.put(t, "p/empty.bin", nil)
	src, err := New(f.ctx, f.conn, f.prov, Options{PartSize: partSize, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	items, err := src.List(f.ctx, model.Object{Prefix: &model.FileObject{Path: ""}})
	if err != nil || len(items) != 3 {
		t.Fatalf("%v %v", items, err)
	}
	byPath := map[string]connectors.Item{}
	for _, it := range items {
		byPath[it.Path] = it
	}
	check := func(it connectors.Item, data []byte, offset int64, parallel bool) {
		t.Helper()
		r, err := src.Open(f.ctx, it, offset)
		if err != nil {
			t.Fatalf("%s at %d: %v", it.Path, offset, err)
		}
		defer r.Close()
		if _, isRange := r.(*rangereader.Reader); isRange != parallel {
			t.Errorf("%s at %d: ranged reader %v, want %v", it.Path, offset, isRange, parallel)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s at %d: %v", it.Path, offset, err)
		}
		if !bytes.Equal(got, data[offset:]) {
			t.Fatalf("%s at %d: %d bytes differ from the %d expected", it.Path, offset, len(got), len(data)-int(offset))
		}
	}
	n := int64(len(big))
	for _, off := range []int64{0, 1, partSize - 1, partSize, 3*partSize + 7, n - partSize - 1} {
		check(byPath["big.bin"], big, off, true)
	}
	// The last part or less: one GET.
	for _, off := range []int64{n - partSize, n - 1, n} {
		check(byPath["big.bin"], big, off, false)
	}
	for _, off := range []int64{0, 1, 4999, 5000} {
		check(byPath["small.bin"], small, off, false)
	}
	check(byPath["empty.bin"], nil, 0, false)

	// Concurrency 1 streams one GET, whatever the size.
	one, err := New(f.ctx, f.conn, f.prov, Options{PartSize: partSize, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := one.Open(f.ctx, byPath["big.bin"], 5)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, big[5:]) {
		t.Fatalf("concurrency 1: %v", err)
	}
	r.Close()

	for _, bad := range []struct {
		it     connectors.Item
		offset int64
		want   string
	}{
		{byPath["small.bin"], -1, "negative offset"},
		{byPath["small.bin"], 5001, "fewer than the resume offset"},
		{connectors.Item{Path: "x", Ref: "outside.bin", Size: 1}, 0, "not an object key below"},
		{connectors.Item{Path: "x", Ref: "p/../x", Size: 1}, 0, "not an object key below"},
		{connectors.Item{Path: "gone", Ref: "p/gone.bin", Size: 3}, 0, "no longer exists"},
		{connectors.Item{Path: "gone", Ref: "p/gone.bin", Size: -1}, 0, "no longer exists"},
	} {
		_, err := src.Open(f.ctx, bad.it, bad.offset)
		if err == nil || !connectors.IsBadInput(err) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("open %s at %d: %v; want a BadInput saying %q", bad.it.Ref, bad.offset, err, bad.want)
		}
	}
}

func TestSourceOpenRefusesAnObjectChangedSinceListing(t *testing.T) {
	f := newFixture(t, "")
	f.put(t, "small.bin", randomBytes(1000, 3))
	f.put(t, "big.bin", randomBytes(300<<10, 4))
	src, err := New(f.ctx, f.conn, f.prov, Options{PartSize: 64 << 10, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	items, err := src.List(f.ctx, model.Object{Prefix: &model.FileObject{Path: "/"}})
	if err != nil {
		t.Fatal(err)
	}
	// Replaced with another size: both the single-GET and the ranged path refuse.
	f.put(t, "small.bin", randomBytes(999, 5))
	f.put(t, "big.bin", randomBytes(300<<10+1, 6))
	for _, it := range items {
		for _, off := range []int64{0, 10} {
			_, err := src.Open(f.ctx, it, off)
			if err == nil || !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "changed since it was listed") {
				t.Errorf("%s at %d: %v; want a BadInput saying it changed", it.Path, off, err)
			}
		}
	}
	// Same size, later modification time.
	it := items[1] // small.bin
	it.Size = 999
	it.ModTime = it.ModTime.Add(-time.Hour)
	if _, err := src.Open(f.ctx, it, 0); err == nil || !strings.Contains(err.Error(), "changed since it was listed") {
		t.Errorf("older listing time: %v", err)
	}
}

func TestSourceObjectReplacedMidRead(t *testing.T) {
	f := newFixture(t, "")
	const partSize = 64 << 10
	old := randomBytes(32*partSize, 7)
	f.put(t, "obj.bin", old)
	src, err := New(f.ctx, f.conn, f.prov, Options{PartSize: partSize, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	items, err := src.List(f.ctx, model.Object{File: &model.FileObject{Path: "obj.bin"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := src.Open(f.ctx, items[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make([]byte, partSize)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	// Same size, other bytes: only the ETag tells the versions apart.
	f.put(t, "obj.bin", randomBytes(len(old), 8))
	rest, err := io.ReadAll(r)
	got = append(got, rest...)
	if err == nil {
		t.Fatal("an object replaced during the read was read to the end")
	}
	if !strings.Contains(err.Error(), "was replaced while it was read") {
		t.Errorf("error %q does not say the object was replaced", err)
	}
	if !bytes.Equal(got, old[:len(got)]) {
		t.Fatal("bytes of the new version were delivered")
	}
	if errors.Is(err, connectors.ErrNotFound) {
		t.Error("a replaced object reported as missing")
	}
}
