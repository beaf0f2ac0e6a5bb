package s3

import (
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

// deleteBatch is how many keys one DeleteObjects request removes (S3's
// maximum; tests make it smaller).
var deleteBatch = 1000

// Store keeps files as objects below a bucket's prefix: Airlock's staging
// area or a workspace store. A file is written with a multipart upload, so
// nothing shows under its key before Commit, and a copy interrupted after a
// Checkpoint resumes with the parts already uploaded.
type Store struct {
	conn model.Connection
	b    *bucket
}

var _ connectors.Store = (*Store)(nil)

// StoreFactory returns a connectors.StoreFactory that builds s3 stores,
// resolving credentials through p.
func StoreFactory(p *secrets.Provider, opts Options) connectors.StoreFactory {
	return func(ctx context.Context, conn model.Connection) (connectors.Store, error) {
		return NewStore(ctx, conn, p, opts)
	}
}

// NewStore builds the store conn describes (an s3 connection: url, prefix,
// endpoint, region, pathStyle, credentials, as for a source). It sends no
// request. PartSize below MinUploadPartSize is raised to it.
func NewStore(ctx context.Context, conn model.Connection, p *secrets.Provider, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if opts.PartSize < MinUploadPartSize {
		opts.PartSize = MinUploadPartSize
	}
	api, loc, err := newClient(ctx, conn, p, opts)
	if err != nil {
		return nil, err
	}
	who := "s3 store " + loc.url("")
	return &Store{conn: conn, b: &bucket{api: api, loc: loc, opts: opts, who: who}}, nil
}

// Describe says where the store keeps its files, without secrets.
func (s *Store) Describe() string { return describe("s3 store", s.conn, s.b.loc) }

// PartSize is the size of the parts the store uploads.
func (s *Store) PartSize() int64 { return s.b.opts.PartSize }

// URL returns s3://bucket/prefix/key.
func (s *Store) URL(key string) string {
	c := strings.TrimPrefix(path.Clean("/"+key), "/")
	return s.b.loc.url(c)
}

// checkKey validates key and returns it cleaned.
func (s *Store) checkKey(key string) (string, error) {
	return connectors.StoreKey(s.b.who, key)
}

// checkPrefix validates a List or DeletePrefix prefix ("" stays "").
func (s *Store) checkPrefix(prefix string) (string, error) {
	return connectors.StorePrefix(s.b.who, prefix)
}

// Open reads the committed file key, with parallel ranged GETs when it is
// bigger than a part. A missing key gives an error wrapping
// connectors.ErrNotFound.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, err := s.checkKey(key)
	if err != nil {
		return nil, err
	}
	return s.b.open(ctx, s.b.loc.key(k), 0, nil)
}

// Stat describes the committed file key. A missing key gives an error
// wrapping connectors.ErrNotFound.
func (s *Store) Stat(ctx context.Context, key string) (connectors.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return connectors.ObjectInfo{}, err
	}
	k, err := s.checkKey(key)
	if err != nil {
		return connectors.ObjectInfo{}, err
	}
	h, err := s.b.head(ctx, s.b.loc.key(k))
	if err != nil {
		return connectors.ObjectInfo{}, s.b.readError(s.b.loc.key(k), err)
	}
	return connectors.ObjectInfo{Key: k, Size: aws.ToInt64(h.ContentLength), ModTime: aws.ToTime(h.LastModified)}, nil
}

// List returns the committed files under the folder prefix ("" for the
// whole store), sorted by key, keys relative to the store's prefix. A prefix
// that names a file lists that file too. Uploads in progress and folder
// markers are not listed.
func (s *Store) List(ctx context.Context, prefix string) ([]connectors.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.checkPrefix(prefix)
	if err != nil {
		return nil, err
	}
	out := []connectors.ObjectInfo{}
	if p != "" {
		h, err := s.b.head(ctx, s.b.loc.key(p))
		switch {
		case err == nil:
			out = append(out, connectors.ObjectInfo{Key: p, Size: aws.ToInt64(h.ContentLength), ModTime: aws.ToTime(h.LastModified)})
		case !isNotFound(err):
			return nil, explain(s.b.who, "list", s.URL(p), err)
		}
	}
	base := s.b.loc.dir()
	err = s.eachObject(ctx, p, func(o types.Object) error {
		key := aws.ToString(o.Key)
		if strings.HasSuffix(key, "/") || !strings.HasPrefix(key, base) {
			return nil // a folder marker
		}
		out = append(out, connectors.ObjectInfo{Key: key[len(base):], Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// eachObject calls fn for every object below the folder p ("" for the
// whole store), page by page.
func (s *Store) eachObject(ctx context.Context, p string, fn func(types.Object) error) error {
	prefix := s.b.loc.dir()
	if p != "" {
		prefix = s.b.loc.key(p) + "/"
	}
	pages := s3.NewListObjectsV2Paginator(s.b.api, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.b.loc.bucket),
		Prefix:  aws.String(prefix),
		MaxKeys: aws.Int32(s.b.opts.ListPageSize),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return explain(s.b.who, "list", s.URL(p), err)
		}
		for _, o := range page.Contents {
			if err := fn(o); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeletePrefix removes the file prefix names and every file under the
// folder prefix, and aborts the multipart uploads in progress there (the
// partial files). It succeeds when nothing is there. The empty prefix is
// refused so that a mistake cannot wipe the whole store.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.checkPrefix(prefix)
	if err != nil {
		return err
	}
	if p == "" {
		return connectors.BadInput("%s: delete: empty prefix would delete the whole store; name the folder to delete", s.b.who)
	}
	if err := s.abortUploads(ctx, p); err != nil {
		return err
	}
	// The key p itself goes in the first batch: deleting a missing key is
	// not an error in S3.
	batch := []types.ObjectIdentifier{{Key: aws.String(s.b.loc.key(p))}}
	err = s.eachObject(ctx, p, func(o types.Object) error {
		batch = append(batch, types.ObjectIdentifier{Key: o.Key})
		if len(batch) == deleteBatch {
			err := s.deleteObjects(ctx, p, batch)
			batch = batch[:0]
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.deleteObjects(ctx, p, batch)
}

// deleteObjects deletes a batch of keys, failing on any key S3 could not delete.
func (s *Store) deleteObjects(ctx context.Context, p string, batch []types.ObjectIdentifier) error {
	if len(batch) == 0 {
		return nil
	}
	out, err := s.b.api.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(s.b.loc.bucket),
		Delete: &types.Delete{Objects: batch, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return explain(s.b.who, "delete", s.URL(p), err)
	}
	if len(out.Errors) > 0 {
		e := out.Errors[0]
		return fmt.Errorf("%s: delete %s: %d objects could not be deleted, the first %s: %s (%s)", s.b.who, s.URL(p), len(out.Errors), s.b.url(aws.ToString(e.Key)), aws.ToString(e.Message), aws.ToString(e.Code))
	}
	return nil
}

// abortUploads aborts every multipart upload of the key p or below the folder p.
func (s *Store) abortUploads(ctx context.Context, p string) error {
	key := s.b.loc.key(p)
	pages := s3.NewListMultipartUploadsPaginator(s.b.api, &s3.ListMultipartUploadsInput{
		Bucket: aws.String(s.b.loc.bucket),
		Prefix: aws.String(key),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return explain(s.b.who, "list the uploads in progress under", s.URL(p), err)
		}
		for _, u := range page.Uploads {
			k := aws.ToString(u.Key)
			if k != key && !strings.HasPrefix(k, key+"/") {
				continue // a sibling such as p-2
			}
			if err := s.abortUpload(ctx, k, aws.ToString(u.UploadId)); err != nil {
				return err
			}
		}
	}
	return nil
}

// abortUpload aborts one multipart upload; one already gone is not an error.
func (s *Store) abortUpload(ctx context.Context, key, uploadID string) error {
	_, err := s.b.api.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.b.loc.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
	})
	if err != nil && !isNoSuchUpload(err) && !isNotFound(err) {
		return explain(s.b.who, "abort the upload of", s.b.url(key), err)
	}
	return nil
}

// uploadToken is a Checkpoint's Token: the multipart upload to continue and
// the part size its parts were cut at.
type uploadToken struct {
	UploadID string `json:"uploadId"`
	PartSize int64  `json:"partSize"`
}
