package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/rangereader"
)

// bucket reads and writes the objects of one bucket, on behalf of a source
// or a store.
type bucket struct {
	api  *s3.Client
	loc  location
	opts Options
	// who starts every message: `connection "x"` or `s3 store s3://...`.
	who string
}

// listed is what a reader expects of an object: the size and modification
// time it was listed with (Size < 0 and a zero ModTime are not checked).
type listed struct {
	size    int64
	modTime time.Time
}

// head describes an object; the returned error wraps the SDK's.
func (b *bucket) head(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	return b.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.loc.bucket), Key: aws.String(key)})
}

// url is s3://bucket/key for messages.
func (b *bucket) url(key string) string { return "s3://" + b.loc.bucket + "/" + key }

// changed checks an object against the version it was listed with.
func (b *bucket) changed(key string, want *listed, size int64, modTime *time.Time) error {
	if want == nil {
		return nil
	}
	sizeDiffers := want.size >= 0 && size != want.size
	// Listings give milliseconds, HEAD and GET whole seconds.
	timeDiffers := !want.modTime.IsZero() && modTime != nil && !want.modTime.Truncate(time.Second).Equal(modTime.Truncate(time.Second))
	if !sizeDiffers && !timeDiffers {
		return nil
	}
	now := "unknown time"
	if modTime != nil {
		now = modTime.UTC().Format(time.RFC3339)
	}
	return connectors.BadInput("%s: object %s changed since it was listed (listed with %d bytes, modified %s; now %d bytes, modified %s): its bytes would not match the listing, so it is not read; bring it in with a new request",
		b.who, b.url(key), want.size, want.modTime.UTC().Format(time.RFC3339), size, now)
}

// open streams key's bytes from offset to the end. An object no larger than
// one part (from offset) is read with a single GET; a larger one with
// parallel ranged GETs, each conditional on the ETag the first request saw,
// so that an object replaced while it is read fails the read instead of
// mixing two versions' bytes. With want, an object that no longer matches
// its listing is refused. A missing key gives an error wrapping
// connectors.ErrNotFound.
func (b *bucket) open(ctx context.Context, key string, offset int64, want *listed) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, connectors.BadInput("%s: object %s: negative offset %d: resume from 0 or a checkpoint's offset", b.who, b.url(key), offset)
	}
	// With the listed size known, a small remainder needs no HEAD: one GET
	// and its response headers say everything.
	if want != nil && want.size >= 0 && offset < want.size && want.size-offset <= b.opts.PartSize {
		return b.openSmall(ctx, key, offset, want)
	}
	h, err := b.head(ctx, key)
	if err != nil {
		return nil, b.readError(key, err)
	}
	size := aws.ToInt64(h.ContentLength)
	if err := b.changed(key, want, size, h.LastModified); err != nil {
		return nil, err
	}
	if offset > size {
		return nil, connectors.BadInput("%s: object %s holds %d bytes, fewer than the resume offset %d: the object changed since the copy began; start the copy again", b.who, b.url(key), size, offset)
	}
	if offset == size {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	etag := aws.ToString(h.ETag)
	if size-offset <= b.opts.PartSize || b.opts.Concurrency == 1 {
		out, err := b.get(ctx, key, offset, -1, etag)
		if err != nil {
			return nil, b.readError(key, err)
		}
		return out.Body, nil
	}
	fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		out, err := b.get(ctx, key, off, n, etag)
		if err != nil {
			return nil, b.readError(key, err)
		}
		return out.Body, nil
	}
	cfg := rangereader.Config{PartSize: b.opts.PartSize, Concurrency: b.opts.Concurrency, Retryable: retryable}
	return rangereader.New(ctx, size, offset, cfg, fetch), nil
}

// openSmall reads the rest of an object that fits in one part with a single
// GET, checking the response against want.
func (b *bucket) openSmall(ctx context.Context, key string, offset int64, want *listed) (io.ReadCloser, error) {
	out, err := b.get(ctx, key, offset, -1, "")
	if err != nil {
		return nil, b.readError(key, err)
	}
	size := aws.ToInt64(out.ContentLength)
	if offset > 0 {
		size = rangeTotal(aws.ToString(out.ContentRange))
	}
	if err := b.changed(key, want, size, out.LastModified); err != nil {
		out.Body.Close()
		return nil, err
	}
	return out.Body, nil
}

// rangeTotal returns the total of a Content-Range "bytes a-b/total", or -1.
func rangeTotal(cr string) int64 {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return -1
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// get GETs n bytes of key from off (n < 0: to the end; off 0 and n < 0:
// the whole object, without a Range), only if its ETag is still etag when
// etag is set.
func (b *bucket) get(ctx context.Context, key string, off, n int64, etag string) (*s3.GetObjectOutput, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(b.loc.bucket), Key: aws.String(key)}
	switch {
	case n >= 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	case off > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	}
	return b.api.GetObject(ctx, in)
}

// readError explains why key cannot be read.
func (b *bucket) readError(key string, err error) error {
	switch {
	case isNotFound(err):
		return fmt.Errorf("%s: object %s does not exist: %w", b.who, b.url(key), connectors.ErrNotFound)
	case isChanged(err):
		return fmt.Errorf("%s: object %s was replaced while it was read (its ETag changed): the bytes read so far are from the old version, so this copy is not used", b.who, b.url(key))
	}
	return explain(b.who, "read", b.url(key), err)
}
