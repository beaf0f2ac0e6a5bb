package databricks_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/databricks/fakedatabricks"
	"github.com/airlockhq/airlock/model"
)

const volume = "/Volumes/main/raw/landing"

func pdfBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func volumeFake(t *testing.T) *fakedatabricks.Server {
	return startFake(t, fakedatabricks.Options{
		Files: map[string][]byte{
			volume + "/a.csv":                    []byte("id,name\n1,x\n"),
			volume + "/reports/readme.txt":       []byte("read me"),
			volume + "/reports/2024/jan.pdf":     pdfBytes(1000),
			volume + "/reports/2024/feb.pdf":     pdfBytes(1200),
			volume + "/reports/2024/mar.pdf":     pdfBytes(10),
			volume + "/reports/2023/x.json":      []byte(`{"x":1}`),
			volume + "/reports/2023/y.json":      []byte(`{"y":2}`),
			volume + "/my folder/z data.parquet": []byte("PAR1"),
			"/Volumes/main/raw/other/secret.csv": []byte("not for this connection"),
		},
		Dirs:         []string{volume + "/empty/nested"},
		ListPageSize: 2,
	})
}

func prefixObject(p string) model.Object {
	return model.Object{Prefix: &model.FileObject{Path: p, Connection: "databricks"}}
}

func fileObject(p string) model.Object {
	return model.Object{File: &model.FileObject{Path: p, Connection: "databricks"}}
}

func TestVolumeListing(t *testing.T) {
	fake := volumeFake(t)
	src := newSource(t, connection(fake.URL+volume, patCreds), fastOptions())

	items, err := src.List(context.Background(), prefixObject(""))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.Path)
		if it.Ref != volume+"/"+it.Path || it.ModTime.IsZero() || time.Since(it.ModTime) > time.Minute {
			t.Errorf("item %+v: want Ref under the volume and the file's modification time", it)
		}
	}
	want := "a.csv my folder/z data.parquet reports/2023/x.json reports/2023/y.json reports/2024/feb.pdf reports/2024/jan.pdf reports/2024/mar.pdf reports/readme.txt"
	if strings.Join(got, " ") != want {
		t.Errorf("prefix / lists\n %v\nwant\n %v", strings.Join(got, " "), want)
	}
	if items[0].Size != 12 || items[0].EncodingFormat != "text/csv" || items[5].Size != 1000 || items[5].EncodingFormat != "application/pdf" {
		t.Errorf("items %+v, %+v: want sizes and media types", items[0], items[5])
	}
	pages := 0
	for _, r := range fake.Requests() {
		if strings.HasPrefix(r.Path, "/api/2.0/fs/directories/") && r.Status == 200 {
			pages++
		}
	}
	// 7 directories, several with more than 2 entries: paging is needed to
	// see everything.
	if pages <= 7 {
		t.Errorf("%d listing pages; with a page size of 2 there must be more than one per directory", pages)
	}

	items, err = src.List(context.Background(), prefixObject("reports/2024/"))
	if err != nil || len(items) != 3 || items[0].Path != "reports/2024/feb.pdf" {
		t.Errorf("prefix reports/2024/ = %+v, %v", items, err)
	}
	items, err = src.List(context.Background(), fileObject("reports/2024/jan.pdf"))
	if err != nil || len(items) != 1 || items[0].Path != "reports/2024/jan.pdf" || items[0].Size != 1000 || items[0].Ref != volume+"/reports/2024/jan.pdf" || items[0].ModTime.IsZero() {
		t.Errorf("file reports/2024/jan.pdf = %+v, %v", items, err)
	}
	items, err = src.List(context.Background(), fileObject("my folder/z data.parquet"))
	if err != nil || len(items) != 1 || items[0].Size != 4 || items[0].EncodingFormat != "application/vnd.apache.parquet" {
		t.Errorf("file with spaces = %+v, %v", items, err)
	}

	for _, c := range []struct {
		obj  model.Object
		want string
	}{
		{fileObject("reports"), "is a folder"},
		{fileObject("nope.csv"), "file nope.csv not found in " + volume},
		{fileObject("../other/secret.csv"), "escapes its root"},
		{fileObject("/Volumes/main/raw/other/secret.csv"), "absolute path"},
		{prefixObject("nope"), "prefix nope not found"},
		{prefixObject("a.csv"), "is a file, not a folder"},
		{prefixObject("empty"), "is empty"},
		{prefixObject("../other"), "escapes its root"},
	} {
		_, err := src.List(context.Background(), c.obj)
		if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("List(%s): err = %v; want bad input saying %q", c.obj.Describe(), err, c.want)
		}
	}
}

func TestVolumeOpen(t *testing.T) {
	fake := volumeFake(t)
	src := newSource(t, connection(fake.URL+volume, patCreds), fastOptions())
	items, err := src.List(context.Background(), fileObject("reports/2024/feb.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	it := items[0]
	read := func(offset int64) ([]byte, error) {
		rc, err := src.Open(context.Background(), it, offset)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	whole := pdfBytes(1200)
	for _, off := range []int64{0, 1, 700, 1199, 1200} {
		got, err := read(off)
		if err != nil || !bytes.Equal(got, whole[off:]) {
			t.Errorf("Open at %d: %d bytes, %v; want the %d bytes from there", off, len(got), err, 1200-off)
		}
	}
	if _, err := read(1201); !connectors.IsBadInput(err) {
		t.Errorf("Open past the end: err = %v; want bad input", err)
	}
	if _, err := read(-1); !connectors.IsBadInput(err) {
		t.Errorf("Open at -1: err = %v; want bad input", err)
	}

	outside := connectors.Item{Path: "secret.csv", Ref: "/Volumes/main/raw/other/secret.csv", Size: 23}
	if _, err := src.Open(context.Background(), outside, 0); !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "outside the connection's volume folder") {
		t.Errorf("Open outside the volume: err = %v", err)
	}
	sneaky := connectors.Item{Path: "x", Ref: volume + "/../other/secret.csv", Size: 23}
	if _, err := src.Open(context.Background(), sneaky, 0); !connectors.IsBadInput(err) {
		t.Errorf("Open with .. in the ref: err = %v", err)
	}
	if _, err := src.Open(context.Background(), connectors.Item{Path: "patients.parquet", Ref: "table:patients", Size: -1}, 0); !connectors.IsBadInput(err) {
		t.Errorf("Open of a table item: err = %v", err)
	}

	// The file changes after it was listed: resuming must not splice the
	// new version onto the old bytes.
	if err := fake.PutFile(volume+"/reports/2024/feb.pdf", pdfBytes(1300), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := read(600); !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "changed since it was listed") {
		t.Errorf("resume of a modified file: err = %v; want bad input saying it changed", err)
	}
	// Same modification time, other size (a clock that did not move).
	if err := fake.PutFile(volume+"/reports/2024/feb.pdf", pdfBytes(1300), it.ModTime); err != nil {
		t.Fatal(err)
	}
	if _, err := read(600); !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "listed with 1200 bytes, now 1300") {
		t.Errorf("resume of a resized file: err = %v", err)
	}
	if _, err := read(0); !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "listed with 1200 bytes, now 1300") {
		t.Errorf("open of a resized file: err = %v", err)
	}
}

func TestVolumeOpenRetriesThrottling(t *testing.T) {
	fake := volumeFake(t)
	src := newSource(t, connection(fake.URL+volume, patCreds), fastOptions())
	items, err := src.List(context.Background(), prefixObject("reports/2023"))
	if err != nil {
		t.Fatal(err)
	}
	fake.FailNextAPI(2, 429, "0")
	rc, err := src.Open(context.Background(), items[0], 2)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if string(got) != `x":1}` {
		t.Errorf("read %q", got)
	}
	var statuses []int
	for _, r := range fake.Requests() {
		if strings.HasPrefix(r.Path, "/api/2.0/fs/files/") && r.Method == "GET" {
			statuses = append(statuses, r.Status)
		}
	}
	if len(statuses) != 3 || statuses[0] != 429 || statuses[1] != 429 || statuses[2] != 206 {
		t.Errorf("download answers %v, want 429, 429, 206", statuses)
	}
}

func TestVolumeFromPrefixField(t *testing.T) {
	fake := volumeFake(t)
	conn := connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds)
	conn.Prefix = volume + "/reports/"
	src := newSource(t, conn, fastOptions())
	items, err := src.List(context.Background(), prefixObject("2023"))
	if err != nil || len(items) != 2 || items[0].Path != "2023/x.json" {
		t.Fatalf("List = %+v, %v", items, err)
	}

	noVolume := newSource(t, connection(fake.URL+"/sql/1.0/warehouses/"+warehouseID, patCreds), fastOptions())
	for _, obj := range []model.Object{fileObject("a.csv"), prefixObject("")} {
		_, err := noVolume.List(context.Background(), obj)
		if !connectors.IsBadInput(err) || !strings.Contains(err.Error(), "/Volumes/<catalog>/<schema>/<volume>") {
			t.Errorf("List(%s) without a volume: err = %v", obj.Describe(), err)
		}
	}
	_, err = noVolume.Open(context.Background(), connectors.Item{Path: "a.csv", Ref: volume + "/a.csv"}, 0)
	if !connectors.IsBadInput(err) {
		t.Errorf("Open without a volume: err = %v", err)
	}
}

func TestVolumeListHonoursCancellation(t *testing.T) {
	fake := volumeFake(t)
	src := newSource(t, connection(fake.URL+volume, patCreds), fastOptions())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.List(ctx, prefixObject("")); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}
