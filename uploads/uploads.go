// Package uploads receives files people upload into an upload request: a
// tus 1.0.0 server (tusd's handler) whose data store writes each file
// straight into Airlock's staging store, under <request>/<path>, through the
// store's resumable writers. Nothing is buffered whole: a file's bytes go
// from the request body to the store's Writer, which keeps at most a part
// (S3, Azure) or a write buffer (local folder) in memory.
//
// Each upload's bookkeeping (declared size, durable checkpoint, metadata,
// done) is a small JSON file at <request>/.uploads/<id>.json in the same
// store, so an upload resumes after a dropped connection or a restart of
// the API from what the store really holds. A file appears under its final
// name only when its last byte is in (Commit is atomic).
//
// Upload ids are <request>.<16 hex digits>, so that every tus request can
// be authorised against the request it belongs to before tusd sees it.
//
// One process serves a request's uploads: tusd's upload locks and the
// writers kept between PATCH requests live in this process's memory.
package uploads

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	tus "github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
)

// Defaults for the zero fields of Options.
const (
	DefaultCheckpointEvery = 2 * time.Second
	DefaultIdleTimeout     = 10 * time.Minute
)

// Options configure a Handler.
type Options struct {
	// Store is the staging store the files are written into.
	Store connectors.Store
	// Limits bound each file, and each request's total size and file count.
	Limits model.UploadLimits
	// BasePath is where the handler is mounted, e.g. "/api/v1/files/". It
	// may be an absolute URL ("https://airlock.example/api/v1/files/"):
	// the Location of a new upload is then built from it rather than from
	// the request's Host.
	BasePath string
	// Authorize is called for every tus request (creation, HEAD, PATCH,
	// DELETE) with the id of the request the upload belongs to, before
	// anything else happens. A non-nil error refuses it: an *HTTPError (see
	// Refuse), any error with an HTTPStatus() int method, or a tusd
	// handler.Error answers with its status and message; any other error
	// answers 500.
	Authorize func(r *http.Request, requestID string) error
	// Logger receives the handler's logs (tusd's per-request lines at
	// Debug); nil discards them.
	Logger *slog.Logger
	// CheckpointEvery is how often, at most, an upload in progress makes
	// its bytes durable in the store and records that in its bookkeeping
	// (default 2s). A store that writes whole parts (S3, Azure) is
	// checkpointed only at a part boundary. Between checkpoints the writer
	// kept between PATCH requests holds the bytes, and HEAD reports them.
	CheckpointEvery time.Duration
	// IdleTimeout is how long a writer is kept between PATCH requests of an
	// upload (default 10m). An upload idle for longer resumes from its
	// last durable checkpoint.
	IdleTimeout time.Duration
}

// Handler serves the tus protocol at Options.BasePath and answers what a
// request's uploads hold.
type Handler struct {
	store     connectors.Store
	limits    model.UploadLimits
	authorize func(*http.Request, string) error
	log       *slog.Logger
	basePath  string // the URL path of BasePath, ending in "/"
	every     time.Duration
	idle      time.Duration
	tus       *tus.Handler

	index recordIndex
	// creating serialises creations in a request (checking the limits and
	// writing the new record), striped by request id.
	creating [64]sync.Mutex

	// base is the context of the writers, which outlive the PATCH requests
	// that write through them.
	base       context.Context
	cancelBase context.CancelFunc
	mu         sync.Mutex
	live       map[string]*liveUpload
	stop       chan struct{}
	stopped    chan struct{}
	closeOnce  sync.Once
}

// NewHandler builds the tus server.
func NewHandler(o Options) (*Handler, error) {
	switch {
	case o.Store == nil:
		return nil, errors.New("uploads: no staging store given: pass the store uploads are written into as Options.Store")
	case o.Authorize == nil:
		return nil, errors.New("uploads: no Authorize function given: every tus request must be checked against its upload request; pass Options.Authorize")
	case o.BasePath == "":
		return nil, errors.New(`uploads: no BasePath given: say where the handler is mounted, e.g. "/api/v1/files/"`)
	case o.Limits.MaxFileSize < 0 || o.Limits.MaxRequestSize < 0 || o.Limits.MaxFiles < 0:
		return nil, fmt.Errorf("uploads: limits must not be negative (maxFileSize %d, maxRequestSize %d, maxFiles %d): use 0 for no limit", o.Limits.MaxFileSize, o.Limits.MaxRequestSize, o.Limits.MaxFiles)
	}
	u, err := url.Parse(o.BasePath)
	if err != nil {
		return nil, fmt.Errorf("uploads: BasePath %q is not a URL path (%v): give e.g. /api/v1/files/", o.BasePath, err)
	}
	basePath := "/" + strings.Trim(u.Path, "/") + "/"
	if basePath == "//" {
		basePath = "/"
	}
	if u.IsAbs() {
		// tusd builds Location from an absolute BasePath as given.
		o.BasePath = strings.TrimSuffix(o.BasePath, "/") + "/"
	} else {
		o.BasePath = basePath
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		store:     o.Store,
		limits:    o.Limits,
		authorize: o.Authorize,
		log:       logger,
		basePath:  basePath,
		every:     o.CheckpointEvery,
		idle:      o.IdleTimeout,
		live:      map[string]*liveUpload{},
		stop:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	if h.every <= 0 {
		h.every = DefaultCheckpointEvery
	}
	if h.idle <= 0 {
		h.idle = DefaultIdleTimeout
	}
	h.base, h.cancelBase = context.WithCancel(context.Background())

	composer := tus.NewStoreComposer()
	ds := tusStore{h: h}
	composer.UseCore(ds)
	composer.UseTerminater(ds)
	memorylocker.New().UseIn(composer)
	th, err := tus.NewHandler(tus.Config{
		StoreComposer: composer,
		BasePath:      o.BasePath,
		// Quarantined data is never served back: downloads are off.
		DisableDownload: true,
		// The console is served from the same origin; cross-origin
		// browser requests get no CORS headers and so are refused.
		Cors:   &tus.CorsConfig{Disable: true},
		Logger: tusLogger(logger),
	})
	if err != nil {
		h.cancelBase()
		return nil, fmt.Errorf("uploads: %w", err)
	}
	h.tus = th
	go h.reap()
	return h, nil
}

// ServeHTTP serves the tus protocol: POST BasePath creates an upload,
// HEAD/PATCH/DELETE BasePath<id> ask, append, delete. Each request is
// authorised first; GET (download) is not served.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	var rest string
	switch {
	case p+"/" == h.basePath:
		rest = ""
	case strings.HasPrefix(p, h.basePath):
		rest = strings.TrimPrefix(p, h.basePath)
	default:
		writeRefusal(w, r, http.StatusNotFound, fmt.Sprintf("%s is not a tus upload URL: uploads live under %s", p, h.basePath))
		return
	}
	if r.Method == http.MethodOptions {
		if h.limits.MaxFileSize > 0 {
			w.Header().Set("Tus-Max-Size", strconv.FormatInt(h.limits.MaxFileSize, 10))
		}
		h.serveTus(w, r, rest)
		return
	}
	var requestID string
	if strings.Trim(rest, "/") == "" {
		if r.Method != http.MethodPost || r.Header.Get("X-HTTP-Method-Override") != "" {
			h.serveTus(w, r, rest) // tusd answers 405
			return
		}
		var status int
		var msg string
		requestID, status, msg = creationRequest(r)
		if status != 0 {
			writeRefusal(w, r, status, msg)
			return
		}
	} else {
		id := strings.Trim(rest, "/")
		req, ok := splitUploadID(id)
		if !ok {
			writeRefusal(w, r, http.StatusNotFound, fmt.Sprintf("no upload %q: upload URLs end in <request id>.<16 hex digits>, as the Location of the upload's creation said", id))
			return
		}
		requestID = req
	}
	if err := h.authorize(r, requestID); err != nil {
		status, msg, ok := statusOf(err)
		if !ok {
			h.log.ErrorContext(r.Context(), "uploads: authorising a tus request failed", "request", requestID, "method", r.Method, "error", err)
			status, msg = http.StatusInternalServerError, fmt.Sprintf("could not check whether you may upload to request %s: try again later", requestID)
		}
		writeRefusal(w, r, status, msg)
		return
	}
	h.serveTus(w, r, rest)
}

// creationRequest checks a creation's headers and returns its request id,
// or the status and message to refuse it with.
func creationRequest(r *http.Request) (string, int, string) {
	if r.Header.Get("Upload-Defer-Length") != "" || r.Header.Get("Upload-Length") == "" {
		return "", http.StatusBadRequest, "Upload-Length is required: send the file's size in bytes when creating the upload (deferred length is not supported)"
	}
	meta := tus.ParseMetadataHeader(r.Header.Get("Upload-Metadata"))
	req := meta["request"]
	switch {
	case req == "":
		return "", http.StatusBadRequest, "Upload-Metadata has no request: set the metadata key request to the id of the upload request the file belongs to (and filename to its name)"
	case !requestIDPattern.MatchString(req):
		return "", http.StatusBadRequest, fmt.Sprintf("Upload-Metadata request %q is not an upload request id: give the id the upload request was created with", req)
	}
	return req, 0, ""
}

// serveTus hands r to tusd with BasePath stripped from its path.
func (h *Handler) serveTus(w http.ResponseWriter, r *http.Request, rest string) {
	r2 := new(http.Request)
	*r2 = *r
	r2.URL = new(url.URL)
	*r2.URL = *r.URL
	r2.URL.Path = "/" + rest
	r2.URL.RawPath = ""
	h.tus.ServeHTTP(w, r2)
}

// File is one upload of a request.
type File struct {
	ID   string `json:"id"`
	Path string `json:"path"`
	// Size is the declared size, Offset how many bytes are in so far.
	Size      int64     `json:"size"`
	Offset    int64     `json:"offset"`
	Done      bool      `json:"done"`
	CreatedAt time.Time `json:"created_at"`
}

// Files returns every upload of a request, finished or not, sorted by path.
// A request without uploads (or an unknown one) has none.
func (h *Handler) Files(ctx context.Context, requestID string) ([]File, error) {
	if !requestIDPattern.MatchString(requestID) {
		return nil, Refuse(http.StatusBadRequest, "%q is not an upload request id", requestID)
	}
	recs, err := h.records(ctx, requestID)
	if err != nil {
		return nil, fmt.Errorf("listing the uploads of request %s: %w", requestID, err)
	}
	out := make([]File, 0, len(recs))
	for _, rec := range recs {
		f := File{ID: rec.ID, Path: rec.Path, Size: rec.Size, Offset: rec.Checkpoint.Offset, Done: rec.Done, CreatedAt: rec.CreatedAt}
		if f.Done {
			f.Offset = f.Size
		} else if off, ok := h.liveOffset(rec.ID); ok {
			f.Offset = off
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Expected returns the finished files of a request, sorted by path: what
// its uploader confirms. An unfinished file is an *HTTPError (409) naming
// it and how far it got.
func (h *Handler) Expected(ctx context.Context, requestID string) ([]model.ExpectedFile, error) {
	files, err := h.Files(ctx, requestID)
	if err != nil {
		return nil, err
	}
	out := make([]model.ExpectedFile, 0, len(files))
	var unfinished []string
	for _, f := range files {
		if !f.Done {
			unfinished = append(unfinished, fmt.Sprintf("%s is %d%% uploaded", f.Path, percent(f.Offset, f.Size)))
			continue
		}
		out = append(out, model.ExpectedFile{Path: f.Path, Size: f.Size})
	}
	switch len(unfinished) {
	case 0:
		return out, nil
	case 1:
		return nil, Refuse(http.StatusConflict, "%s: finish or delete it, then confirm", unfinished[0])
	}
	return nil, Refuse(http.StatusConflict, "%d files are not finished (%s): finish or delete them, then confirm", len(unfinished), strings.Join(unfinished, "; "))
}

// percent is done/total in whole percent, rounded down (so that only a
// finished file shows 100%).
func percent(done, total int64) int64 {
	if total <= 0 {
		return 100
	}
	return done * 100 / total
}

// Close stops the handler: writers kept between PATCH requests are made
// durable where the store allows it (not mid-part) and let go. Call it once
// the HTTP server has stopped serving the handler.
func (h *Handler) Close() error {
	var errs []error
	h.closeOnce.Do(func() {
		close(h.stop)
		<-h.stopped
		h.mu.Lock()
		all := make([]*liveUpload, 0, len(h.live))
		for _, l := range h.live {
			all = append(all, l)
		}
		h.mu.Unlock()
		for _, l := range all {
			l.use.Lock()
			if !l.dropped {
				errs = append(errs, h.settle(l))
				h.drop(l)
			}
			l.use.Unlock()
		}
		h.cancelBase()
	})
	return errors.Join(errs...)
}

// reap lets go of the writers of uploads idle for longer than IdleTimeout.
func (h *Handler) reap() {
	defer close(h.stopped)
	t := time.NewTicker(min(h.idle/2, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		var idle []*liveUpload
		for _, l := range h.live {
			idle = append(idle, l)
		}
		h.mu.Unlock()
		for _, l := range idle {
			if !l.use.TryLock() {
				continue // in use
			}
			if !l.dropped && time.Since(l.lastUsed) > h.idle {
				if err := h.settle(l); err != nil {
					h.log.Warn("uploads: making an idle upload durable failed; it resumes from its last checkpoint", "upload", l.rec.ID, "error", err)
				}
				h.drop(l)
				h.log.Debug("uploads: let go of an idle upload's writer", "upload", l.rec.ID, "offset", l.rec.Checkpoint.Offset)
			}
			l.use.Unlock()
		}
	}
}

// creationLock returns the mutex serialising creations in requestID.
func (h *Handler) creationLock(requestID string) *sync.Mutex {
	f := fnv.New32a()
	_, _ = io.WriteString(f, requestID)
	return &h.creating[f.Sum32()%uint32(len(h.creating))]
}
