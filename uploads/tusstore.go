package uploads

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tus "github.com/tus/tusd/v2/pkg/handler"

	"github.com/airlockhq/airlock/connectors"
)

// chunkSize is the buffer a PATCH body is copied through.
const chunkSize = 256 << 10

// storeTimeout bounds the bookkeeping done after a client went away.
const storeTimeout = time.Minute

// opContext is the context of the store operations a tus request makes:
// the handler's, with a time limit. tusd's own request context is not
// passed on to the store: its Value method copies tusd's request state,
// which races with tusd's handler when goroutines the store starts (the
// S3 SDK's transport) look values up after the call returned.
func (h *Handler) opContext(context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(h.base, storeTimeout)
}

var chunkBuffers = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// tusStore is tusd's data store over the staging store.
type tusStore struct{ h *Handler }

var (
	_ tus.DataStore           = tusStore{}
	_ tus.TerminaterDataStore = tusStore{}
)

// liveUpload is the writer of an upload kept between its PATCH requests.
// use is held while a tus request (or the reaper, or Close) works with it;
// tusd's lock already makes the requests of one upload take turns.
type liveUpload struct {
	use      sync.Mutex
	w        connectors.Writer
	partSize int64 // > 0 for a PartWriter: checkpoints only at its multiples
	cancel   context.CancelFunc
	// rec is the upload's record as last stored.
	rec            record
	offset         atomic.Int64 // w.Offset(), for Files
	lastCheckpoint time.Time
	lastUsed       time.Time
	committed      bool // Commit succeeded, the record may not say done yet
	dropped        bool // let go of: look up (or open) the writer again
}

// upload is one upload as tusd sees it during a request.
type upload struct {
	h   *Handler
	rec record
}

// NewUpload creates an upload after checking its name and the limits: its
// record is written, its file is opened on its first PATCH.
func (s tusStore) NewUpload(ctx context.Context, info tus.FileInfo) (tus.Upload, error) {
	ctx, cancel := s.h.opContext(ctx)
	defer cancel()
	h := s.h
	if info.SizeIsDeferred || info.Size < 0 {
		return nil, tusError(http.StatusBadRequest, "Upload-Length is required: send the file's size in bytes when creating the upload (deferred length is not supported)")
	}
	req := info.MetaData["request"]
	if !requestIDPattern.MatchString(req) {
		return nil, tusError(http.StatusBadRequest, "Upload-Metadata request %q is not an upload request id: give the id the upload request was created with", req)
	}
	name, err := uploadName(info.MetaData)
	if err != nil {
		return nil, err
	}
	p, err := SanitizeName(name)
	if err != nil {
		return nil, tusError(http.StatusBadRequest, "%v", err)
	}
	lim := h.limits
	if lim.MaxFileSize > 0 && info.Size > lim.MaxFileSize {
		return nil, tusError(http.StatusRequestEntityTooLarge, "%s is %s, larger than the %s a file may be: split it into smaller files, or ask an administrator to raise uploads.maxFileSize", p, bytesText(info.Size), bytesText(lim.MaxFileSize))
	}

	mu := h.creationLock(req)
	mu.Lock()
	defer mu.Unlock()
	recs, err := h.records(ctx, req)
	if err != nil {
		return nil, h.storeFailed(ctx, "checking the uploads of request "+req, err)
	}
	total := info.Size
	for _, r := range recs {
		switch {
		case r.Path == p:
			state := "already uploaded"
			if !r.Done {
				state = fmt.Sprintf("already being uploaded (%d%%)", percent(r.Checkpoint.Offset, r.Size))
			}
			return nil, tusError(http.StatusConflict, "%s is %s to request %s: delete it first to upload it again", p, state, req)
		case strings.HasPrefix(p, r.Path+"/"):
			return nil, tusError(http.StatusConflict, "%s cannot be uploaded: %s is a file in request %s, so it cannot be a folder too; rename one of them, or delete %s first", p, r.Path, req, r.Path)
		case strings.HasPrefix(r.Path, p+"/"):
			return nil, tusError(http.StatusConflict, "%s cannot be uploaded: it is a folder in request %s (holding %s), so it cannot be a file too; rename one of them", p, req, r.Path)
		}
		total += r.Size
	}
	if lim.MaxFiles > 0 && len(recs)+1 > lim.MaxFiles {
		return nil, tusError(http.StatusRequestEntityTooLarge, "%s cannot be uploaded: request %s already holds %d files, and a request may hold at most %d: delete files you do not need, or put them in an archive", p, req, len(recs), lim.MaxFiles)
	}
	if lim.MaxRequestSize > 0 && total > lim.MaxRequestSize {
		return nil, tusError(http.StatusRequestEntityTooLarge, "%s (%s) cannot be uploaded: it would bring request %s to %s, more than the %s a request may hold: delete files you do not need, or ask an administrator to raise uploads.maxRequestSize", p, bytesText(info.Size), req, bytesText(total), bytesText(lim.MaxRequestSize))
	}
	now := time.Now().UTC()
	rec := record{
		ID:        newUploadID(req),
		Request:   req,
		Path:      p,
		Size:      info.Size,
		MetaData:  info.MetaData,
		CreatedAt: now,
	}
	if err := h.writeRecord(ctx, rec); err != nil {
		return nil, h.storeFailed(ctx, "recording the upload of "+p, err)
	}
	h.log.InfoContext(ctx, "uploads: upload created", "request", req, "upload", rec.ID, "path", p, "size", rec.Size)
	return &upload{h: h, rec: rec}, nil
}

// uploadName is the name a creation's metadata gives the file: its
// relativePath (a file in an uploaded folder) or else its filename.
func uploadName(meta map[string]string) (string, error) {
	filename, rel := meta["filename"], meta["relativePath"]
	// Uppy sends relativePath "null" for a file not picked in a folder.
	if rel == "null" && filename != "null" {
		rel = ""
	}
	if rel != "" {
		return rel, nil
	}
	if filename == "" {
		return "", tusError(http.StatusBadRequest, "Upload-Metadata has no filename: set the metadata key filename to the file's name (and relativePath to its path, for a file in a folder)")
	}
	return filename, nil
}

// GetUpload looks an upload up in the store. One whose record is gone
// (deleted, or its request's staging area removed on expiry or cancel) is
// not found, and a writer still kept for it is thrown away.
func (s tusStore) GetUpload(ctx context.Context, id string) (tus.Upload, error) {
	ctx, cancel := s.h.opContext(ctx)
	defer cancel()
	h := s.h
	req, ok := splitUploadID(id)
	if !ok {
		return nil, errNotFound(id)
	}
	rec, err := h.readRecord(ctx, req, id)
	if errors.Is(err, errNoRecord) {
		h.forget(id)
		return nil, errNotFound(id)
	}
	if err != nil {
		return nil, h.storeFailed(ctx, "reading upload "+id, err)
	}
	if l := h.lookup(id); l != nil {
		// The kept writer's record is at least as recent as the store's.
		l.use.Lock()
		if !l.dropped {
			rec = l.rec
		}
		l.use.Unlock()
	}
	return &upload{h: h, rec: rec}, nil
}

func (s tusStore) AsTerminatableUpload(u tus.Upload) tus.TerminatableUpload { return u.(*upload) }

func errNotFound(id string) tus.Error {
	return tusError(http.StatusNotFound, "upload %s not found: it was deleted, or its upload request expired or was cancelled; create the upload again if the request still accepts files", id)
}

// GetInfo reports the upload. Its offset is where the client continues:
// the kept writer's offset, or else what the store durably holds, checked
// by reopening the file's writer (which may hold less than recorded, when
// the partial data was lost).
func (u *upload) GetInfo(ctx context.Context) (tus.FileInfo, error) {
	ctx, cancel := u.h.opContext(ctx)
	defer cancel()
	info := tus.FileInfo{ID: u.rec.ID, Size: u.rec.Size, MetaData: u.rec.MetaData}
	switch {
	case u.rec.Done:
		info.Offset = u.rec.Size
		return info, nil
	case u.h.lookup(u.rec.ID) == nil && u.rec.Checkpoint.Offset == 0:
		return info, nil // nothing written yet: the writer opens on the first PATCH
	}
	l, err := u.h.acquire(ctx, u)
	if err != nil {
		return info, err
	}
	defer u.h.release(l)
	u.rec = l.rec
	if l.committed && !l.rec.Done {
		// Commit succeeded but recording it failed: record it now.
		if err := u.h.finished(ctx, l); err != nil {
			return info, err
		}
		u.h.drop(l)
		u.rec = l.rec
	}
	info.Offset = l.w.Offset()
	if u.rec.Done {
		info.Offset = u.rec.Size
	}
	return info, nil
}

// WriteChunk streams src into the file from offset, checkpointing at most
// every CheckpointEvery (a store that writes whole parts only at part
// boundaries: reads are cut to land on them). The end of a chunk is not a
// checkpoint of its own: a checkpoint makes bytes durable (an fsync, a
// part upload), and paying that on every PATCH of a browser's 8 MiB chunks
// cost two thirds of the throughput. Nothing is lost by waiting: while this
// process runs, the writer kept between PATCHes holds every byte received
// and HEAD reports them all (a dropped connection included); after a crash,
// HEAD reports the last checkpoint and the client sends the rest again.
func (u *upload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	h := u.h
	// No time limit: a PATCH lasts as long as its body. The steps that
	// talk to the store set their own.
	ctx, cancel := context.WithCancel(h.base)
	defer cancel()
	l, err := h.acquire(ctx, u)
	if err != nil {
		return 0, err
	}
	defer h.release(l)
	if l.w.Offset() != offset {
		return 0, tus.ErrMismatchOffset
	}
	bp := chunkBuffers.Get().(*[]byte)
	defer chunkBuffers.Put(bp)
	buf := *bp
	var written int64
	for {
		chunk := buf
		if l.partSize > 0 {
			if left := l.partSize - l.w.Offset()%l.partSize; left < int64(len(chunk)) {
				chunk = chunk[:left]
			}
		}
		n, rerr := src.Read(chunk)
		if n > 0 {
			m, werr := l.w.Write(chunk[:n])
			written += int64(m)
			l.offset.Store(l.w.Offset())
			if werr != nil {
				return written, h.writerFailed(ctx, l, "writing", werr)
			}
			if time.Since(l.lastCheckpoint) >= h.every && l.atBoundary() {
				if err := h.checkpoint(ctx, l); err != nil {
					return written, err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// tusd's body reader reports a dropped connection as the end of
			// the body; any other reader's error ends the chunk here.
			if err := h.settle(l); err != nil {
				return written, err
			}
			return written, rerr
		}
	}
	if time.Since(l.lastCheckpoint) >= h.every {
		if err := h.settle(l); err != nil {
			return written, err
		}
	}
	return written, nil
}

// FinishUpload commits the file under its final name and records the
// upload as done.
func (u *upload) FinishUpload(ctx context.Context) error {
	ctx, cancel := u.h.opContext(ctx)
	defer cancel()
	h := u.h
	l, err := h.acquire(ctx, u)
	if err != nil {
		return err
	}
	defer h.release(l)
	if l.w.Offset() != l.rec.Size {
		return tusError(http.StatusConflict, "%s holds %d of its %d bytes: send the rest before it can be finished", l.rec.Path, l.w.Offset(), l.rec.Size)
	}
	if !l.committed {
		if err := l.w.Commit(); err != nil {
			// A failed Commit may be tried again: keep the writer.
			return h.storeFailed(ctx, "publishing "+l.rec.Path, err)
		}
		l.committed = true
	}
	if err := h.finished(ctx, l); err != nil {
		return err
	}
	h.drop(l)
	u.rec = l.rec
	h.log.InfoContext(ctx, "uploads: upload finished", "request", l.rec.Request, "upload", l.rec.ID, "path", l.rec.Path, "size", l.rec.Size)
	return nil
}

// finished records a committed upload as done. If the request's staging
// area was deleted meanwhile, the file just committed there is removed
// again.
func (h *Handler) finished(ctx context.Context, l *liveUpload) error {
	rec := l.rec
	rec.Done = true
	rec.Checkpoint = connectors.Checkpoint{Offset: rec.Size}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	err := h.updateRecord(sctx, rec)
	if errors.Is(err, errNoRecord) {
		h.drop(l)
		if derr := h.store.DeletePrefix(sctx, fileKey(rec.Request, rec.Path)); derr != nil {
			h.log.ErrorContext(ctx, "uploads: removing a file committed after its request's staging area was deleted failed", "upload", rec.ID, "error", derr)
		}
		return errNotFound(rec.ID)
	}
	if err != nil {
		return h.storeFailed(ctx, "recording that "+rec.Path+" is complete", err)
	}
	l.rec = rec
	return nil
}

// GetReader is not served: quarantined data is never downloaded through tus.
func (u *upload) GetReader(context.Context) (io.ReadCloser, error) {
	return nil, tusError(http.StatusMethodNotAllowed, "uploaded files cannot be downloaded from the staging area")
}

// Terminate deletes the upload: its partial or committed file, then its
// record.
func (u *upload) Terminate(ctx context.Context) error {
	ctx, cancel := u.h.opContext(ctx)
	defer cancel()
	h := u.h
	if l := h.lookup(u.rec.ID); l != nil {
		l.use.Lock()
		if !l.dropped {
			if err := l.w.Abort(); err != nil {
				h.log.WarnContext(ctx, "uploads: aborting a deleted upload's writer failed; its data is deleted next", "upload", u.rec.ID, "error", err)
			}
			h.drop(l)
		}
		l.use.Unlock()
	}
	rec := u.rec
	if err := h.store.DeletePrefix(ctx, fileKey(rec.Request, rec.Path)); err != nil {
		return h.storeFailed(ctx, "deleting "+rec.Path, err)
	}
	if err := h.store.DeletePrefix(ctx, recordKey(rec.Request, rec.ID)); err != nil {
		return h.storeFailed(ctx, "deleting the record of "+rec.Path, err)
	}
	h.index.remove(rec.Request, rec.ID)
	h.log.InfoContext(ctx, "uploads: upload deleted", "request", rec.Request, "upload", rec.ID, "path", rec.Path)
	return nil
}

// lookup returns the kept writer of upload id, if any.
func (h *Handler) lookup(id string) *liveUpload {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.live[id]
}

// liveOffset is the offset of upload id's kept writer.
func (h *Handler) liveOffset(id string) (int64, bool) {
	l := h.lookup(id)
	if l == nil {
		return 0, false
	}
	return l.offset.Load(), true
}

// acquire returns u's kept writer, locked for use, opening it (resumed from
// the recorded checkpoint) when none is kept.
func (h *Handler) acquire(ctx context.Context, u *upload) (*liveUpload, error) {
	for {
		l := h.lookup(u.rec.ID)
		if l == nil {
			break
		}
		l.use.Lock()
		if !l.dropped {
			return l, nil
		}
		l.use.Unlock() // let go of meanwhile: look again
	}
	rec := u.rec
	if rec.Done {
		return nil, tusError(http.StatusConflict, "%s is already complete", rec.Path)
	}
	wctx, cancel := context.WithCancel(h.base)
	var from *connectors.Checkpoint
	if rec.Checkpoint.Offset > 0 {
		cp := rec.Checkpoint
		from = &cp
	}
	key := fileKey(rec.Request, rec.Path)
	w, err := h.store.Create(wctx, key, from)
	if err != nil {
		cancel()
		return nil, h.storeFailed(ctx, "opening "+rec.Path, err)
	}
	l := &liveUpload{w: w, cancel: cancel, rec: rec, lastCheckpoint: time.Now(), lastUsed: time.Now()}
	if pw, ok := w.(connectors.PartWriter); ok {
		l.partSize = pw.PartSize()
	}
	l.offset.Store(w.Offset())
	if got := w.Offset(); got != rec.Checkpoint.Offset {
		if err := h.lostPartial(ctx, l); err != nil {
			_ = w.Abort()
			cancel()
			return nil, err
		}
	}
	l.use.Lock()
	h.mu.Lock()
	if old := h.live[rec.ID]; old != nil {
		// Only a tus request opens a writer, under tusd's lock of the
		// upload, so this does not happen; should it, the writer kept
		// first wins and the new one is let go of (not aborted: that
		// would delete the partial data they share).
		h.mu.Unlock()
		l.use.Unlock()
		cancel()
		old.use.Lock()
		return old, nil
	}
	h.live[rec.ID] = l
	h.mu.Unlock()
	return l, nil
}

// lostPartial handles a writer the store could not resume at the recorded
// checkpoint: the partial data is (partly) gone, so the upload continues
// from what the writer holds and the record says so. If the file was in
// fact committed (a restart between Commit and recording it), the upload is
// recorded as done instead.
func (h *Handler) lostPartial(ctx context.Context, l *liveUpload) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	rec := l.rec
	got := l.w.Offset()
	if got > rec.Checkpoint.Offset {
		return fmt.Errorf("the staging store resumed %s at byte %d, past its checkpoint at byte %d", rec.Path, got, rec.Checkpoint.Offset)
	}
	if info, err := h.store.Stat(ctx, fileKey(rec.Request, rec.Path)); err == nil && info.Size == rec.Size && rec.Checkpoint.Offset > 0 {
		_ = l.w.Abort()
		l.committed = true
		l.w = committedWriter{size: rec.Size}
		l.offset.Store(rec.Size)
		return nil
	}
	cp, err := l.w.Checkpoint()
	if err != nil {
		return h.storeFailed(ctx, "restarting "+rec.Path, err)
	}
	h.log.WarnContext(ctx, "uploads: an upload's partial data was lost; it continues from what the store holds", "upload", rec.ID, "recorded", rec.Checkpoint.Offset, "held", cp.Offset)
	rec.Checkpoint = cp
	if err := h.updateRecord(ctx, rec); err != nil {
		if errors.Is(err, errNoRecord) {
			return errNotFound(rec.ID)
		}
		return h.storeFailed(ctx, "recording the restart of "+rec.Path, err)
	}
	l.rec = rec
	return nil
}

// committedWriter stands for the writer of a file found committed: it
// only reports the file's size.
type committedWriter struct{ size int64 }

func (c committedWriter) Write([]byte) (int, error) {
	return 0, errors.New("the file is already complete")
}
func (c committedWriter) Offset() int64 { return c.size }
func (c committedWriter) Checkpoint() (connectors.Checkpoint, error) {
	return connectors.Checkpoint{Offset: c.size}, nil
}
func (c committedWriter) Commit() error { return nil }
func (c committedWriter) Abort() error  { return nil }

// release hands a writer back after a tus request used it.
func (h *Handler) release(l *liveUpload) {
	l.lastUsed = time.Now()
	l.use.Unlock()
}

// atBoundary reports whether the writer may checkpoint now.
func (l *liveUpload) atBoundary() bool {
	return l.partSize == 0 || l.w.Offset()%l.partSize == 0
}

// checkpoint makes the writer's bytes durable and records it.
func (h *Handler) checkpoint(ctx context.Context, l *liveUpload) error {
	cp, err := l.w.Checkpoint()
	if err != nil {
		return h.writerFailed(ctx, l, "checkpointing", err)
	}
	l.lastCheckpoint = time.Now()
	if cp.Offset == l.rec.Checkpoint.Offset && cp.Token == l.rec.Checkpoint.Token {
		return nil
	}
	rec := l.rec
	rec.Checkpoint = cp
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := h.updateRecord(sctx, rec); err != nil {
		if errors.Is(err, errNoRecord) {
			return h.gone(ctx, l)
		}
		// The bytes are safe in the writer: the next checkpoint records them.
		h.log.WarnContext(ctx, "uploads: recording an upload's progress failed; it is recorded at the next checkpoint", "upload", rec.ID, "offset", cp.Offset, "error", err)
		return nil
	}
	l.rec = rec
	return nil
}

// settle checkpoints the writer if it holds bytes beyond its last
// checkpoint and the store can make them durable now.
func (h *Handler) settle(l *liveUpload) error {
	if l.committed || l.w.Offset() <= l.rec.Checkpoint.Offset || !l.atBoundary() {
		return nil
	}
	return h.checkpoint(h.base, l)
}

// writerFailed handles a store error while writing: the writer is let go
// of (the upload resumes from its last durable checkpoint), and the answer
// is 404 if the request's staging area is gone, else 500.
func (h *Handler) writerFailed(ctx context.Context, l *liveUpload, doing string, err error) error {
	h.drop(l)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if _, serr := h.store.Stat(sctx, recordKey(l.rec.Request, l.rec.ID)); errors.Is(serr, connectors.ErrNotFound) {
		_ = l.w.Abort()
		return errNotFound(l.rec.ID)
	}
	h.log.ErrorContext(ctx, "uploads: the staging store failed", "upload", l.rec.ID, "doing", doing, "offset", l.w.Offset(), "error", err)
	return tusError(http.StatusInternalServerError, "the staging store failed while %s %s: ask for the upload's offset (HEAD) and continue from there; %d bytes are kept", doing, l.rec.Path, l.rec.Checkpoint.Offset)
}

// gone handles an upload whose record disappeared while it was being
// written: its request's staging area was deleted.
func (h *Handler) gone(ctx context.Context, l *liveUpload) error {
	h.drop(l)
	_ = l.w.Abort()
	return errNotFound(l.rec.ID)
}

// drop lets go of a kept writer without aborting it: its durable data stays
// for the upload to resume from. l.use is held.
func (h *Handler) drop(l *liveUpload) {
	if l.dropped {
		return
	}
	l.dropped = true
	l.cancel()
	h.mu.Lock()
	if h.live[l.rec.ID] == l {
		delete(h.live, l.rec.ID)
	}
	h.mu.Unlock()
}

// forget throws away the kept writer of an upload whose record is gone.
func (h *Handler) forget(id string) {
	l := h.lookup(id)
	if l == nil {
		return
	}
	l.use.Lock()
	defer l.use.Unlock()
	if !l.dropped {
		_ = l.w.Abort()
		h.drop(l)
	}
}

// storeFailed logs a store error and returns the 500 a client sees: what
// failed, without the store's internals.
func (h *Handler) storeFailed(ctx context.Context, doing string, err error) error {
	if _, _, ok := statusOf(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return tusError(http.StatusServiceUnavailable, "%s was interrupted: try again", doing)
	}
	h.log.ErrorContext(ctx, "uploads: the staging store failed", "doing", doing, "error", err)
	return tusError(http.StatusInternalServerError, "%s failed in the staging store: try again later", doing)
}

// bytesText writes n bytes for people: "12.0 MiB (12582912 bytes)".
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}
