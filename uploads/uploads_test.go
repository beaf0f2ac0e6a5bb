package uploads

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tus "github.com/tus/tusd/v2/pkg/handler"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/localstore"
	s3store "github.com/airlockhq/airlock/connectors/s3"
	"github.com/airlockhq/airlock/model"
)

// kind is a staging store the tests run against.
type kind struct {
	name string
	// partSize is the store's part size; 0 for a store without parts,
	// which is checkpointed at the end of every PATCH.
	partSize int64
	open     func(t *testing.T) (connectors.Store, string) // the store, and its bucket for S3
}

var kinds = []kind{
	{"local", 0, func(t *testing.T) (connectors.Store, string) { return newLocalStore(t), "" }},
	{"s3", s3store.MinUploadPartSize, func(t *testing.T) (connectors.Store, string) { return newS3Store(t) }},
}

// Sizes that make S3 uploads cross several 5 MiB parts with PATCHes that
// are bigger than a part and never aligned to one.
const (
	fileSize   = 23*mib + 123
	chunkSize7 = 7*mib + 13
)

// durable is the offset a store can make durable after n bytes: all of
// them, or the last whole part.
func (k kind) durable(n int64) int64 {
	if k.partSize == 0 {
		return n
	}
	return n / k.partSize * k.partSize
}

func forEachStore(t *testing.T, test func(t *testing.T, k kind, st connectors.Store, bucket string)) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			st, bucket := k.open(t)
			test(t, k, st, bucket)
		})
	}
}

func TestUploadWholeFile(t *testing.T) {
	forEachStore(t, func(t *testing.T, k kind, st connectors.Store, bucket string) {
		s := serve(t, st, Options{})
		data := randomData(fileSize, 1)
		r := s.tus.create(map[string]string{"request": reqID, "filename": "visits.csv", "relativePath": "data/visits.csv", "filetype": "text/csv"}, fileSize)
		if r.status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		url := r.header.Get("Location")
		if h := s.tus.head(url); h.status != http.StatusOK || h.offset() != 0 || h.header.Get("Upload-Length") != fmt.Sprint(fileSize) {
			t.Fatalf("HEAD of a new upload: %d offset %d length %s", h.status, h.offset(), h.header.Get("Upload-Length"))
		}
		for off := int64(0); off < fileSize; {
			end := min(off+chunkSize7, fileSize)
			p := s.tus.patch(url, off, data[off:end])
			if p.status != http.StatusNoContent || p.offset() != end {
				t.Fatalf("PATCH %d..%d: %d offset %d %s", off, end, p.status, p.offset(), p.body)
			}
			if end < fileSize {
				// The bookkeeping holds the durable checkpoint: every byte
				// for a local store, the last whole part for S3.
				rec := storedRecord(t, st, url)
				if rec.Done || rec.Checkpoint.Offset != k.durable(end) {
					t.Fatalf("after %d bytes the record says done=%v checkpoint %d, want %d", end, rec.Done, rec.Checkpoint.Offset, k.durable(end))
				}
				if k.partSize > 0 && rec.Checkpoint.Token == "" {
					t.Fatalf("after %d bytes the S3 checkpoint has no upload to resume", end)
				}
				if h := s.tus.head(url); h.offset() != end {
					t.Fatalf("HEAD after %d bytes: offset %d", end, h.offset())
				}
				// Nothing shows under the final name before the last byte.
				if _, err := st.Stat(testContext(t), reqID+"/data/visits.csv"); !errors.Is(err, connectors.ErrNotFound) {
					t.Fatalf("the file shows before it is complete: %v", err)
				}
			}
			off = end
		}
		sum, n := storedDigest(t, st, reqID+"/data/visits.csv")
		if sum != digest(data) || n != fileSize {
			t.Fatalf("stored %d bytes with SHA-256 %s, want %d bytes %s", n, sum, fileSize, digest(data))
		}
		rec := storedRecord(t, st, url)
		if !rec.Done || rec.Size != fileSize || rec.Path != "data/visits.csv" || rec.MetaData["filetype"] != "text/csv" || rec.CreatedAt.IsZero() {
			t.Fatalf("record after the upload: %+v", rec)
		}
		if got := keys(t, st, reqID); len(got) != 2 || got[0] != reqID+"/.uploads/"+rec.ID+".json" || got[1] != reqID+"/data/visits.csv" {
			t.Fatalf("staging area holds %v", got)
		}
		if h := s.tus.head(url); h.status != http.StatusOK || h.offset() != fileSize {
			t.Fatalf("HEAD of a finished upload: %d offset %d", h.status, h.offset())
		}
		files, err := s.h.Files(testContext(t), reqID)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 1 || files[0] != (File{ID: rec.ID, Path: "data/visits.csv", Size: fileSize, Offset: fileSize, Done: true, CreatedAt: rec.CreatedAt}) {
			t.Fatalf("Files = %+v", files)
		}
		exp, err := s.h.Expected(testContext(t), reqID)
		if err != nil || len(exp) != 1 || exp[0] != (model.ExpectedFile{Path: "data/visits.csv", Size: fileSize}) {
			t.Fatalf("Expected = %+v, %v", exp, err)
		}
		for _, c := range s.auth.take() {
			if !strings.HasSuffix(c, " "+reqID) {
				t.Fatalf("Authorize was called with %q, want request %s", c, reqID)
			}
		}
		if k.name == "s3" {
			if ups := multipartUploads(t, bucket); len(ups) != 0 {
				t.Fatalf("multipart uploads left in progress: %v", ups)
			}
		}
	})
}

func TestDroppedConnectionResumes(t *testing.T) {
	forEachStore(t, func(t *testing.T, k kind, st connectors.Store, bucket string) {
		s := serve(t, st, Options{})
		data := randomData(fileSize, 2)
		url := s.tus.newUpload("big.bin", fileSize)
		s.tus.sendAll(url, data[:3*mib+1], 0, 3*mib+1)
		// The next PATCH sends the rest but the connection drops 9 MiB in.
		from := int64(3*mib + 1)
		cut := 9*mib + 5
		_, err := s.tus.send("PATCH", url, map[string]string{
			"Upload-Offset": fmt.Sprint(from),
			"Content-Type":  "application/offset+octet-stream",
		}, &failingReader{data: data[from:], n: cut}, fileSize-from)
		if err == nil {
			t.Fatal("the PATCH whose body failed succeeded")
		}
		resumed := s.tus.resume(url, data, 6*mib+7)
		if resumed <= from || resumed > from+int64(cut) {
			t.Fatalf("resumed at byte %d, want past %d (what the first PATCH sent) and at most %d (what the dropped one sent)", resumed, from, from+int64(cut))
		}
		t.Logf("resumed at byte %d after the connection dropped at byte %d", resumed, from+int64(cut))
		if sum, n := storedDigest(t, st, reqID+"/big.bin"); sum != digest(data) || n != fileSize {
			t.Fatalf("stored %d bytes with SHA-256 %s, want %s", n, sum, digest(data))
		}
	})
}

func TestResumeAfterRestart(t *testing.T) {
	forEachStore(t, func(t *testing.T, k kind, st connectors.Store, bucket string) {
		s := serve(t, st, Options{})
		data := randomData(fileSize, 3)
		url := s.tus.newUpload("big.bin", fileSize)
		sent := int64(2 * chunkSize7)
		s.tus.sendAll(url, data[:sent], 0, chunkSize7)
		s.crash()

		// A new process over the same store finds the upload in its
		// bookkeeping and resumes from what the store durably holds.
		s2 := serve(t, st, Options{})
		url2 := strings.Replace(url, s.tus.base, s2.tus.base, 1)
		h := s2.tus.head(url2)
		if h.status != http.StatusOK || h.offset() != k.durable(sent) {
			t.Fatalf("HEAD after a restart: %d offset %d, want %d", h.status, h.offset(), k.durable(sent))
		}
		if k.durable(sent) < sent {
			if r := s2.tus.patch(url2, sent, data[sent:sent+10]); r.status != http.StatusConflict {
				t.Fatalf("PATCH from the offset before the restart: %d, want 409 (the server holds less)", r.status)
			}
		}
		s2.tus.sendAll(url2, data, k.durable(sent), chunkSize7)
		if sum, n := storedDigest(t, st, reqID+"/big.bin"); sum != digest(data) || n != fileSize {
			t.Fatalf("stored %d bytes with SHA-256 %s, want %s", n, sum, digest(data))
		}
		if k.name == "s3" {
			if ups := multipartUploads(t, bucket); len(ups) != 0 {
				t.Fatalf("multipart uploads left in progress: %v", ups)
			}
		}
	})
}

func TestRestartAfterPartialDataLost(t *testing.T) {
	st := newLocalStore(t)
	s := serve(t, st, Options{})
	data := randomData(3*mib, 4)
	url := s.tus.newUpload("lost.bin", int64(len(data)))
	s.tus.sendAll(url, data[:mib], 0, mib)
	s.crash()
	if err := os.Remove(filepath.Join(st.Root(), localstore.PartialDir, reqID, "lost.bin.part")); err != nil {
		t.Fatal(err)
	}
	s2 := serve(t, st, Options{})
	url2 := strings.Replace(url, s.tus.base, s2.tus.base, 1)
	// The record says 1 MiB, but the store holds nothing: HEAD says so,
	// and the record is corrected.
	if h := s2.tus.head(url2); h.status != http.StatusOK || h.offset() != 0 {
		t.Fatalf("HEAD after the partial file was lost: %d offset %d, want 0", h.status, h.offset())
	}
	if rec := storedRecord(t, st, url); rec.Checkpoint.Offset != 0 {
		t.Fatalf("the record still says %d bytes are kept", rec.Checkpoint.Offset)
	}
	s2.tus.sendAll(url2, data, 0, mib+3)
	if sum, _ := storedDigest(t, st, reqID+"/lost.bin"); sum != digest(data) {
		t.Fatal("wrong bytes after starting again")
	}
}

func TestRestartBetweenCommitAndRecord(t *testing.T) {
	st := newLocalStore(t)
	s := serve(t, st, Options{})
	data := randomData(2*mib+5, 5)
	url := s.tus.newUpload("x.bin", int64(len(data)))
	s.tus.sendAll(url, data, 0, mib)
	s.crash()
	// As if the process died after Commit but before recording it.
	rec := storedRecord(t, st, url)
	rec.Done, rec.Checkpoint = false, connectors.Checkpoint{Offset: mib}
	s2 := serve(t, st, Options{})
	if err := s2.h.writeRecord(testContext(t), rec); err != nil {
		t.Fatal(err)
	}
	url2 := strings.Replace(url, s.tus.base, s2.tus.base, 1)
	if h := s2.tus.head(url2); h.status != http.StatusOK || h.offset() != int64(len(data)) {
		t.Fatalf("HEAD of a committed upload: %d offset %d, want %d", h.status, h.offset(), len(data))
	}
	if rec := storedRecord(t, st, url); !rec.Done {
		t.Fatal("the committed upload is not recorded as done")
	}
	if sum, _ := storedDigest(t, st, reqID+"/x.bin"); sum != digest(data) {
		t.Fatal("the committed file changed")
	}
}

func TestStagingAreaDeleted(t *testing.T) {
	forEachStore(t, func(t *testing.T, k kind, st connectors.Store, bucket string) {
		s := serve(t, st, Options{})
		data := randomData(fileSize, 6)
		url := s.tus.newUpload("gone.bin", fileSize)
		s.tus.sendAll(url, data[:chunkSize7], 0, chunkSize7) // a live writer, mid-part for S3
		// The request expires: the workflow deletes its staging area.
		if err := st.DeletePrefix(testContext(t), reqID); err != nil {
			t.Fatal(err)
		}
		r := s.tus.patch(url, chunkSize7, data[chunkSize7:2*chunkSize7])
		if r.status != http.StatusNotFound || !strings.Contains(r.message(), "expired or was cancelled") {
			t.Fatalf("PATCH after the area was deleted: %d %s", r.status, r.body)
		}
		if h := s.tus.head(url); h.status != http.StatusNotFound {
			t.Fatalf("HEAD after the area was deleted: %d", h.status)
		}
		if d := s.tus.must("DELETE", url, nil, nil, 0); d.status != http.StatusNotFound {
			t.Fatalf("DELETE after the area was deleted: %d", d.status)
		}
		if got := keys(t, st, reqID); len(got) != 0 {
			t.Fatalf("the deleted area came back: %v", got)
		}
		if s.h.lookup(url[strings.LastIndex(url, "/")+1:]) != nil {
			t.Fatal("the stale writer is still kept")
		}
		files, err := s.h.Files(testContext(t), reqID)
		if err != nil || len(files) != 0 {
			t.Fatalf("Files after the area was deleted: %v %v", files, err)
		}
		switch k.name {
		case "local":
			if p, _ := st.(*localstore.Store).Partials(); len(p) != 0 {
				t.Fatalf("partial files left: %v", p)
			}
		case "s3":
			if ups := multipartUploads(t, bucket); len(ups) != 0 {
				t.Fatalf("multipart uploads left in progress: %v", ups)
			}
		}
	})
}

func TestTerminate(t *testing.T) {
	forEachStore(t, func(t *testing.T, k kind, st connectors.Store, bucket string) {
		s := serve(t, st, Options{})
		data := randomData(12*mib, 7)
		partial := s.tus.newUpload("partial.bin", int64(len(data)))
		s.tus.sendAll(partial, data[:chunkSize7], 0, chunkSize7) // a part uploaded to S3
		done := s.tus.newUpload("done.bin", 100)
		s.tus.sendAll(done, data[:100], 0, 100)

		for _, url := range []string{partial, done} {
			if d := s.tus.must("DELETE", url, nil, nil, 0); d.status != http.StatusNoContent {
				t.Fatalf("DELETE: %d %s", d.status, d.body)
			}
			if h := s.tus.head(url); h.status != http.StatusNotFound {
				t.Fatalf("HEAD of a deleted upload: %d", h.status)
			}
		}
		if got := keys(t, st, reqID); len(got) != 0 {
			t.Fatalf("left after deleting every upload: %v", got)
		}
		switch k.name {
		case "local":
			if p, _ := st.(*localstore.Store).Partials(); len(p) != 0 {
				t.Fatalf("partial files left: %v", p)
			}
		case "s3":
			if ups := multipartUploads(t, bucket); len(ups) != 0 {
				t.Fatalf("multipart uploads left in progress: %v", ups)
			}
		}
		// The name is free again.
		again := s.tus.newUpload("done.bin", 100)
		s.tus.sendAll(again, data[100:200], 0, 100)
		if sum, _ := storedDigest(t, st, reqID+"/done.bin"); sum != digest(data[100:200]) {
			t.Fatal("wrong bytes after uploading a deleted name again")
		}
	})
}

func TestIdleWriterLetGo(t *testing.T) {
	forEachStore(t, func(t *testing.T, k kind, st connectors.Store, bucket string) {
		s := serve(t, st, Options{IdleTimeout: 50 * time.Millisecond})
		data := randomData(fileSize, 8)
		url := s.tus.newUpload("idle.bin", fileSize)
		s.tus.sendAll(url, data[:chunkSize7], 0, chunkSize7)
		id := url[strings.LastIndex(url, "/")+1:]
		deadline := time.Now().Add(5 * time.Second)
		for s.h.lookup(id) != nil {
			if time.Now().After(deadline) {
				t.Fatal("the idle writer was not let go of")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if h := s.tus.head(url); h.offset() != k.durable(chunkSize7) {
			t.Fatalf("HEAD after the writer was let go of: offset %d, want %d", h.offset(), k.durable(chunkSize7))
		}
		s.tus.sendAll(url, data, k.durable(chunkSize7), chunkSize7)
		if sum, _ := storedDigest(t, st, reqID+"/idle.bin"); sum != digest(data) {
			t.Fatal("wrong bytes after resuming an idle upload")
		}
	})
}

func TestLimits(t *testing.T) {
	st := newLocalStore(t)
	s := serve(t, st, Options{Limits: model.UploadLimits{MaxFileSize: 10 * mib, MaxRequestSize: 15 * mib, MaxFiles: 3}})
	meta := func(name string) map[string]string { return map[string]string{"request": reqID, "filename": name} }

	r := s.tus.create(meta("huge.csv"), 10*mib+1)
	if r.status != http.StatusRequestEntityTooLarge || !containsAll(r.message(), "huge.csv", "10.0 MiB (10485760 bytes)", "maxFileSize") {
		t.Fatalf("file over the limit: %d %s", r.status, r.body)
	}
	a := s.tus.newUpload("a.csv", 10*mib)
	r = s.tus.create(meta("b.csv"), 5*mib+1)
	if r.status != http.StatusRequestEntityTooLarge || !containsAll(r.message(), "b.csv", "15.0 MiB (15728640 bytes)", "maxRequestSize", "delete files") {
		t.Fatalf("request over its total: %d %s", r.status, r.body)
	}
	s.tus.newUpload("b.csv", 5*mib)
	s.tus.newUpload("c.csv", 0)
	r = s.tus.create(meta("d.csv"), 0)
	if r.status != http.StatusRequestEntityTooLarge || !containsAll(r.message(), "d.csv", "at most 3", "delete files") {
		t.Fatalf("a file too many: %d %s", r.status, r.body)
	}
	// Deleting a file makes room.
	if d := s.tus.must("DELETE", a, nil, nil, 0); d.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", d.status)
	}
	s.tus.newUpload("d.csv", 10*mib)

	r = s.tus.create(meta("b.csv"), 1)
	if r.status != http.StatusConflict || !containsAll(r.message(), "b.csv", "already being uploaded", "delete it first") {
		t.Fatalf("a duplicate name: %d %s", r.status, r.body)
	}
	r = s.tus.create(meta("c.csv"), 0)
	if r.status != http.StatusConflict || !containsAll(r.message(), "c.csv is already uploaded", "delete it first") {
		t.Fatalf("a duplicate of a finished file: %d %s", r.status, r.body)
	}
	// A file cannot also be a folder.
	s2 := serve(t, newLocalStore(t), Options{})
	s2.tus.newUpload("data", 1)
	r = s2.tus.create(map[string]string{"request": reqID, "filename": "x.csv", "relativePath": "data/x.csv"}, 1)
	if r.status != http.StatusConflict || !containsAll(r.message(), "data/x.csv", "data is a file") {
		t.Fatalf("a file below a file: %d %s", r.status, r.body)
	}
	s2.tus.newUpload("dir/y.csv", 1)
	r = s2.tus.create(map[string]string{"request": reqID, "filename": "dir"}, 1)
	if r.status != http.StatusConflict || !containsAll(r.message(), "dir cannot be uploaded", "it is a folder") {
		t.Fatalf("a file where a folder is: %d %s", r.status, r.body)
	}
}

func TestConcurrentCreationsKeepLimits(t *testing.T) {
	s := serve(t, newLocalStore(t), Options{Limits: model.UploadLimits{MaxFiles: 3}})
	var wg sync.WaitGroup
	statuses := make([]int, 12)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.tus.send("POST", s.tus.base, map[string]string{
				"Upload-Length":   "10",
				"Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": fmt.Sprintf("f%d.csv", i)}),
			}, nil, 0)
			if err == nil {
				statuses[i] = r.status
			}
		}()
	}
	wg.Wait()
	created := 0
	for _, st := range statuses {
		switch st {
		case http.StatusCreated:
			created++
		case http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("statuses %v", statuses)
		}
	}
	if created != 3 {
		t.Fatalf("%d uploads created with a limit of 3 files (statuses %v)", created, statuses)
	}
}

func TestCreationRefusals(t *testing.T) {
	st := newLocalStore(t)
	s := serve(t, st, Options{})
	for _, tc := range []struct {
		name   string
		hdr    map[string]string
		status int
		want   []string
	}{
		{"no length", map[string]string{"Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "a.csv"})},
			400, []string{"Upload-Length is required"}},
		{"deferred length", map[string]string{"Upload-Defer-Length": "1", "Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "a.csv"})},
			400, []string{"Upload-Length is required", "deferred length is not supported"}},
		{"no request", map[string]string{"Upload-Length": "1", "Upload-Metadata": metadata(map[string]string{"filename": "a.csv"})},
			400, []string{"no request", "metadata key request"}},
		{"bad request id", map[string]string{"Upload-Length": "1", "Upload-Metadata": metadata(map[string]string{"request": "../etc", "filename": "a.csv"})},
			400, []string{`"../etc" is not an upload request id`}},
		{"no filename", map[string]string{"Upload-Length": "1", "Upload-Metadata": metadata(map[string]string{"request": reqID})},
			400, []string{"no filename", "metadata key filename"}},
		{"dot-dot", map[string]string{"Upload-Length": "1", "Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "../../x.csv"})},
			400, []string{`file name "../../x.csv"`, `".."`}},
		{"bookkeeping folder", map[string]string{"Upload-Length": "1", "Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "x.json", "relativePath": ".uploads/x.json"})},
			400, []string{".uploads", "reserved"}},
		{"crate", map[string]string{"Upload-Length": "1", "Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "ro-crate-metadata.json"})},
			400, []string{"RO-Crate"}},
		{"backslash path", map[string]string{"Upload-Length": "1", "Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "x.csv", "relativePath": `dir\x.csv`})},
			400, []string{"backslash"}},
		{"bad length", map[string]string{"Upload-Length": "-5", "Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "a.csv"})},
			400, nil},
	} {
		r := s.tus.must("POST", s.tus.base, tc.hdr, nil, 0)
		if r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
			continue
		}
		if len(tc.want) > 0 && !containsAll(r.message(), tc.want...) {
			t.Errorf("%s: %q does not say %q", tc.name, r.message(), tc.want)
		}
	}
	if got := keys(t, st, ""); len(got) != 0 {
		t.Fatalf("refused creations left %v", got)
	}
	// relativePath wins over filename; Uppy's "null" relativePath does not.
	s.tus.must("POST", s.tus.base, map[string]string{"Upload-Length": "0", "Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "x.csv", "relativePath": "folder/sub/x.csv"})}, nil, 0)
	s.tus.must("POST", s.tus.base, map[string]string{"Upload-Length": "0", "Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "y.csv", "relativePath": "null"})}, nil, 0)
	s.tus.must("POST", s.tus.base, map[string]string{"Upload-Length": "0", "Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "  spaced.csv "})}, nil, 0)
	files, err := s.h.Files(testContext(t), reqID)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	if strings.Join(paths, " ") != "folder/sub/x.csv spaced.csv y.csv" {
		t.Fatalf("paths %v", paths)
	}
}

func TestEmptyFileAndCreationWithUpload(t *testing.T) {
	forEachStore(t, func(t *testing.T, k kind, st connectors.Store, bucket string) {
		s := serve(t, st, Options{})
		// An empty file is complete as soon as it is created.
		empty := s.tus.newUpload("empty.csv", 0)
		if h := s.tus.head(empty); h.offset() != 0 || !storedRecord(t, st, empty).Done {
			t.Fatalf("empty upload: offset %d", h.offset())
		}
		if _, n := storedDigest(t, st, reqID+"/empty.csv"); n != 0 {
			t.Fatalf("the empty file holds %d bytes", n)
		}
		// creation-with-upload: the POST carries the bytes.
		data := randomData(mib+9, 9)
		r := s.tus.must("POST", s.tus.base, map[string]string{
			"Upload-Length":   fmt.Sprint(len(data)),
			"Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "inline.bin"}),
			"Content-Type":    "application/offset+octet-stream",
		}, strings.NewReader(string(data)), int64(len(data)))
		if r.status != http.StatusCreated || r.offset() != int64(len(data)) {
			t.Fatalf("creation with upload: %d offset %d %s", r.status, r.offset(), r.body)
		}
		if sum, _ := storedDigest(t, st, reqID+"/inline.bin"); sum != digest(data) {
			t.Fatal("wrong bytes from a creation with upload")
		}
	})
}

func TestExpectedNamesUnfinishedFiles(t *testing.T) {
	s := serve(t, newLocalStore(t), Options{})
	exp, err := s.h.Expected(testContext(t), reqID)
	if err != nil || len(exp) != 0 {
		t.Fatalf("Expected of a request without uploads: %v %v", exp, err)
	}
	data := randomData(1000, 10)
	x := s.tus.newUpload("x.csv", 1000)
	s.tus.sendAll(x, data[:400], 0, 400)
	b := s.tus.newUpload("b.csv", 10)
	s.tus.sendAll(b, data[:10], 0, 10)

	_, err = s.h.Expected(testContext(t), reqID)
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusConflict || err.Error() != "x.csv is 40% uploaded: finish or delete it, then confirm" {
		t.Fatalf("Expected with an unfinished file: %v", err)
	}
	files, err := s.h.Files(testContext(t), reqID)
	if err != nil || len(files) != 2 || files[0].Path != "b.csv" || !files[0].Done || files[1].Path != "x.csv" || files[1].Offset != 400 || files[1].Done {
		t.Fatalf("Files = %+v, %v", files, err)
	}
	y := s.tus.newUpload("y.csv", 1000)
	s.tus.sendAll(y, data[:999], 0, 999)
	_, err = s.h.Expected(testContext(t), reqID)
	if err == nil || !containsAll(err.Error(), "2 files are not finished", "x.csv is 40% uploaded", "y.csv is 99% uploaded", "finish or delete them") {
		t.Fatalf("Expected with two unfinished files: %v", err)
	}
	s.tus.sendAll(x, data, 400, 600)
	s.tus.sendAll(y, data, 999, 1)
	exp, err = s.h.Expected(testContext(t), reqID)
	if err != nil || len(exp) != 3 || exp[0] != (model.ExpectedFile{Path: "b.csv", Size: 10}) || exp[2] != (model.ExpectedFile{Path: "y.csv", Size: 1000}) {
		t.Fatalf("Expected = %+v, %v", exp, err)
	}
}

func TestAuthorize(t *testing.T) {
	st := newLocalStore(t)
	s := serve(t, st, Options{})
	url := s.tus.newUpload("a.csv", 10)
	id := url[strings.LastIndex(url, "/")+1:]
	if calls := s.auth.take(); len(calls) != 1 || calls[0] != "POST "+reqID {
		t.Fatalf("Authorize calls for a creation: %v", calls)
	}

	s.auth.refuse = func(r *http.Request, requestID string) error {
		switch r.Header.Get("X-Test-Who") {
		case "":
			return Refuse(http.StatusUnauthorized, "sign in to upload files")
		case "tusd":
			return tus.NewError("ERR_CLOSED", "request "+requestID+" no longer accepts files", http.StatusConflict)
		case "broken":
			return errors.New("temporal is down")
		}
		return fmt.Errorf("checking: %w", Refuse(http.StatusForbidden, "you may not upload to %s", requestID))
	}
	cases := []struct {
		method, url, who string
		status           int
		msg              string
	}{
		{"POST", s.tus.base, "", 401, "sign in to upload files"},
		{"HEAD", url, "", 401, ""},
		{"PATCH", url, "eve", 403, "you may not upload to " + reqID},
		{"DELETE", url, "eve", 403, "you may not upload to " + reqID},
		{"PATCH", url, "tusd", 409, "request " + reqID + " no longer accepts files"},
		{"HEAD", url, "broken", 500, ""},
		{"DELETE", url, "broken", 500, "could not check whether you may upload to request " + reqID},
	}
	for _, c := range cases {
		hdr := map[string]string{
			"X-Test-Who":      c.who,
			"Upload-Length":   "10",
			"Upload-Offset":   "0",
			"Content-Type":    "application/offset+octet-stream",
			"Upload-Metadata": metadata(map[string]string{"request": reqID, "filename": "b.csv"}),
		}
		var body *strings.Reader
		if c.method == "PATCH" {
			body = strings.NewReader("0123456789")
		}
		var r reply
		if body != nil {
			r = s.tus.must(c.method, c.url, hdr, body, 10)
		} else {
			r = s.tus.must(c.method, c.url, hdr, nil, 0)
		}
		if r.status != c.status {
			t.Errorf("%s as %q: %d %s, want %d", c.method, c.who, r.status, r.body, c.status)
			continue
		}
		if c.msg != "" && !strings.Contains(r.message(), c.msg) {
			t.Errorf("%s as %q: message %q, want %q", c.method, c.who, r.message(), c.msg)
		}
	}
	if calls := s.auth.take(); len(calls) != len(cases) {
		t.Fatalf("Authorize was called %d times for %d requests: %v", len(calls), len(cases), calls)
	}
	// Nothing was written or deleted by the refused requests.
	if rec := storedRecord(t, st, url); rec.Checkpoint.Offset != 0 || rec.Done {
		t.Fatalf("a refused request changed the upload: %+v", rec)
	}
	if files, _ := s.h.Files(testContext(t), reqID); len(files) != 1 || files[0].ID != id {
		t.Fatalf("a refused request changed the uploads: %+v", files)
	}

	// Malformed ids are not found, without asking Authorize.
	s.auth.refuse = nil
	for _, bad := range []string{"nope", reqID + ".xyz", reqID + ".0123456789ABCDEF", "a/b." + strings.Repeat("0", 16)} {
		if r := s.tus.must("HEAD", s.tus.base+bad, nil, nil, 0); r.status != http.StatusNotFound {
			t.Errorf("HEAD %s: %d", bad, r.status)
		}
	}
	if calls := s.auth.take(); len(calls) != 0 {
		t.Fatalf("Authorize was asked about malformed ids: %v", calls)
	}
	// A well-formed id of an upload that does not exist.
	if r := s.tus.head(s.tus.base + reqID + "." + strings.Repeat("0", 16)); r.status != http.StatusNotFound {
		t.Fatalf("HEAD of a missing upload: %d", r.status)
	}
	// Quarantined data is never downloaded.
	if r := s.tus.must("GET", url, nil, nil, 0); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d %s", r.status, r.body)
	}
	// Protocol discovery needs no authorisation.
	s.auth.take()
	if r := s.tus.must("OPTIONS", s.tus.base, nil, nil, 0); r.status != http.StatusOK || r.header.Get("Tus-Version") != "1.0.0" || !strings.Contains(r.header.Get("Tus-Extension"), "termination") {
		t.Fatalf("OPTIONS: %d %v", r.status, r.header)
	}
	if calls := s.auth.take(); len(calls) != 0 {
		t.Fatalf("Authorize was asked about OPTIONS: %v", calls)
	}
	// Outside the base path nothing is served.
	if r := s.tus.must("HEAD", strings.TrimSuffix(s.srv.URL+basePath, "/")+"x/"+id, nil, nil, 0); r.status != http.StatusNotFound {
		t.Fatalf("HEAD outside the base path: %d", r.status)
	}
}

func TestOptionsAndBasePath(t *testing.T) {
	s := serve(t, newLocalStore(t), Options{Limits: model.UploadLimits{MaxFileSize: 1234}})
	r := s.tus.must("OPTIONS", s.tus.base, nil, nil, 0)
	if r.header.Get("Tus-Max-Size") != "1234" {
		t.Fatalf("OPTIONS: Tus-Max-Size %q", r.header.Get("Tus-Max-Size"))
	}
	// An absolute BasePath gives Locations at the public address.
	s2 := serve(t, newLocalStore(t), Options{BasePath: "https://airlock.example/api/v1/files"})
	r = s2.tus.create(map[string]string{"request": reqID, "filename": "a.csv"}, 1)
	if r.status != http.StatusCreated || !strings.HasPrefix(r.header.Get("Location"), "https://airlock.example/api/v1/files/"+reqID+".") {
		t.Fatalf("Location with an absolute base path: %d %q", r.status, r.header.Get("Location"))
	}
}

func TestNewHandlerRefusesBadOptions(t *testing.T) {
	st := newLocalStore(t)
	allow := func(*http.Request, string) error { return nil }
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Authorize: allow, BasePath: "/f/"}, "Options.Store"},
		{Options{Store: st, BasePath: "/f/"}, "Options.Authorize"},
		{Options{Store: st, Authorize: allow}, "BasePath"},
		{Options{Store: st, Authorize: allow, BasePath: "/f/", Limits: model.UploadLimits{MaxFiles: -1}}, "0 for no limit"},
	} {
		h, err := NewHandler(tc.o)
		if err == nil {
			h.Close()
			t.Errorf("NewHandler(%+v) succeeded", tc.o)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewHandler: %v does not say %q", err, tc.want)
		}
	}
}

func TestSplitUploadID(t *testing.T) {
	id := newUploadID(reqID)
	if req, ok := splitUploadID(id); !ok || req != reqID {
		t.Fatalf("splitUploadID(%q) = %q, %v", id, req, ok)
	}
	if req, ok := splitUploadID("upload-my.data-x1." + strings.Repeat("a", 16)); !ok || req != "upload-my.data-x1" {
		t.Fatalf("a request id with a dot: %q %v", req, ok)
	}
	for _, bad := range []string{"", ".", reqID, reqID + ".", "." + strings.Repeat("a", 16), reqID + "." + strings.Repeat("a", 15), reqID + ".." + strings.Repeat("a", 16)[1:], "../x." + strings.Repeat("a", 16)} {
		if req, ok := splitUploadID(bad); ok {
			t.Errorf("splitUploadID(%q) = %q, want a refusal", bad, req)
		}
	}
}

func TestBytesText(t *testing.T) {
	for n, want := range map[int64]string{0: "0 bytes", 1023: "1023 bytes", 1024: "1.0 KiB (1024 bytes)", 10 * mib: "10.0 MiB (10485760 bytes)", 3 << 30: "3.0 GiB (3221225472 bytes)"} {
		if got := bytesText(n); got != want {
			t.Errorf("bytesText(%d) = %q, want %q", n, got, want)
		}
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// generator yields n reproducible bytes without holding them, hashing what
// it yields.
type generator struct {
	r    *rand.ChaCha8
	left int64
	h    hash.Hash
}

func newGenerator(n int64, seed byte) *generator {
	return &generator{r: rand.NewChaCha8([32]byte{seed}), left: n, h: sha256.New()}
}

func (g *generator) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.left)]
	_, _ = g.r.Read(p)
	g.h.Write(p)
	g.left -= int64(len(p))
	return len(p), nil
}

func TestMemoryStaysBounded(t *testing.T) {
	forEachStore(t, func(t *testing.T, k kind, st connectors.Store, bucket string) {
		const size = 128 * mib
		s := serve(t, st, Options{})
		url := s.tus.newUpload("large.bin", size)
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var m runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}()
		gen := newGenerator(size, 11)
		r := s.tus.must("PATCH", url, map[string]string{
			"Upload-Offset": "0",
			"Content-Type":  "application/offset+octet-stream",
		}, gen, size)
		close(stop)
		<-sampled
		if r.status != http.StatusNoContent || r.offset() != size {
			t.Fatalf("PATCH of %d bytes: %d offset %d %s", size, r.status, r.offset(), r.body)
		}
		if sum, n := storedDigest(t, st, reqID+"/large.bin"); n != size || sum != hex.EncodeToString(gen.h.Sum(nil)) {
			t.Fatalf("stored %d bytes, SHA-256 %s", n, sum)
		}
		grew := int64(peak.Load()) - int64(base.HeapInuse)
		t.Logf("heap in use grew by at most %.1f MiB while streaming %d MiB in one PATCH", float64(grew)/mib, size/mib)
		// A chunk buffer, the store's buffers (a local store's 1 MiB write
		// buffer; S3's part size × (concurrency + 1) = 15 MiB), HTTP
		// buffers and garbage not yet collected: far below the file.
		if limit := int64(48 * mib); grew > limit {
			t.Fatalf("heap in use grew by %d MiB while streaming a %d MiB file: more than %d MiB", grew/mib, size/mib, limit/mib)
		}
	})
}
