package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlockhq/airlock/connectors"
)

// cleanupTimeout bounds the requests Abort sends after the writer's own
// context is done.
const cleanupTimeout = time.Minute

// firstBuffer is the capacity a writer's first part buffer starts with; it
// grows to PartSize only for files that big, so small files stay cheap.
const firstBuffer = 64 << 10

// Create starts writing key with a multipart upload. With a checkpoint from
// an earlier attempt whose upload is still in progress and holds every part
// up to the checkpoint's offset, whole and of the same size, it continues
// that upload: the returned writer's Offset is from.Offset. Otherwise it
// aborts that upload (if any) and starts from 0.
//
// The upload itself starts with the first full part: a file smaller than a
// part is sent with a single PutObject on Commit.
func (s *Store) Create(ctx context.Context, key string, from *connectors.Checkpoint) (connectors.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, err := s.checkKey(key)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &writer{
		s:        s,
		key:      k,
		fullKey:  s.b.loc.key(k),
		partSize: s.b.opts.PartSize,
		next:     1,
		ctx:      wctx,
		cancel:   cancel,
		free:     make(chan []byte, s.b.opts.Concurrency+1),
		parts:    map[int32]types.CompletedPart{},
	}
	for i := 0; i < s.b.opts.Concurrency+1; i++ {
		w.free <- nil
	}
	if from != nil && from.Token != "" {
		if err := w.resume(*from); err != nil {
			cancel()
			return nil, err
		}
	}
	return w, nil
}

// resume continues the upload from names, or aborts it and leaves w fresh.
func (w *writer) resume(from connectors.Checkpoint) error {
	var tok uploadToken
	if err := json.Unmarshal([]byte(from.Token), &tok); err != nil || tok.UploadID == "" {
		return nil // not one of ours: nothing to continue or abort
	}
	n := int64(0)
	if tok.PartSize == w.partSize && from.Offset > 0 && from.Offset%w.partSize == 0 {
		n = from.Offset / w.partSize
	}
	var parts map[int32]types.CompletedPart
	if n > 0 && n <= MaxUploadParts {
		var err error
		parts, err = w.listParts(tok.UploadID, int32(n))
		if err != nil {
			return err
		}
	}
	if parts == nil {
		// The upload cannot be continued: throw its parts away and start again.
		return w.s.abortUpload(w.ctx, w.fullKey, tok.UploadID)
	}
	w.uploadID = tok.UploadID
	w.parts = parts
	w.next = int32(n) + 1
	w.offset = from.Offset
	return nil
}

// listParts returns parts 1..n of the upload when all of them are there
// with the writer's part size, and nil when the upload is gone or differs.
func (w *writer) listParts(uploadID string, n int32) (map[int32]types.CompletedPart, error) {
	b := w.s.b
	parts := map[int32]types.CompletedPart{}
	pages := s3.NewListPartsPaginator(b.api, &s3.ListPartsInput{
		Bucket:   aws.String(b.loc.bucket),
		Key:      aws.String(w.fullKey),
		UploadId: aws.String(uploadID),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(w.ctx)
		if isNoSuchUpload(err) || isNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, explain(b.who, "list the uploaded parts of", b.url(w.fullKey), err)
		}
		for _, p := range page.Parts {
			num := aws.ToInt32(p.PartNumber)
			if num < 1 || num > n {
				continue // uploaded after the checkpoint: uploaded again
			}
			if aws.ToInt64(p.Size) != w.partSize {
				return nil, nil
			}
			parts[num] = types.CompletedPart{
				PartNumber:        p.PartNumber,
				ETag:              p.ETag,
				ChecksumCRC32:     p.ChecksumCRC32,
				ChecksumCRC32C:    p.ChecksumCRC32C,
				ChecksumCRC64NVME: p.ChecksumCRC64NVME,
				ChecksumSHA1:      p.ChecksumSHA1,
				ChecksumSHA256:    p.ChecksumSHA256,
			}
		}
		if int32(len(parts)) == n {
			break
		}
	}
	if int32(len(parts)) != n {
		return nil, nil
	}
	return parts, nil
}

// writer states.
const (
	writing    = iota
	committing // Commit started: no more writes; Commit may be called again
	committed
	aborted
)

// writer writes one key through a multipart upload. It buffers one part
// while up to Concurrency earlier parts upload: free holds Concurrency+1
// buffers (allocated when first needed), a full part starts uploading only
// once the writer holds the buffer for the next one, and a buffer goes back
// only once its part is uploaded.
type writer struct {
	s        *Store
	key      string // relative to the store
	fullKey  string
	partSize int64
	ctx      context.Context
	cancel   context.CancelFunc

	free   chan []byte
	cur    []byte // the part being filled; nil before the first write
	hasCur bool   // cur came from free and must go back
	offset int64
	next   int32 // the next part number
	state  int

	uploadID string
	wg       sync.WaitGroup
	mu       sync.Mutex // guards parts and err, written by uploads
	parts    map[int32]types.CompletedPart
	err      error // the first failed upload
}

var _ connectors.PartWriter = (*writer)(nil)

// PartSize is the size of every part but the last.
func (w *writer) PartSize() int64 { return w.partSize }

// Offset is the number of bytes the file holds so far, those uploaded
// before a resumed checkpoint included.
func (w *writer) Offset() int64 { return w.offset }

func (w *writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// notWriting explains why op cannot run in the writer's state.
func (w *writer) notWriting(op string) error {
	what := map[int]string{committing: "being committed", committed: "committed", aborted: "aborted"}[w.state]
	return fmt.Errorf("%s: %s %q: the writer was already %s; create a new writer to write the file again", w.s.b.who, op, w.key, what)
}

func (w *writer) Write(p []byte) (int, error) {
	if w.state != writing {
		return 0, w.notWriting("write")
	}
	written := 0
	for len(p) > 0 {
		if err := w.failed(); err != nil {
			return written, err
		}
		if !w.hasCur {
			select {
			case w.cur = <-w.free:
				w.cur = w.cur[:0]
				w.hasCur = true
			case <-w.ctx.Done():
				return written, w.ctx.Err()
			}
		}
		room := int(w.partSize) - len(w.cur)
		chunk := p[:min(room, len(p))]
		w.grow(len(w.cur) + len(chunk))
		w.cur = append(w.cur, chunk...)
		written += len(chunk)
		w.offset += int64(len(chunk))
		p = p[len(chunk):]
		if int64(len(w.cur)) == w.partSize {
			if err := w.uploadCur(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// grow makes room for need bytes in cur, doubling up to the part size.
func (w *writer) grow(need int) {
	if need <= cap(w.cur) {
		return
	}
	c := max(2*cap(w.cur), need, firstBuffer)
	c = min(c, int(w.partSize))
	b := make([]byte, len(w.cur), c)
	copy(b, w.cur)
	w.cur = b
}

// uploadCur starts uploading the buffered part in the background.
func (w *writer) uploadCur() error {
	if w.uploadID == "" {
		out, err := w.s.b.api.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{
			Bucket: aws.String(w.s.b.loc.bucket),
			Key:    aws.String(w.fullKey),
		})
		if err != nil {
			return explain(w.s.b.who, "start the upload of", w.s.b.url(w.fullKey), err)
		}
		w.uploadID = aws.ToString(out.UploadId)
	}
	if w.next > MaxUploadParts {
		return connectors.BadInput("%s: %q is larger than S3's %d parts of %d bytes: raise the store's part size", w.s.b.who, w.key, MaxUploadParts, w.partSize)
	}
	// Take the buffer for the next part first: while it is being filled,
	// the other Concurrency buffers can all be uploading, but no more.
	var next []byte
	select {
	case next = <-w.free:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	num, buf := w.next, w.cur
	w.next++
	w.cur, w.hasCur = next[:0], true
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		err := w.uploadPart(num, buf)
		w.free <- buf[:0]
		if err != nil {
			w.fail(err)
		}
	}()
	return nil
}

// uploadPart uploads buf as part num and records its ETag.
func (w *writer) uploadPart(num int32, buf []byte) error {
	out, err := w.s.b.api.UploadPart(w.ctx, &s3.UploadPartInput{
		Bucket:        aws.String(w.s.b.loc.bucket),
		Key:           aws.String(w.fullKey),
		UploadId:      aws.String(w.uploadID),
		PartNumber:    aws.Int32(num),
		Body:          bytes.NewReader(buf),
		ContentLength: aws.Int64(int64(len(buf))),
	})
	if err != nil {
		return explain(w.s.b.who, fmt.Sprintf("upload part %d of", num), w.s.b.url(w.fullKey), err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.parts[num] = types.CompletedPart{
		PartNumber:        aws.Int32(num),
		ETag:              out.ETag,
		ChecksumCRC32:     out.ChecksumCRC32,
		ChecksumCRC32C:    out.ChecksumCRC32C,
		ChecksumCRC64NVME: out.ChecksumCRC64NVME,
		ChecksumSHA1:      out.ChecksumSHA1,
		ChecksumSHA256:    out.ChecksumSHA256,
	}
	return nil
}

// Checkpoint waits for the parts in flight and returns the bytes they hold
// and the upload to continue. It must be called at a part boundary (Offset a
// multiple of PartSize), where every byte written is in an uploaded part.
func (w *writer) Checkpoint() (connectors.Checkpoint, error) {
	if w.state != writing {
		return connectors.Checkpoint{}, w.notWriting("checkpoint")
	}
	if w.offset%w.partSize != 0 {
		return connectors.Checkpoint{}, fmt.Errorf("%s: checkpoint %q at byte %d: not at a part boundary (parts of %d bytes); the copy must checkpoint only when Offset is a multiple of PartSize", w.s.b.who, w.key, w.offset, w.partSize)
	}
	w.wg.Wait()
	if err := w.failed(); err != nil {
		return connectors.Checkpoint{}, err
	}
	if w.uploadID == "" {
		return connectors.Checkpoint{Offset: w.offset}, nil // nothing written yet
	}
	tok, err := json.Marshal(uploadToken{UploadID: w.uploadID, PartSize: w.partSize})
	if err != nil {
		return connectors.Checkpoint{}, err
	}
	return connectors.Checkpoint{Offset: w.offset, Token: string(tok)}, nil
}

// Commit uploads the last part and completes the upload, publishing the
// file under its key at once (a file smaller than a part: one PutObject).
// A Commit that failed may be called again; after a successful one it does
// nothing.
func (w *writer) Commit() error {
	switch w.state {
	case committed:
		return nil
	case aborted:
		return w.notWriting("commit")
	}
	w.state = committing
	w.wg.Wait()
	if err := w.failed(); err != nil {
		return err
	}
	b := w.s.b
	if w.uploadID == "" {
		_, err := b.api.PutObject(w.ctx, &s3.PutObjectInput{
			Bucket:        aws.String(b.loc.bucket),
			Key:           aws.String(w.fullKey),
			Body:          bytes.NewReader(w.cur),
			ContentLength: aws.Int64(int64(len(w.cur))),
		})
		if err != nil {
			return explain(b.who, "write", b.url(w.fullKey), err)
		}
		w.finish(committed)
		return nil
	}
	if len(w.cur) > 0 {
		if w.next > MaxUploadParts {
			return connectors.BadInput("%s: %q is larger than S3's %d parts of %d bytes: raise the store's part size", b.who, w.key, MaxUploadParts, w.partSize)
		}
		if err := w.uploadPart(w.next, w.cur); err != nil {
			return err
		}
		w.next++
		w.cur, w.hasCur = nil, false
	}
	parts := make([]types.CompletedPart, 0, len(w.parts))
	for _, p := range w.parts {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
	_, err := b.api.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(b.loc.bucket),
		Key:             aws.String(w.fullKey),
		UploadId:        aws.String(w.uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return explain(b.who, "complete the upload of", b.url(w.fullKey), err)
	}
	w.finish(committed)
	return nil
}

// finish moves the writer to its final state and lets go of its buffers.
func (w *writer) finish(state int) {
	w.state = state
	w.cur, w.hasCur = nil, false
	w.cancel()
}

// Abort stops the uploads in flight and aborts the multipart upload,
// throwing its parts away. After Commit it does nothing.
func (w *writer) Abort() error {
	switch w.state {
	case committed, aborted:
		return nil
	}
	w.cancel()
	w.wg.Wait()
	w.finish(aborted)
	if w.uploadID == "" {
		return nil
	}
	// The writer's context may be done (the copy was cancelled): the
	// upload is still aborted, within a bounded time.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), cleanupTimeout)
	defer cancel()
	return w.s.abortUpload(ctx, w.fullKey, w.uploadID)
}
