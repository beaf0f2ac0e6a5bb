package activities

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
)

// ExtractObjectInput is one object of a data source to copy into staging.
type ExtractObjectInput struct {
	RequestID  string            `json:"request_id"`
	Connection model.Connection  `json:"connection"`
	Object     model.Object      `json:"object"`
	Index      int               `json:"index"` // in spec.objects
	Items      []connectors.Item `json:"items"` // from PlanImport
}

// Extraction records how one object was extracted, for the crate's CreateAction.
type Extraction struct {
	Index      int                   `json:"index"`
	Object     string                `json:"object"` // "table patients", "prefix reports/"
	Source     string                `json:"source"`
	Instrument connectors.Instrument `json:"instrument"`
	StartedAt  time.Time             `json:"started_at"`
	EndedAt    time.Time             `json:"ended_at"`
	Files      []string              `json:"files"`
	// Tables and Properties come from producers (a SQL statement, a dlt
	// pipeline): each table's rows and columns, and facts about the run.
	Tables     []connectors.Table `json:"tables,omitempty"`
	TableFiles map[string]string  `json:"table_files,omitempty"` // file path -> table name
	Properties map[string]string  `json:"properties,omitempty"`
}

// ExtractObjectResult is the object's files with their sizes and digests.
type ExtractObjectResult struct {
	Files      []model.FileRecord `json:"files"`
	Bytes      int64              `json:"bytes"`
	Extraction Extraction         `json:"extraction"`
	// ResumedBytes counts bytes an earlier attempt had copied that this one
	// did not copy again.
	ResumedBytes int64 `json:"resumed_bytes"`
	Attempt      int32 `json:"attempt"`
}

// ExtractProgress is what ExtractObject heartbeats: the files already done and
// the checkpoint of the one in flight. A retried attempt resumes from it; the
// CLI reads it from the pending activity to show progress.
type ExtractProgress struct {
	Done         []model.FileRecord `json:"done"`
	Current      *FileCheckpoint    `json:"current,omitempty"`
	BytesDone    int64              `json:"bytes_done"`
	BytesTotal   int64              `json:"bytes_total"`
	FilesTotal   int                `json:"files_total"`
	StartedAt    time.Time          `json:"started_at"`
	ResumedBytes int64              `json:"resumed_bytes"`
	// Phase is "producing" while a producer runs, then "copying".
	Phase string `json:"phase,omitempty"`
	// Message is the producer's latest progress line.
	Message string `json:"message,omitempty"`
	// Produced is what the producer made, once it has: a retry on the same
	// worker copies those files instead of running the producer again.
	Produced *connectors.Produced `json:"produced,omitempty"`
}

// Phases of ExtractProgress.
const (
	PhaseProducing = "producing"
	PhaseCopying   = "copying"
)

// ExtractObject copies one object's files from its source into the request's
// staging area, computing each file's size and SHA-256 in the same pass. It
// heartbeats a checkpoint every few seconds; a retry (after a crash, a
// timeout or a transient error) skips finished files and resumes the file in
// flight from its checkpoint. An object a producer makes (a table, a dlt
// pipeline) is first produced into a local work folder, then copied the same way.
func (a *Activities) ExtractObject(ctx context.Context, in ExtractObjectInput) (res ExtractObjectResult, err error) {
	defer func() { err = a.failure(err) }()
	info := activity.GetInfo(ctx)
	logger := activity.GetLogger(ctx)
	src, err := a.Sources.Source(ctx, in.Connection)
	if err != nil {
		return ExtractObjectResult{}, err
	}
	hb := &heartbeater{ctx: ctx}
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &hb.progress); err != nil {
			logger.Warn("ignoring unreadable checkpoint; starting the object again", "error", err)
			hb.progress = ExtractProgress{}
		}
	}
	if hb.progress.StartedAt.IsZero() {
		hb.progress.StartedAt = time.Now().UTC()
	}
	ext := Extraction{Index: in.Index, Object: in.Object.Describe(), Source: src.Describe(), Instrument: src.Instrument(), StartedAt: hb.progress.StartedAt}

	items := in.Items
	open := func(ctx context.Context, it connectors.Item, offset int64) (io.ReadCloser, error) {
		return src.Open(ctx, it, offset)
	}
	if p, ok := src.(connectors.Producer); ok && p.Produces(in.Object) {
		dir := a.workDir(in.RequestID, in.Index)
		produced, err := a.produce(ctx, hb, p, in, dir)
		if err != nil {
			return ExtractObjectResult{}, err
		}
		if items, err = producedItems(in, dir, produced); err != nil {
			_ = os.RemoveAll(dir)
			return ExtractObjectResult{}, err
		}
		open = func(_ context.Context, it connectors.Item, offset int64) (io.ReadCloser, error) {
			return openLocal(filepath.Join(dir, filepath.FromSlash(it.Ref)), offset)
		}
		ext.Tables, ext.Properties = produced.Tables, produced.Properties
		for _, f := range produced.Files {
			if f.Table != "" {
				if ext.TableFiles == nil {
					ext.TableFiles = map[string]string{}
				}
				ext.TableFiles[f.Path] = f.Table
			}
		}
		defer func() {
			// The work folder is kept for a retry, and removed once the files
			// are in staging or the object can never succeed.
			if err == nil || isNonRetryable(nonRetryable(err)) {
				if rerr := os.RemoveAll(dir); rerr != nil {
					logger.Warn("could not remove the work folder", "dir", dir, "error", rerr)
				}
			}
		}()
	}

	progress := &hb.progress
	progress.Phase = PhaseCopying
	progress.FilesTotal = len(items)
	progress.BytesTotal = 0
	for _, it := range items {
		if it.Size > 0 {
			progress.BytesTotal += it.Size
		}
	}
	done := map[string]model.FileRecord{}
	for _, f := range progress.Done {
		// Trust a finished file only if staging still holds it at its size.
		st, err := a.Staging.Stat(ctx, stagingKey(in.RequestID, f.Path))
		if err == nil && st.Size == f.Size {
			done[f.Path] = f
		}
	}
	progress.Done = progress.Done[:0]
	progress.BytesDone = 0
	for _, it := range items {
		if f, ok := done[it.Path]; ok {
			progress.Done = append(progress.Done, f)
			progress.BytesDone += f.Size
			progress.ResumedBytes += f.Size
		}
	}
	if len(done) > 0 || progress.Current != nil {
		logger.Info("resuming extraction", "object", in.Object.Describe(), "files_done", len(done), "attempt", info.Attempt)
	}
	hb.beat()

	for _, it := range items {
		if _, ok := done[it.Path]; ok {
			continue
		}
		key := stagingKey(in.RequestID, it.Path)
		item := it
		base := progress.BytesDone
		var resume *FileCheckpoint
		if progress.Current != nil && progress.Current.Key == key {
			resume = progress.Current
		}
		c, err := a.copyFile(ctx, a.Staging, copyJob{
			key:  key,
			size: it.Size,
			open: func(ctx context.Context, offset int64) (io.ReadCloser, error) { return open(ctx, item, offset) },
		}, resume, func(cp FileCheckpoint, offset int64) {
			progress.Current = &cp
			progress.BytesDone = base + offset
			hb.beat()
		})
		if err != nil {
			return ExtractObjectResult{}, fmt.Errorf("spec.objects[%d] (%s), file %s: %w", in.Index, in.Object.Describe(), it.Path, err)
		}
		progress.ResumedBytes += c.Resumed
		rec := model.FileRecord{Path: it.Path, Size: c.Size, SHA256: c.SHA256, EncodingFormat: it.EncodingFormat}
		progress.Done = append(progress.Done, rec)
		progress.Current = nil
		progress.BytesDone = base + c.Size
		hb.beat()
	}

	ext.EndedAt = time.Now().UTC()
	res = ExtractObjectResult{
		Files:        progress.Done,
		ResumedBytes: progress.ResumedBytes,
		Attempt:      info.Attempt,
		Extraction:   ext,
	}
	for _, f := range res.Files {
		res.Bytes += f.Size
		res.Extraction.Files = append(res.Extraction.Files, f.Path)
	}
	logger.Info("object extracted", "object", in.Object.Describe(), "files", len(res.Files), "bytes", res.Bytes, "resumed_bytes", res.ResumedBytes)
	return res, nil
}

// heartbeater records ExtractProgress as the activity's heartbeat; a
// producer's progress callback and a ticker share it.
type heartbeater struct {
	ctx      context.Context
	mu       sync.Mutex
	progress ExtractProgress
}

func (h *heartbeater) beat() {
	h.mu.Lock()
	defer h.mu.Unlock()
	activity.RecordHeartbeat(h.ctx, h.progress)
}

func (h *heartbeater) update(f func(p *ExtractProgress)) {
	h.mu.Lock()
	f(&h.progress)
	h.mu.Unlock()
	h.beat()
}

// workDir is the local folder where a producer makes one object's files.
func (a *Activities) workDir(requestID string, index int) string {
	root := a.WorkDir
	if root == "" {
		root = filepath.Join(os.TempDir(), "airlock-work")
	}
	return filepath.Join(root, requestID, fmt.Sprintf("object-%d", index))
}

// produce runs the producer into dir, or reuses what an earlier attempt on
// this worker produced there. It heartbeats throughout, because a producer
// may be silent for longer than the heartbeat timeout (a query queued on a
// warehouse, a Python interpreter starting).
func (a *Activities) produce(ctx context.Context, hb *heartbeater, p connectors.Producer, in ExtractObjectInput, dir string) (connectors.Produced, error) {
	if prev := hb.progress.Produced; prev != nil && producedIntact(dir, *prev) {
		activity.GetLogger(ctx).Info("reusing the files an earlier attempt produced", "object", in.Object.Describe(), "dir", dir)
		return *prev, nil
	}
	hb.update(func(pr *ExtractProgress) {
		*pr = ExtractProgress{StartedAt: pr.StartedAt, Phase: PhaseProducing, Message: "starting " + in.Object.Describe()}
	})
	if err := os.RemoveAll(dir); err != nil {
		return connectors.Produced{}, fmt.Errorf("clearing the work folder %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return connectors.Produced{}, fmt.Errorf("creating the work folder %s (worker config workDir): %w", dir, err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(a.Transfer.withDefaults().CheckpointEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				hb.beat()
			}
		}
	}()
	produced, err := p.Produce(ctx, in.Object, dir, func(msg string) {
		hb.update(func(pr *ExtractProgress) { pr.Message = msg })
	})
	if err != nil {
		return connectors.Produced{}, fmt.Errorf("spec.objects[%d] (%s): %w", in.Index, in.Object.Describe(), err)
	}
	hb.update(func(pr *ExtractProgress) { pr.Produced = &produced })
	return produced, nil
}

// producedIntact reports whether every file of an earlier attempt's
// production is still in dir.
func producedIntact(dir string, p connectors.Produced) bool {
	if len(p.Files) == 0 {
		return false
	}
	for _, f := range p.Files {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.Path))); err != nil {
			return false
		}
	}
	return true
}

// producedItems turns a producer's files into items to copy, refusing any
// file the plan did not announce: a producer may only fill the files or
// folders its object's items named, so it can never overwrite another
// object's files or the crate's own.
func producedItems(in ExtractObjectInput, dir string, p connectors.Produced) ([]connectors.Item, error) {
	var items []connectors.Item
	for _, f := range p.Files {
		clean, err := model.CleanRelPath(f.Path)
		if err != nil || clean != f.Path {
			return nil, connectors.BadInput("spec.objects[%d] (%s) produced a file named %q, which is not a clean relative path", in.Index, in.Object.Describe(), f.Path)
		}
		if !coveredBy(in.Items, f.Path) {
			return nil, connectors.BadInput("spec.objects[%d] (%s) produced %s, outside what it planned (%s)", in.Index, in.Object.Describe(), f.Path, itemPaths(in.Items))
		}
		st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return nil, fmt.Errorf("spec.objects[%d] (%s): the producer reported %s but it is not in the work folder: %w", in.Index, in.Object.Describe(), f.Path, err)
		}
		items = append(items, connectors.Item{Path: f.Path, Ref: f.Path, Size: st.Size(), ModTime: st.ModTime(), EncodingFormat: f.EncodingFormat})
	}
	if len(items) == 0 {
		return nil, connectors.BadInput("spec.objects[%d] (%s) produced no files: check that the table or resource has data", in.Index, in.Object.Describe())
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Path < items[j].Path })
	return items, nil
}

// coveredBy reports whether p is one of items' paths, or lies below one that
// names a folder (a path ending in "/").
func coveredBy(items []connectors.Item, p string) bool {
	for _, it := range items {
		if it.Path == p || (strings.HasSuffix(it.Path, "/") && strings.HasPrefix(p, it.Path)) {
			return true
		}
	}
	return false
}

func itemPaths(items []connectors.Item) string {
	var ps []string
	for _, it := range items {
		ps = append(ps, it.Path)
	}
	return strings.Join(ps, ", ")
}

// openLocal opens a file of a work folder at offset.
func openLocal(name string, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// stagingKey is where a crate file sits in the staging store.
func stagingKey(requestID, filePath string) string {
	return path.Join(StagingPrefix(requestID), filePath)
}
