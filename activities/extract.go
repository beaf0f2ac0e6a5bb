package activities

import (
	"context"
	"fmt"
	"io"
	"path"
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
}

// ExtractObject copies one object's files from its source into the request's
// staging area, computing each file's size and SHA-256 in the same pass. It
// heartbeats a checkpoint every few seconds; a retry (after a crash, a
// timeout or a transient error) skips finished files and resumes the file in
// flight from its checkpoint.
func (a *Activities) ExtractObject(ctx context.Context, in ExtractObjectInput) (ExtractObjectResult, error) {
	info := activity.GetInfo(ctx)
	logger := activity.GetLogger(ctx)
	src, err := a.Sources.Source(ctx, in.Connection)
	if err != nil {
		return ExtractObjectResult{}, nonRetryable(err)
	}
	var progress ExtractProgress
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &progress); err != nil {
			logger.Warn("ignoring unreadable checkpoint; starting the object again", "error", err)
			progress = ExtractProgress{}
		}
	}
	if progress.StartedAt.IsZero() {
		progress.StartedAt = time.Now().UTC()
	}
	progress.FilesTotal = len(in.Items)
	progress.BytesTotal = 0
	for _, it := range in.Items {
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
	for _, it := range in.Items {
		if f, ok := done[it.Path]; ok {
			progress.Done = append(progress.Done, f)
			progress.BytesDone += f.Size
			progress.ResumedBytes += f.Size
		}
	}
	if len(done) > 0 || progress.Current != nil {
		logger.Info("resuming extraction", "object", in.Object.Describe(), "files_done", len(done), "attempt", info.Attempt)
	}
	activity.RecordHeartbeat(ctx, progress)

	for _, it := range in.Items {
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
			open: func(ctx context.Context, offset int64) (io.ReadCloser, error) { return src.Open(ctx, item, offset) },
		}, resume, func(cp FileCheckpoint, offset int64) {
			progress.Current = &cp
			progress.BytesDone = base + offset
			activity.RecordHeartbeat(ctx, progress)
		})
		if err != nil {
			return ExtractObjectResult{}, nonRetryable(fmt.Errorf("spec.objects[%d] (%s), file %s: %w", in.Index, in.Object.Describe(), it.Path, err))
		}
		progress.ResumedBytes += c.Resumed
		rec := model.FileRecord{Path: it.Path, Size: c.Size, SHA256: c.SHA256, EncodingFormat: it.EncodingFormat}
		progress.Done = append(progress.Done, rec)
		progress.Current = nil
		progress.BytesDone = base + c.Size
		activity.RecordHeartbeat(ctx, progress)
	}

	res := ExtractObjectResult{
		Files:        progress.Done,
		ResumedBytes: progress.ResumedBytes,
		Attempt:      info.Attempt,
		Extraction: Extraction{
			Index:      in.Index,
			Object:     in.Object.Describe(),
			Source:     src.Describe(),
			Instrument: src.Instrument(),
			StartedAt:  progress.StartedAt,
			EndedAt:    time.Now().UTC(),
		},
	}
	for _, f := range res.Files {
		res.Bytes += f.Size
		res.Extraction.Files = append(res.Extraction.Files, f.Path)
	}
	logger.Info("object extracted", "object", in.Object.Describe(), "files", len(res.Files), "bytes", res.Bytes, "resumed_bytes", res.ResumedBytes)
	return res, nil
}

// stagingKey is where a crate file sits in the staging store.
func stagingKey(requestID, filePath string) string {
	return path.Join(StagingPrefix(requestID), filePath)
}
