package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/version"
)

// InstrumentName names this connector in a crate's CreateAction.
const InstrumentName = "airlock-s3-connector"

// Factories returns the factory for s3 connections. Secrets are resolved
// through p when a source is built; nil p looks in the environment only.
func Factories(p *secrets.Provider, opts Options) connectors.Registry {
	return connectors.Registry{
		model.ConnS3: func(ctx context.Context, conn model.Connection) (connectors.Source, error) {
			return New(ctx, conn, p, opts)
		},
	}
}

// Source reads the objects of one s3 connection.
type Source struct {
	conn model.Connection
	b    *bucket
}

var _ connectors.Source = (*Source)(nil)

// New builds the source for conn, an s3 connection, resolving its
// credentials through p. It sends no request: a wrong bucket or credentials
// show at List.
func New(ctx context.Context, conn model.Connection, p *secrets.Provider, opts Options) (*Source, error) {
	opts = opts.withDefaults()
	api, loc, err := newClient(ctx, conn, p, opts)
	if err != nil {
		return nil, err
	}
	who := fmt.Sprintf("connection %q", conn.Name)
	return &Source{conn: conn, b: &bucket{api: api, loc: loc, opts: opts, who: who}}, nil
}

// Describe says where the connection reads, e.g.
// `s3://bucket/prefix (s3 connection "name", endpoint http://host:9000)`.
func (s *Source) Describe() string { return describe("s3 connection", s.conn, s.b.loc) }

// Instrument names the connector and the Airlock release it belongs to.
func (s *Source) Instrument() connectors.Instrument {
	return connectors.Instrument{Name: InstrumentName, Version: version.Version}
}

// List returns the objects obj names: the single object of a file, or every
// object below a prefix (folder markers, keys ending in '/', left out),
// sorted by Path. Paths are keys relative to the connection's prefix; a key
// that is not a clean relative path ("a//b", "a/../b") is refused rather
// than placed somewhere it does not say.
func (s *Source) List(ctx context.Context, obj model.Object) ([]connectors.Item, error) {
	return connectors.ListFileObject(ctx, obj, s.b.who, model.ConnS3, s.listFile, s.listPrefix)
}

func (s *Source) listFile(ctx context.Context, p string) ([]connectors.Item, error) {
	rel, err := model.CleanRelPath(p)
	if err != nil {
		return nil, connectors.BadInput("%s: file.path: %v", s.b.who, err)
	}
	key := s.b.loc.key(rel)
	h, err := s.b.head(ctx, key)
	if err != nil {
		if !isNotFound(err) {
			return nil, explain(s.b.who, "read", s.b.url(key), err)
		}
		// Say so when the path is a folder of objects rather than one.
		out, lerr := s.b.api.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.b.loc.bucket), Prefix: aws.String(key + "/"), MaxKeys: aws.Int32(1)})
		if lerr == nil && len(out.Contents) > 0 {
			return nil, connectors.BadInput("%s: %s is a folder of objects in %s: describe this object as a prefix to bring in the objects below it", s.b.who, rel, s.b.loc.url(""))
		}
		return nil, connectors.BadInput("%s: file %s not found in %s (bucket %s): check the object's path", s.b.who, rel, s.b.loc.url(""), s.b.loc.bucket)
	}
	return []connectors.Item{{
		Path:           rel,
		Ref:            key,
		Size:           aws.ToInt64(h.ContentLength),
		ModTime:        aws.ToTime(h.LastModified),
		EncodingFormat: file.MediaType(rel),
	}}, nil
}

func (s *Source) listPrefix(ctx context.Context, p string) ([]connectors.Item, error) {
	rel := ""
	if t := strings.Trim(p, "/"); t != "" {
		c, err := model.CleanRelPath(t)
		if err != nil {
			return nil, connectors.BadInput("%s: prefix.path: %v", s.b.who, err)
		}
		rel = c + "/"
	}
	base := s.b.loc.dir()
	var items []connectors.Item
	pages := s3.NewListObjectsV2Paginator(s.b.api, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.b.loc.bucket),
		Prefix:  aws.String(base + rel),
		MaxKeys: aws.Int32(s.b.opts.ListPageSize),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, explain(s.b.who, "list", s.b.loc.url(rel), err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasSuffix(key, "/") {
				continue // a folder marker, made by consoles for empty folders
			}
			path, err := s.relPath(key)
			if err != nil {
				return nil, err
			}
			items = append(items, connectors.Item{
				Path:           path,
				Ref:            key,
				Size:           aws.ToInt64(o.Size),
				ModTime:        aws.ToTime(o.LastModified),
				EncodingFormat: file.MediaType(path),
			})
		}
	}
	if len(items) == 0 {
		name := strings.TrimSuffix(rel, "/")
		if name == "" {
			name = "/"
		}
		return nil, connectors.BadInput("%s: prefix %s in %s is empty: it holds no objects; check the object's path or put the data there", s.b.who, name, s.b.loc.url(""))
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Path < items[j].Path })
	return items, nil
}

// relPath returns key relative to the connection's prefix, refusing keys
// that are not clean relative paths.
func (s *Source) relPath(key string) (string, error) {
	base := s.b.loc.dir()
	if !strings.HasPrefix(key, base) {
		return "", fmt.Errorf("%s: the store listed key %q, which is not below %s", s.b.who, key, s.b.loc.url(""))
	}
	rel := key[len(base):]
	c, err := model.CleanRelPath(rel)
	if err == nil && c != rel {
		err = fmt.Errorf("path %q is not clean (it has empty or '.' segments; it would be placed at %q)", rel, c)
	}
	if err != nil {
		return "", connectors.BadInput("%s: object key %q in %s cannot be placed in a crate: %v; rename the object", s.b.who, key, s.b.loc.url(""), err)
	}
	return rel, nil
}

// Open streams item's bytes from offset on. item.Ref is the object's full
// key, as List returned it. An object that changed since it was listed
// (another size or modification time) is refused, so a resumed copy never
// joins two versions; one replaced during the read fails the read.
func (s *Source) Open(ctx context.Context, it connectors.Item, offset int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := s.relPath(it.Ref); err != nil || it.Ref == "" {
		return nil, connectors.BadInput("%s: item ref %q is not an object key below %s; list the object again", s.b.who, it.Ref, s.b.loc.url(""))
	}
	r, err := s.b.open(ctx, it.Ref, offset, &listed{size: it.Size, modTime: it.ModTime})
	if errors.Is(err, connectors.ErrNotFound) {
		return nil, connectors.BadInput("%s: object %s was listed but no longer exists: check the source, then bring it in with a new request", s.b.who, s.b.url(it.Ref))
	}
	return r, err
}
