package azureblob

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/version"
)

// Factories returns the factory for azureblob connections. Secrets are
// resolved by p when a source is built, inside the activity.
func Factories(p *secrets.Provider, opts Options) connectors.Registry {
	return connectors.Registry{
		model.ConnAzureBlob: func(ctx context.Context, conn model.Connection) (connectors.Source, error) {
			s, err := New(ctx, conn, p, opts)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	}
}

// Source reads the blobs of one azureblob connection.
type Source struct {
	*client
}

var _ connectors.Source = (*Source)(nil)

// New builds the source for conn (see the package documentation for the
// url and credentials it takes). It makes no request: a wrong url or
// credential shows on the first List.
func New(ctx context.Context, conn model.Connection, p *secrets.Provider, opts Options) (*Source, error) {
	c, err := newClient(ctx, "connection", conn, p, opts)
	if err != nil {
		return nil, err
	}
	return &Source{client: c}, nil
}

// Describe says where the connection reads, e.g.
// `https://acct.blob.core.windows.net/data/trial (azureblob connection "trial")`.
func (s *Source) Describe() string {
	return fmt.Sprintf("%s (%s connection %q)", s.loc, model.ConnAzureBlob, s.conn.Name)
}

// Instrument names the connector and the Airlock release it belongs to.
func (s *Source) Instrument() connectors.Instrument {
	return connectors.Instrument{Name: InstrumentName, Version: version.Version}
}

// List returns the blobs obj names: the one blob of a file object, or every
// blob under a prefix object's folder ("" or "/" for the connection's whole
// prefix), sorted by Path. Paths are relative to the connection's prefix.
// Folder markers (zero-length blobs whose names end in '/', and the
// directories of an account with a hierarchical namespace) are skipped; a
// blob whose name is not a clean relative path is refused by name.
func (s *Source) List(ctx context.Context, obj model.Object) ([]connectors.Item, error) {
	return connectors.ListFileObject(ctx, obj, fmt.Sprintf("connection %q", s.conn.Name), model.ConnAzureBlob, s.listFile, s.listPrefix)
}

func (s *Source) listFile(ctx context.Context, p string) ([]connectors.Item, error) {
	rel, err := model.CleanRelPath(p)
	if err != nil {
		return nil, connectors.BadInput("connection %q: file.path: %v", s.conn.Name, err)
	}
	name := s.loc.blobName(rel)
	props, err := s.c.NewBlobClient(name).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		if s.hasBlobsUnder(ctx, name+"/") {
			return nil, connectors.BadInput("connection %q: %s is a folder in container %q (%s): describe this object as a prefix to bring in the blobs inside it", s.conn.Name, rel, s.loc.container, s.loc)
		}
		return nil, connectors.BadInput("connection %q: file %s not found in container %q (no blob %s): check the object's path", s.conn.Name, rel, s.loc.container, s.loc.blobURL(name))
	}
	if err != nil {
		return nil, s.fail("get properties of blob "+name, err)
	}
	if isFolder(props.Metadata) {
		return nil, connectors.BadInput("connection %q: %s is a folder in container %q (%s): describe this object as a prefix to bring in the blobs inside it", s.conn.Name, rel, s.loc.container, s.loc)
	}
	return []connectors.Item{s.item(rel, name, props.ContentLength, props.LastModified, props.ETag)}, nil
}

// hasBlobsUnder reports whether any blob's name starts with prefix.
func (s *Source) hasBlobsUnder(ctx context.Context, prefix string) bool {
	one := int32(1)
	page, err := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix, MaxResults: &one}).NextPage(ctx)
	return err == nil && len(page.Segment.BlobItems) > 0
}

func (s *Source) listPrefix(ctx context.Context, p string) ([]connectors.Item, error) {
	rel := ""
	if t := strings.Trim(p, "/"); t != "" {
		c, err := cleanPrefix(t)
		if err != nil {
			return nil, connectors.BadInput("connection %q: prefix.path: %v", s.conn.Name, err)
		}
		rel = c
	}
	prefix := s.loc.listPrefix(rel)
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:     &prefix,
		MaxResults: &s.opts.ListPageSize,
		Include:    container.ListBlobsInclude{Metadata: true},
	})
	var items []connectors.Item
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, s.fail("list blobs under "+s.loc.blobURL(prefix), err)
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || b.Properties == nil {
				continue
			}
			name := *b.Name
			size := b.Properties.ContentLength
			if (strings.HasSuffix(name, "/") && (size == nil || *size == 0)) || isFolder(b.Metadata) {
				continue // a folder marker, not a file
			}
			r, _ := s.loc.relName(name)
			if c, err := model.CleanRelPath(r); err != nil || c != r {
				why := fmt.Sprintf("it is %q once cleaned", c)
				if err != nil {
					why = err.Error()
				}
				return nil, connectors.BadInput("connection %q: blob %q in container %q cannot be brought in: its name is not a clean relative path (%s); rename the blob, or describe its neighbours one by one as file objects", s.conn.Name, name, s.loc.container, why)
			}
			items = append(items, s.item(r, name, size, b.Properties.LastModified, b.Properties.ETag))
		}
	}
	if len(items) == 0 {
		shown := rel
		if rel == "" {
			shown = "/"
		}
		return nil, connectors.BadInput("connection %q: prefix %s in container %q (%s) is empty: it holds no blobs; check the object's path or put the data there", s.conn.Name, shown, s.loc.container, s.loc.blobURL(prefix))
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Path < items[j].Path })
	return items, nil
}

// isFolder reports whether a blob's metadata marks it as a directory of an
// account with a hierarchical namespace (Data Lake Storage Gen2).
func isFolder(md map[string]*string) bool {
	for k, v := range md {
		if strings.EqualFold(k, "hdi_isfolder") && v != nil && strings.EqualFold(*v, "true") {
			return true
		}
	}
	return false
}

// refETag separates a blob's name from the ETag of the listed version in an
// Item's Ref.
const refETag = "#etag="

// item describes blob name, at rel below the connection's prefix. Its Ref
// is the blob's name and the ETag listed, so that Open reads that version
// or fails.
func (s *Source) item(rel, name string, size *int64, mod *time.Time, etag *azcore.ETag) connectors.Item {
	it := connectors.Item{Path: rel, Ref: name, Size: -1, EncodingFormat: file.MediaType(rel)}
	if size != nil {
		it.Size = *size
	}
	if mod != nil {
		it.ModTime = mod.UTC()
	}
	if etag != nil && *etag != "" {
		it.Ref += refETag + string(*etag)
	}
	return it
}

// parseRef splits an Item's Ref into the blob's name and the listed ETag
// ("" when the Ref carries none).
func parseRef(ref string) (name string, etag azcore.ETag) {
	if i := strings.LastIndex(ref, refETag); i >= 0 {
		return ref[:i], azcore.ETag(ref[i+len(refETag):])
	}
	return ref, ""
}

// Open streams the blob item names from offset on. It reads the version
// List saw: if the blob has been replaced or deleted since, Open or a later
// Read fails with a BadInput error that says so, instead of mixing versions.
func (s *Source) Open(ctx context.Context, it connectors.Item, offset int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, etag := parseRef(it.Ref)
	if rel, ok := s.loc.relName(name); !ok {
		return nil, connectors.BadInput("connection %q: item ref %q is not a blob under %s: list the object again", s.conn.Name, name, s.loc)
	} else if c, err := model.CleanRelPath(rel); err != nil || c != rel {
		return nil, connectors.BadInput("connection %q: item ref %q is not a clean path under %s: list the object again", s.conn.Name, name, s.loc)
	}
	if offset < 0 {
		return nil, connectors.BadInput("connection %q: blob %s: negative offset %d: resume from 0 or a checkpoint's offset", s.conn.Name, name, offset)
	}
	size := it.Size
	if etag == "" || size < 0 {
		opts := &blob.GetPropertiesOptions{}
		if etag != "" {
			opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}}
		}
		props, err := s.c.NewBlobClient(name).GetProperties(ctx, opts)
		if err != nil {
			return nil, s.readErr(ctx, name, err)
		}
		if props.ETag == nil || props.ContentLength == nil {
			return nil, fmt.Errorf("connection %q: blob %s: the service sent no ETag or length", s.conn.Name, s.loc.blobURL(name))
		}
		etag, size = *props.ETag, *props.ContentLength
	}
	if offset > size {
		return nil, connectors.BadInput("connection %q: blob %s holds %d bytes, fewer than the resume offset %d: the blob changed since the copy began; start the request again", s.conn.Name, s.loc.blobURL(name), size, offset)
	}
	return s.openBlob(ctx, name, etag, size, offset)
}
