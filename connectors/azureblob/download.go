package azureblob

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/rangereader"
)

// openBlob streams the bytes [offset, size) of the version etag of blob
// name. Every request is conditioned on that version (If-Match), so a blob
// replaced while it is read fails the read instead of mixing two versions.
// The rest of a blob larger than one part is fetched as parallel ranged
// downloads, at most PartSize × Concurrency bytes in memory; a smaller rest
// is one ranged download that resumes where it broke off.
func (c *client) openBlob(ctx context.Context, name string, etag azcore.ETag, size, offset int64) (io.ReadCloser, error) {
	bc := c.c.NewBlobClient(name)
	cond := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}}
	left := size - offset
	if left == 0 && size > 0 {
		// The service refuses a range that starts at the end: check that
		// the version is still there, and read nothing.
		if _, err := bc.GetProperties(ctx, &blob.GetPropertiesOptions{AccessConditions: cond}); err != nil {
			return nil, c.readErr(ctx, name, err)
		}
		return &blobReader{ctx: ctx, c: c, name: name, r: io.NopCloser(strings.NewReader(""))}, nil
	}
	if left > c.opts.PartSize && c.opts.Concurrency > 1 {
		fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
			resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: off, Count: n}, AccessConditions: cond})
			if err != nil {
				return nil, err
			}
			return resp.Body, nil
		}
		r := rangereader.New(ctx, size, offset, rangereader.Config{
			PartSize:    c.opts.PartSize,
			Concurrency: c.opts.Concurrency,
			Retryable:   retryable,
		}, fetch)
		return &blobReader{ctx: ctx, c: c, name: name, r: r, left: left}, nil
	}
	// Count 0 means to the end: an empty blob is read whole, without a range.
	resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: offset, Count: left}, AccessConditions: cond})
	if err != nil {
		return nil, c.readErr(ctx, name, err)
	}
	// The retry reader asks again for the rest of the range, still on the
	// same ETag, when the connection breaks.
	return &blobReader{ctx: ctx, c: c, name: name, r: resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3}), left: left}, nil
}

// retryable says whether a failed ranged download is worth another try: not
// when the blob changed or went, nor when access is denied.
func retryable(err error) bool {
	if bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobNotFound) {
		return false
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 500 || re.StatusCode == 408 || re.StatusCode == 429
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// readErr explains why reading blob name failed.
func (c *client) readErr(ctx context.Context, name string, err error) error {
	var re *azcore.ResponseError
	errors.As(err, &re)
	changed := bloberror.HasCode(err, bloberror.ConditionNotMet) || (re != nil && re.StatusCode == 412)
	if changed {
		// A version condition fails alike for a blob replaced and one
		// deleted: tell them apart.
		if _, perr := c.c.NewBlobClient(name).GetProperties(ctx, nil); bloberror.HasCode(perr, bloberror.BlobNotFound) {
			err, changed = perr, false
		}
	}
	switch {
	case changed:
		return connectors.BadInput("%s %q: blob %s changed while it was being read (it is no longer the version that was listed or opened; HTTP 412): start the request again to copy its current version", c.role, c.conn.Name, c.loc.blobURL(name))
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		return connectors.BadInput("%s %q: blob %s was deleted while it was being read: %w", c.role, c.conn.Name, c.loc.blobURL(name), connectors.ErrNotFound)
	}
	return c.fail("read blob "+name, err)
}

// blobReader reads a blob's bytes, explains errors without secrets, and
// checks that the service sent every byte it should have.
type blobReader struct {
	ctx  context.Context
	c    *client
	name string
	r    io.ReadCloser
	left int64 // bytes still expected
}

func (b *blobReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.left -= int64(n)
	switch {
	case err == io.EOF && b.left > 0:
		return n, b.c.fail("read blob "+b.name, io.ErrUnexpectedEOF)
	case err != nil && err != io.EOF:
		return n, b.c.readErr(b.ctx, b.name, err)
	}
	return n, err
}

func (b *blobReader) Close() error { return b.r.Close() }
