package uploads

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
)

// record is the bookkeeping of one upload, kept as JSON at
// <request>/.uploads/<id>.json in the staging store. Checkpoint is the
// store's durable checkpoint of the file's partial data: its Offset is how
// many bytes survive a restart.
type record struct {
	ID         string                `json:"id"`
	Request    string                `json:"request"`
	Path       string                `json:"path"`
	Size       int64                 `json:"size"`
	Checkpoint connectors.Checkpoint `json:"checkpoint"`
	MetaData   map[string]string     `json:"metadata,omitempty"`
	CreatedAt  time.Time             `json:"created_at"`
	UpdatedAt  time.Time             `json:"updated_at"`
	Done       bool                  `json:"done"`
}

// maxRecordSize bounds a bookkeeping file read back from the store.
const maxRecordSize = 1 << 20

// idSuffixLen is the number of hex digits after the request id in an upload id.
const idSuffixLen = 16

// requestIDPattern is what a request id may look like: one safe path
// segment (requests are named upload-<datasource>-<random>).
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// newUploadID returns <requestID>.<16 random hex digits>.
func newUploadID(requestID string) string {
	b := make([]byte, idSuffixLen/2)
	_, _ = rand.Read(b) // crypto/rand does not fail on supported platforms
	return requestID + "." + hex.EncodeToString(b)
}

// splitUploadID returns the request id an upload id belongs to, and false
// for a string that is not an upload id.
func splitUploadID(id string) (string, bool) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 {
		return "", false
	}
	req, suffix := id[:i], id[i+1:]
	if len(suffix) != idSuffixLen || strings.Trim(suffix, "0123456789abcdef") != "" || !requestIDPattern.MatchString(req) {
		return "", false
	}
	return req, true
}

// fileKey is where an upload's file sits in the staging store.
func fileKey(requestID, p string) string {
	return path.Join(activities.StagingPrefix(requestID), p)
}

// stateFolder is the folder of a request's upload bookkeeping.
func stateFolder(requestID string) string {
	return path.Join(activities.StagingPrefix(requestID), model.UploadStateFolder)
}

// recordKey is where an upload's bookkeeping sits in the staging store.
func recordKey(requestID, id string) string {
	return path.Join(stateFolder(requestID), id+".json")
}

// errNoRecord means an upload's bookkeeping is not in the store: it was
// deleted, or its request's staging area was.
var errNoRecord = errors.New("no such upload")

// readRecord reads the bookkeeping of upload id.
func (h *Handler) readRecord(ctx context.Context, requestID, id string) (record, error) {
	key := recordKey(requestID, id)
	r, err := h.store.Open(ctx, key)
	if errors.Is(err, connectors.ErrNotFound) {
		return record{}, errNoRecord
	}
	if err != nil {
		return record{}, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxRecordSize+1))
	if err != nil {
		return record{}, fmt.Errorf("reading upload record %s: %w", h.store.URL(key), err)
	}
	var rec record
	if len(b) > maxRecordSize {
		return record{}, fmt.Errorf("upload record %s is larger than %d bytes: it is not one Airlock wrote", h.store.URL(key), maxRecordSize)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return record{}, fmt.Errorf("upload record %s is not valid JSON (%v): remove it, or delete the request's upload", h.store.URL(key), err)
	}
	if rec.ID != id || rec.Request != requestID {
		return record{}, fmt.Errorf("upload record %s names upload %q of request %q: it is not the record of %s", h.store.URL(key), rec.ID, rec.Request, id)
	}
	return rec, nil
}

// writeRecord stores rec atomically (Create + Commit: readers see the old
// or the new record, never half of one) and updates the index.
func (h *Handler) writeRecord(ctx context.Context, rec record) error {
	rec.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	key := recordKey(rec.Request, rec.ID)
	w, err := h.store.Create(ctx, key, nil)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		_ = w.Abort()
		return err
	}
	if err := w.Commit(); err != nil {
		_ = w.Abort()
		return err
	}
	h.index.put(rec)
	return nil
}

// updateRecord stores rec, an update of an existing upload. It refuses
// with errNoRecord when the record is gone from the store (the request's
// staging area was deleted), so that an update never brings a deleted
// area back.
func (h *Handler) updateRecord(ctx context.Context, rec record) error {
	if _, err := h.store.Stat(ctx, recordKey(rec.Request, rec.ID)); err != nil {
		if errors.Is(err, connectors.ErrNotFound) {
			return errNoRecord
		}
		return err
	}
	return h.writeRecord(ctx, rec)
}

// records returns every upload of a request, by id. Records already read
// come from the index; the store's listing says which exist.
func (h *Handler) records(ctx context.Context, requestID string) (map[string]record, error) {
	folder := stateFolder(requestID)
	infos, err := h.store.List(ctx, folder)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(infos))
	for _, info := range infos {
		name := strings.TrimPrefix(info.Key, folder+"/")
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || strings.Contains(name, "/") {
			continue // not a record
		}
		if req, ok := splitUploadID(id); ok && req == requestID {
			ids = append(ids, id)
		}
	}
	out, missing := h.index.get(requestID, ids)
	for _, id := range missing {
		rec, err := h.readRecord(ctx, requestID, id)
		if errors.Is(err, errNoRecord) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		out[id] = rec
		h.index.put(rec)
	}
	return out, nil
}
