package azureblob

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc64"
	"io"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

// Store keeps files as block blobs under a container's prefix: a key is the
// blob's name below the prefix.
//
// A file is written under its final key as uncommitted blocks, which Azure
// neither lists nor serves, and published by one Put Block List on Commit.
// Each write has a random upload id that every block id carries, so two
// writes of the same key never mix blocks: a Commit names only its own.
// A checkpoint is the number of blocks staged (all complete) and the upload
// id; Create resumes from it when the service still holds exactly those
// blocks.
//
// Azure has no call to delete uncommitted blocks. Abort therefore makes no
// request: it stops the write and leaves the blocks unreachable (no Commit
// names them, and its upload id is never used again); Azure discards them
// at the next commit of the key, or after a week if there is none, and
// DeletePrefix removes them at once. Abort does not put an empty blob in
// their place, which would make a file appear under the key.
type Store struct {
	*client
}

var _ connectors.Store = (*Store)(nil)

// NewStore builds a store over conn, an azureblob connection given by the
// worker's config (see the package documentation for its url and
// credentials). It makes no request.
func NewStore(ctx context.Context, conn model.Connection, p *secrets.Provider, opts Options) (*Store, error) {
	c, err := newClient(ctx, "store", conn, p, opts)
	if err != nil {
		return nil, err
	}
	return &Store{client: c}, nil
}

// StoreFactory returns a connectors.StoreFactory for azureblob connections.
func StoreFactory(p *secrets.Provider, opts Options) connectors.StoreFactory {
	return func(ctx context.Context, conn model.Connection) (connectors.Store, error) {
		s, err := NewStore(ctx, conn, p, opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// URL is the blob's URL, without credentials.
func (s *Store) URL(key string) string {
	k := strings.Trim(path.Clean("/"+key), "/")
	if k == "" {
		return s.loc.String()
	}
	return s.loc.blobURL(s.loc.blobName(k))
}

// checkKey validates key and returns it cleaned.
func (s *Store) checkKey(key string) (string, error) {
	return connectors.StoreKey(fmt.Sprintf("store %s", s.loc), key)
}

// checkPrefix validates a List or DeletePrefix prefix ("" stays "").
func (s *Store) checkPrefix(prefix string) (string, error) {
	return connectors.StorePrefix(fmt.Sprintf("store %s", s.loc), prefix)
}

// notFound is the error for a key with no committed blob.
func (s *Store) notFound(key string) error {
	return fmt.Errorf("store %s: key %q: %w", s.loc, key, connectors.ErrNotFound)
}

// uploadToken is what a Checkpoint's Token holds.
type uploadToken struct {
	// Upload is the write's random id, part of every block id.
	Upload string `json:"upload"`
	// Blocks is how many blocks, 0 to Blocks-1, make up the checkpoint.
	Blocks int `json:"blocks"`
}

// blockID is the id of block i of upload: fixed-width, so that every block
// of a blob has an id of the same length, as Azure requires.
func blockID(upload string, i int) string {
	return base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "airlock-%s-%05d", upload, i))
}

// newUploadID returns a random id for a write.
func newUploadID() string {
	b := make([]byte, 8)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// crcTable is the CRC-64 Azure checks staged blocks against.
var crcTable = crc64.MakeTable(0x9A6C9329AC4BC9B5)

// Create starts writing key. With a checkpoint from an earlier write of the
// key whose blocks the service still holds, all of them and at the sizes
// that add up to the checkpoint's offset, it resumes there; otherwise
// (another write committed the key meanwhile, a week passed, no
// checkpoint) it starts a new write at offset 0.
func (s *Store) Create(ctx context.Context, key string, from *connectors.Checkpoint) (connectors.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, err := s.checkKey(key)
	if err != nil {
		return nil, err
	}
	name := s.loc.blobName(k)
	w := &writer{s: s, key: k, name: name, bb: s.c.NewBlockBlobClient(name)}
	if from != nil && from.Offset > 0 {
		var t uploadToken
		if json.Unmarshal([]byte(from.Token), &t) == nil && t.Upload != "" && t.Blocks > 0 {
			ok, err := w.resumable(ctx, t, from.Offset)
			if err != nil {
				return nil, err
			}
			if ok {
				w.upload, w.blocks, w.offset = t.Upload, t.Blocks, from.Offset
			}
		}
	}
	if w.upload == "" {
		w.upload = newUploadID()
	}
	w.ctx, w.cancel = context.WithCancel(ctx)
	// One buffer fills while up to Concurrency others are staged.
	w.free = make(chan []byte, s.opts.Concurrency+1)
	for range s.opts.Concurrency + 1 {
		w.free <- nil
	}
	return w, nil
}

// writer states.
const (
	writing = iota
	committed
	aborted
)

// writer stages one key's blocks.
type writer struct {
	s      *Store
	key    string
	name   string
	bb     *blockblob.Client
	upload string
	ctx    context.Context
	cancel context.CancelFunc

	offset int64  // bytes written, including those of a resumed checkpoint
	blocks int    // blocks staged or being staged: the next block's index
	buf    []byte // the block being filled; nil between blocks
	// free holds Concurrency+1 buffers (nil until first needed): taking one
	// is what allows a block to fill, and staging gives it back, so at most
	// (Concurrency+1) × PartSize bytes are held.
	free  chan []byte
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error // the first staging error
	state int
}

var _ connectors.PartWriter = (*writer)(nil)

// resumable reports whether the service holds blocks 0 to t.Blocks-1 of
// upload t.Upload, uncommitted, adding up to offset bytes.
func (w *writer) resumable(ctx context.Context, t uploadToken, offset int64) (bool, error) {
	resp, err := w.bb.GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return false, nil
	}
	if err != nil {
		return false, w.s.fail("get the staged blocks of "+w.name, err)
	}
	sizes := map[string]int64{}
	for _, b := range resp.UncommittedBlocks {
		if b != nil && b.Name != nil && b.Size != nil {
			sizes[*b.Name] = *b.Size
		}
	}
	var total int64
	for i := range t.Blocks {
		n, ok := sizes[blockID(t.Upload, i)]
		if !ok {
			return false, nil
		}
		total += n
	}
	return total == offset, nil
}

func (w *writer) PartSize() int64 { return w.s.opts.PartSize }

// Offset is the number of bytes the file holds so far.
func (w *writer) Offset() int64 { return w.offset }

func (w *writer) notWriting(op string) error {
	what := map[int]string{committed: "committed", aborted: "aborted"}[w.state]
	return fmt.Errorf("store %s: %s %q: the writer was already %s; create a new writer to write the file again", w.s.loc, op, w.key, what)
}

func (w *writer) stagingErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *writer) Write(p []byte) (int, error) {
	if w.state != writing {
		return 0, w.notWriting("write")
	}
	partSize := int(w.s.opts.PartSize)
	n := 0
	for len(p) > 0 {
		if err := w.stagingErr(); err != nil {
			return n, err
		}
		if w.buf == nil {
			if w.blocks >= MaxBlocks {
				return n, connectors.BadInput("store %s: key %q: the file is larger than %d blocks of %d bytes, the most one blob can hold at this part size: raise the store's part size", w.s.loc, w.key, MaxBlocks, partSize)
			}
			select {
			case b := <-w.free:
				w.buf = b[:0]
			case <-w.ctx.Done():
				return n, w.ctx.Err()
			}
		}
		k := min(partSize-len(w.buf), len(p))
		w.buf = appendBounded(w.buf, p[:k], partSize)
		p, n, w.offset = p[k:], n+k, w.offset+int64(k)
		if len(w.buf) == partSize {
			w.stage()
		}
	}
	return n, nil
}

// appendBounded appends data to buf, growing it at most to limit bytes, so
// that a small file does not take a whole part's memory. Past 1 MiB the
// buffer grows straight to limit, leaving little garbage behind.
func appendBounded(buf, data []byte, limit int) []byte {
	if need := len(buf) + len(data); need > cap(buf) {
		c := limit
		if need <= 1<<20 {
			c = min(max(2*cap(buf), need, 64<<10), limit)
		}
		nb := make([]byte, len(buf), c)
		copy(nb, buf)
		buf = nb
	}
	return append(buf, data...)
}

// stage starts staging the filled buffer as the next block.
func (w *writer) stage() {
	i, data := w.blocks, w.buf
	w.blocks++
	w.buf = nil
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		err := w.stageBlock(i, data)
		w.free <- data[:0]
		if err != nil {
			w.mu.Lock()
			if w.err == nil {
				w.err = err
			}
			w.mu.Unlock()
		}
	}()
}

func (w *writer) stageBlock(i int, data []byte) error {
	crc := blob.TransferValidationTypeCRC64(crc64.Checksum(data, crcTable))
	_, err := w.bb.StageBlock(w.ctx, blockID(w.upload, i), streaming.NopCloser(bytes.NewReader(data)), &blockblob.StageBlockOptions{TransactionalValidation: crc})
	if bloberror.HasCode(err, bloberror.InvalidBlobOrBlock) {
		return fmt.Errorf("store %s: stage block %d of %q: the service refused it (%s); if another program left staged blocks with ids of another length on this blob, remove them with DeletePrefix or wait a week for Azure to discard them", w.s.loc, i, w.key, w.s.describe(err))
	}
	if err != nil {
		return w.s.fail(fmt.Sprintf("stage block %d of %s", i, w.name), err)
	}
	return nil
}

// flush stages the bytes buffered (a block shorter than a part, if any)
// and waits for every block in flight.
func (w *writer) flush() error {
	if len(w.buf) > 0 {
		w.stage()
	} else if w.buf != nil {
		w.free <- w.buf
		w.buf = nil
	}
	w.wg.Wait()
	return w.stagingErr()
}

// Checkpoint waits until every byte written so far is staged and returns
// the offset and the blocks that hold it. The copy calls it at part
// boundaries; elsewhere the buffered bytes are staged as a shorter block.
func (w *writer) Checkpoint() (connectors.Checkpoint, error) {
	if w.state != writing {
		return connectors.Checkpoint{}, w.notWriting("checkpoint")
	}
	if err := w.flush(); err != nil {
		return connectors.Checkpoint{}, err
	}
	tok, _ := json.Marshal(uploadToken{Upload: w.upload, Blocks: w.blocks})
	return connectors.Checkpoint{Offset: w.offset, Token: string(tok)}, nil
}

// Commit stages what is buffered and publishes the blocks, in order, as the
// blob key (replacing any blob there), with a content type guessed from the
// key's extension. An empty file is uploaded as an empty blob. A Commit that
// failed may be called again; after a successful one it does nothing.
func (w *writer) Commit() error {
	switch w.state {
	case committed:
		return nil
	case aborted:
		return w.notWriting("commit")
	}
	if err := w.flush(); err != nil {
		return err
	}
	contentType := file.MediaType(w.key)
	headers := &blob.HTTPHeaders{BlobContentType: &contentType}
	var err error
	if w.blocks == 0 {
		_, err = w.bb.Upload(w.ctx, streaming.NopCloser(bytes.NewReader(nil)), &blockblob.UploadOptions{HTTPHeaders: headers})
	} else {
		ids := make([]string, w.blocks)
		for i := range ids {
			ids[i] = blockID(w.upload, i)
		}
		_, err = w.bb.CommitBlockList(w.ctx, ids, &blockblob.CommitBlockListOptions{HTTPHeaders: headers})
	}
	if bloberror.HasCode(err, bloberror.InvalidBlockList) {
		return fmt.Errorf("store %s: commit %q: the blocks staged for it are gone (another write of the same key committed first, or they expired after a week): write the file again", w.s.loc, w.key)
	}
	if err != nil {
		return w.s.fail("commit "+w.name, err)
	}
	w.state = committed
	w.release()
	return nil
}

// release cancels what is still in flight and lets the buffers go.
func (w *writer) release() {
	w.cancel()
	w.wg.Wait()
	w.buf = nil
	for {
		select {
		case <-w.free:
		default:
			return
		}
	}
}

// Abort stops the write: blocks in flight are cancelled and the staged ones
// left unreachable (see Store). After Commit it does nothing.
func (w *writer) Abort() error {
	if w.state != writing {
		return nil
	}
	w.state = aborted
	w.release()
	return nil
}

// Open reads the committed blob key. A missing key gives an error wrapping
// connectors.ErrNotFound.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, err := s.checkKey(key)
	if err != nil {
		return nil, err
	}
	name := s.loc.blobName(k)
	props, err := s.c.NewBlobClient(name).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) || (err == nil && isFolder(props.Metadata)) {
		return nil, s.notFound(k)
	}
	if err != nil {
		return nil, s.fail("get properties of blob "+name, err)
	}
	if props.ETag == nil || props.ContentLength == nil {
		return nil, fmt.Errorf("store %s: key %q: the service sent no ETag or length", s.loc, k)
	}
	return s.openBlob(ctx, name, *props.ETag, *props.ContentLength, 0)
}

// Stat describes the committed blob key. A missing key (or one with only
// uncommitted blocks) gives an error wrapping connectors.ErrNotFound.
func (s *Store) Stat(ctx context.Context, key string) (connectors.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return connectors.ObjectInfo{}, err
	}
	k, err := s.checkKey(key)
	if err != nil {
		return connectors.ObjectInfo{}, err
	}
	name := s.loc.blobName(k)
	props, err := s.c.NewBlobClient(name).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) || (err == nil && isFolder(props.Metadata)) {
		return connectors.ObjectInfo{}, s.notFound(k)
	}
	if err != nil {
		return connectors.ObjectInfo{}, s.fail("get properties of blob "+name, err)
	}
	info := connectors.ObjectInfo{Key: k}
	if props.ContentLength != nil {
		info.Size = *props.ContentLength
	}
	if props.LastModified != nil {
		info.ModTime = props.LastModified.UTC()
	}
	return info, nil
}

// blobsUnder calls fn for every blob that is p itself or lies under the
// folder p ("" for the store's whole prefix), in the service's order. With
// uncommitted, blobs that have only uncommitted blocks are included.
func (s *Store) blobsUnder(ctx context.Context, p string, uncommitted bool, fn func(name string, b *container.BlobItem) error) error {
	listPrefix, exact := s.loc.listPrefix(""), ""
	if p != "" {
		exact = s.loc.blobName(p)
		listPrefix = exact
	}
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:     &listPrefix,
		MaxResults: &s.opts.ListPageSize,
		Include:    container.ListBlobsInclude{Metadata: true, UncommittedBlobs: uncommitted},
	})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return s.fail("list blobs under "+s.loc.blobURL(listPrefix), err)
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || b.Properties == nil {
				continue
			}
			name := *b.Name
			if exact != "" && name != exact && !strings.HasPrefix(name, exact+"/") {
				continue // a neighbour: "a/bc" when listing "a/b"
			}
			if err := fn(name, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// List returns the committed blobs that are prefix or lie under the folder
// prefix ("" for the whole store), sorted by key. Folder markers are
// skipped; a blob whose name is not a clean key is an error naming it.
func (s *Store) List(ctx context.Context, prefix string) ([]connectors.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.checkPrefix(prefix)
	if err != nil {
		return nil, err
	}
	out := []connectors.ObjectInfo{}
	err = s.blobsUnder(ctx, p, false, func(name string, b *container.BlobItem) error {
		size := b.Properties.ContentLength
		if (strings.HasSuffix(name, "/") && (size == nil || *size == 0)) || isFolder(b.Metadata) {
			return nil
		}
		key, _ := s.loc.relName(name)
		if c, err := model.CleanRelPath(key); err != nil || c != key {
			return fmt.Errorf("store %s: blob %q is not a clean key (a relative path without '.', '..' or empty segments): rename or remove it", s.loc, name)
		}
		info := connectors.ObjectInfo{Key: key}
		if size != nil {
			info.Size = *size
		}
		if b.Properties.LastModified != nil {
			info.ModTime = b.Properties.LastModified.UTC()
		}
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// DeletePrefix removes the blob prefix and every blob under the folder
// prefix, with their snapshots, and the staged blocks of writes never
// committed there. It succeeds when nothing is there. The empty prefix is
// refused so that a mistake cannot wipe the whole store. Blobs are deleted
// Concurrency at a time.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.checkPrefix(prefix)
	if err != nil {
		return err
	}
	if p == "" {
		return connectors.BadInput("store %s: delete: empty prefix would delete the whole store; name the folder to delete", s.loc)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	names := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range s.opts.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				if err := s.deleteBlob(ctx, name); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
				}
			}
		}()
	}
	err = s.blobsUnder(ctx, p, true, func(name string, _ *container.BlobItem) error {
		select {
		case names <- name:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(names)
	wg.Wait()
	if first != nil {
		return first
	}
	return err
}

// deleteBlob deletes blob name and its snapshots. A blob that has only
// uncommitted blocks cannot be deleted as such (the service says it does
// not exist): it is replaced by an empty blob, which discards the blocks,
// and that blob is deleted. Both steps are conditional, so that a blob
// committed meanwhile by someone else is deleted rather than overwritten.
func (s *Store) deleteBlob(ctx context.Context, name string) error {
	bb := s.c.NewBlockBlobClient(name)
	include := blob.DeleteSnapshotsOptionTypeInclude
	_, err := bb.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: &include})
	if err == nil {
		return nil
	}
	if !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return s.fail("delete blob "+name, err)
	}
	anyVersion := azcore.ETagAny
	resp, err := bb.Upload(ctx, streaming.NopCloser(bytes.NewReader(nil)), &blockblob.UploadOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: &anyVersion}},
	})
	switch {
	case bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet):
		// Committed meanwhile: delete that.
		_, err = bb.Delete(ctx, &blob.DeleteOptions{DeleteSnapshots: &include})
		if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
			return s.fail("delete blob "+name, err)
		}
		return nil
	case err != nil:
		return s.fail("discard the staged blocks of "+name, err)
	}
	_, err = bb.Delete(ctx, &blob.DeleteOptions{AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: resp.ETag}}})
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ConditionNotMet) {
		return s.fail("delete blob "+name, err)
	}
	return nil
}
