package activities

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"go.temporal.io/sdk/temporal"
	"golang.org/x/time/rate"

	"github.com/airlockhq/airlock/connectors"
)

// FileCheckpoint is how far the copy of one file had durably got when it last
// heartbeated: the store's checkpoint and the SHA-256 state over exactly those
// bytes, so a retried attempt continues the same hash instead of re-reading.
type FileCheckpoint struct {
	Key       string                `json:"key"`
	Store     connectors.Checkpoint `json:"store"`
	HashState []byte                `json:"hash_state"`
}

// copyJob is one file to copy into a store.
type copyJob struct {
	key  string
	open func(ctx context.Context, offset int64) (io.ReadCloser, error)
	// size is the expected size, or -1 when unknown.
	size int64
	// sha256, when set, is the digest the bytes must have: a mismatch throws
	// the copy away and fails without retry (release copies approved bytes only).
	sha256 string
}

// copied is what a finished copy measured.
type copied struct {
	Size    int64
	SHA256  string
	Resumed int64 // bytes not copied again thanks to a checkpoint
}

// ErrTypeDigestMismatch marks staged bytes that no longer match what was approved.
const ErrTypeDigestMismatch = "DigestMismatch"

// copyFile streams job into dst, hashing in the same pass. With a checkpoint
// for the same key it resumes; every CheckpointEvery it makes progress durable
// and hands a new checkpoint to onCheckpoint (which heartbeats it). Memory use
// is one buffer, whatever the file's size.
func (a *Activities) copyFile(ctx context.Context, dst connectors.Store, job copyJob, resume *FileCheckpoint, onCheckpoint func(FileCheckpoint, int64)) (copied, error) {
	cfg := a.Transfer.withDefaults()
	h := sha256.New()
	var from *connectors.Checkpoint
	if resume != nil && resume.Key == job.key && len(resume.HashState) > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(resume.HashState); err == nil {
			from = &resume.Store
		} else {
			h.Reset()
		}
	}
	w, err := dst.Create(ctx, job.key, from)
	if err != nil {
		return copied{}, err
	}
	offset := w.Offset()
	resumed := int64(0)
	if from != nil && offset == from.Offset {
		resumed = offset
	} else {
		h.Reset()
		if offset != 0 {
			_ = w.Abort()
			return copied{}, fmt.Errorf("store resumed %s at %d bytes without a matching checkpoint", job.key, offset)
		}
	}
	r, err := job.open(ctx, offset)
	if offset > 0 && errors.Is(err, connectors.ErrNotResumable) {
		// The source can only start from the beginning: throw the partial
		// copy away and start again, with a fresh hash.
		if err := w.Abort(); err != nil {
			return copied{}, fmt.Errorf("discarding the partial copy of %s: %w", job.key, err)
		}
		if w, err = dst.Create(ctx, job.key, nil); err != nil {
			return copied{}, err
		}
		h.Reset()
		offset, resumed = 0, 0
		r, err = job.open(ctx, 0)
	}
	if err != nil {
		_ = w.Abort()
		return copied{}, err
	}
	defer r.Close()
	// A store that makes data durable in whole parts can checkpoint only at
	// a part boundary; reads are cut so that the copy lands on each one.
	var partSize int64
	if pw, ok := w.(connectors.PartWriter); ok {
		partSize = pw.PartSize()
	}

	var limiter *rate.Limiter
	if cfg.MaxBytesPerSecond > 0 {
		burst := cfg.BufferSize
		if int64(burst) > cfg.MaxBytesPerSecond {
			burst = int(cfg.MaxBytesPerSecond)
		}
		limiter = rate.NewLimiter(rate.Limit(cfg.MaxBytesPerSecond), burst)
	}
	buf := make([]byte, cfg.BufferSize)
	if limiter != nil && limiter.Burst() < len(buf) {
		buf = buf[:limiter.Burst()]
	}
	last := time.Now()
	hashed := make(chan struct{}, 1)
	for {
		if err := ctx.Err(); err != nil {
			// Keep the partial file: a retry resumes from the last checkpoint.
			return copied{}, err
		}
		chunk := buf
		if partSize > 0 {
			if left := partSize - w.Offset()%partSize; left < int64(len(chunk)) {
				chunk = chunk[:left]
			}
		}
		n, rerr := r.Read(chunk)
		if n > 0 {
			if limiter != nil {
				if err := limiter.WaitN(ctx, n); err != nil {
					return copied{}, err
				}
			}
			// Hash and write the chunk at the same time: on a machine
			// with a core to spare the copy then costs the slower of the
			// two, not their sum. Both finish before the next read, so a
			// checkpoint's hash state covers exactly the bytes written.
			go func(b []byte) { h.Write(b); hashed <- struct{}{} }(chunk[:n])
			_, werr := w.Write(chunk[:n])
			<-hashed
			if werr != nil {
				return copied{}, fmt.Errorf("writing %s: %w", dst.URL(job.key), werr)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return copied{}, fmt.Errorf("reading the source of %s at byte %d: %w", job.key, w.Offset(), rerr)
		}
		if time.Since(last) >= cfg.CheckpointEvery && (partSize == 0 || w.Offset()%partSize == 0) {
			last = time.Now()
			if err := checkpoint(w, h, job.key, onCheckpoint); err != nil {
				return copied{}, err
			}
		}
	}
	size := w.Offset()
	sum := hex.EncodeToString(h.Sum(nil))
	if job.size >= 0 && size != job.size {
		_ = w.Abort()
		return copied{}, fmt.Errorf("%s: read %d bytes but the source said %d; the source changed while it was copied, so the copy is retried", job.key, size, job.size)
	}
	if job.sha256 != "" && sum != job.sha256 {
		_ = w.Abort()
		return copied{}, digestMismatch(job.key, job.sha256, sum)
	}
	if err := w.Commit(); err != nil {
		return copied{}, fmt.Errorf("publishing %s: %w", dst.URL(job.key), err)
	}
	return copied{Size: size, SHA256: sum, Resumed: resumed}, nil
}

func checkpoint(w connectors.Writer, h hash.Hash, key string, onCheckpoint func(FileCheckpoint, int64)) error {
	cp, err := w.Checkpoint()
	if err != nil {
		return fmt.Errorf("checkpointing %s: %w", key, err)
	}
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	if onCheckpoint != nil {
		onCheckpoint(FileCheckpoint{Key: key, Store: cp, HashState: state}, cp.Offset)
	}
	return nil
}

// digestMismatch is never retried: the staged bytes are not the approved ones.
func digestMismatch(key, want, got string) error {
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("digest mismatch: %s has SHA-256 %s but %s was approved; nothing was published under that name: the staged copy changed after approval, so investigate the staging store and start a new request", key, got, want),
		ErrTypeDigestMismatch, nil)
}
