package databricks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/httpclient"
	"github.com/databricks/databricks-sdk-go/service/files"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/model"
)

// needVolume refuses file and prefix objects on a connection without a
// volume folder.
func (s *Source) needVolume(kind string) error {
	if s.volume != "" {
		return nil
	}
	return connectors.BadInput("connection %q: %s objects are read from a Unity Catalog volume, and the connection names none: put the volume folder in the connection's url (https://<workspace-host>/Volumes/<catalog>/<schema>/<volume>) or in its prefix (/Volumes/<catalog>/<schema>/<volume>)", s.conn.Name, kind)
}

func apiStatus(err error) (int, string) {
	var ae *apierr.APIError
	if errors.As(err, &ae) {
		return ae.StatusCode, ae.ErrorCode
	}
	return 0, ""
}

func (s *Source) listFile(ctx context.Context, p string) ([]connectors.Item, error) {
	if err := s.needVolume("file"); err != nil {
		return nil, err
	}
	rel, err := model.CleanRelPath(p)
	if err != nil {
		return nil, connectors.BadInput("connection %q: file.path: %v", s.conn.Name, err)
	}
	abs := s.volume + "/" + rel
	var meta *files.GetMetadataResponse
	err = callAPI(ctx, func(ctx context.Context) (err error) {
		meta, err = s.files.GetMetadata(ctx, files.GetMetadataRequest{FilePath: abs})
		return err
	})
	if err != nil {
		if status, _ := apiStatus(err); status == http.StatusNotFound {
			derr := callAPI(ctx, func(ctx context.Context) error {
				return s.files.GetDirectoryMetadata(ctx, files.GetDirectoryMetadataRequest{DirectoryPath: abs})
			})
			if derr == nil {
				return nil, connectors.BadInput("connection %q: %s is a folder in %s: describe this object as a prefix to bring in the files inside it", s.conn.Name, rel, s.volume)
			}
			return nil, connectors.BadInput("connection %q: file %s not found in %s: check the object's path", s.conn.Name, rel, s.volume)
		}
		return nil, s.apiFailure(fmt.Sprintf("reading the metadata of %s", abs), err)
	}
	it := connectors.Item{Path: rel, Ref: abs, Size: meta.ContentLength, EncodingFormat: file.MediaType(rel)}
	if t, err := http.ParseTime(meta.LastModified); err == nil {
		it.ModTime = t.UTC()
	}
	return []connectors.Item{it}, nil
}

func (s *Source) listPrefix(ctx context.Context, p string) ([]connectors.Item, error) {
	if err := s.needVolume("prefix"); err != nil {
		return nil, err
	}
	top, rel := s.volume, "/"
	if t := strings.TrimSuffix(p, "/"); t != "" {
		c, err := model.CleanRelPath(t)
		if err != nil {
			return nil, connectors.BadInput("connection %q: prefix.path: %v", s.conn.Name, err)
		}
		top, rel = s.volume+"/"+c, c
	}
	var items []connectors.Item
	queue := []string{top}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		token := ""
		for {
			page, err := s.listPage(ctx, dir, token)
			if err != nil {
				status, code := apiStatus(err)
				switch {
				case dir == top && status == http.StatusNotFound:
					return nil, connectors.BadInput("connection %q: prefix %s not found in %s: check the object's path", s.conn.Name, rel, s.volume)
				case dir == top && code == "NOT_A_DIRECTORY":
					return nil, connectors.BadInput("connection %q: prefix %s in %s is a file, not a folder: describe this object as a file", s.conn.Name, rel, s.volume)
				}
				return nil, s.apiFailure(fmt.Sprintf("listing %s", dir), err)
			}
			for _, e := range page.Contents {
				// Tolerate directory paths written with a trailing slash.
				e.Path = strings.TrimSuffix(e.Path, "/")
				sub, ok := strings.CutPrefix(e.Path, dir+"/")
				if !ok || sub == "" || strings.Contains(sub, "/") {
					return nil, fmt.Errorf("connection %q: listing %s: Databricks returned the entry %q, which is not directly inside it", s.conn.Name, dir, e.Path)
				}
				relPath := strings.TrimPrefix(e.Path, s.volume+"/")
				if _, err := model.CleanRelPath(relPath); err != nil {
					return nil, connectors.BadInput("connection %q: %s in %s: %v", s.conn.Name, relPath, s.volume, err)
				}
				if e.IsDirectory {
					queue = append(queue, e.Path)
					continue
				}
				it := connectors.Item{Path: relPath, Ref: e.Path, Size: e.FileSize, EncodingFormat: file.MediaType(e.Name)}
				if e.LastModified > 0 {
					it.ModTime = time.UnixMilli(e.LastModified).UTC()
				}
				items = append(items, it)
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
	}
	if len(items) == 0 {
		return nil, connectors.BadInput("connection %q: prefix %s in %s is empty: it holds no files; check the object's path or put the data there", s.conn.Name, rel, s.volume)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Path < items[j].Path })
	return items, nil
}

// listPage reads one page of a directory listing.
func (s *Source) listPage(ctx context.Context, dir, token string) (*files.ListDirectoryResponse, error) {
	var page *files.ListDirectoryResponse
	err := callAPI(ctx, func(ctx context.Context) error {
		page = &files.ListDirectoryResponse{}
		q := map[string]any{}
		if token != "" {
			q["page_token"] = token
		}
		return s.api.Do(ctx, http.MethodGet, "/api/2.0/fs/directories"+httpclient.EncodeMultiSegmentPathParameter(dir),
			map[string]string{"Accept": "application/json"}, q, nil, page)
	})
	return page, err
}

// Open streams a volume file from offset with a ranged GET. The request
// carries If-Unmodified-Since the listed modification time and the answer
// is checked against the listed size, so a file that changed since it was
// listed is refused instead of resumed with other bytes.
func (s *Source) Open(ctx context.Context, it connectors.Item, offset int64) (io.ReadCloser, error) {
	rc, err := s.open(ctx, it, offset)
	return rc, s.clean(err)
}

func (s *Source) open(ctx context.Context, it connectors.Item, offset int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if name, ok := strings.CutPrefix(it.Ref, tableRefPrefix); ok {
		return nil, connectors.BadInput("connection %q: table %q is produced by running a statement (Produce), not opened as a file", s.conn.Name, name)
	}
	if err := s.needVolume("file"); err != nil {
		return nil, err
	}
	if path.Clean(it.Ref) != it.Ref || !strings.HasPrefix(it.Ref, s.volume+"/") {
		return nil, connectors.BadInput("connection %q: item %q refers to %q, outside the connection's volume folder %s: list the object again", s.conn.Name, it.Path, it.Ref, s.volume)
	}
	switch {
	case offset < 0:
		return nil, connectors.BadInput("connection %q: file %s: negative offset %d: resume from 0 or a checkpoint's offset", s.conn.Name, it.Ref, offset)
	case it.Size >= 0 && offset > it.Size:
		return nil, connectors.BadInput("connection %q: file %s was listed with %d bytes, fewer than the resume offset %d: start the copy again", s.conn.Name, it.Ref, it.Size, offset)
	case it.Size >= 0 && offset == it.Size && offset > 0:
		return io.NopCloser(strings.NewReader("")), nil
	}
	changed := func(why string, args ...any) error {
		return connectors.BadInput("connection %q: file %s changed since it was listed (%s): start the import again to bring in the new version", s.conn.Name, it.Ref, fmt.Sprintf(why, args...))
	}
	target := s.host + "/api/2.0/fs/files" + httpclient.EncodeMultiSegmentPathParameter(it.Ref)
	resp, err := doHTTP(ctx, s.http, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/octet-stream")
		if offset > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		}
		if !it.ModTime.IsZero() {
			req.Header.Set("If-Unmodified-Since", it.ModTime.UTC().Format(http.TimeFormat))
		}
		if err := s.api.Config.Authenticate(req); err != nil {
			return nil, s.apiFailure("signing in to download "+it.Ref, err)
		}
		return req, nil
	})
	if err != nil {
		if isContext(err) || connectors.IsBadInput(err) {
			return nil, err
		}
		return nil, fmt.Errorf("connection %q: downloading %s: %w", s.conn.Name, it.Ref, err)
	}
	ok := false
	defer func() {
		if !ok {
			resp.Body.Close()
		}
	}()
	switch resp.StatusCode {
	case http.StatusOK:
		if offset > 0 {
			return nil, connectors.ErrNotResumable
		}
		if it.Size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != it.Size {
			return nil, changed("listed with %d bytes, now %d", it.Size, resp.ContentLength)
		}
	case http.StatusPartialContent:
		start, total, err := contentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return nil, fmt.Errorf("connection %q: downloading %s from %d: %v", s.conn.Name, it.Ref, offset, err)
		}
		if start != offset {
			return nil, fmt.Errorf("connection %q: downloading %s: asked for bytes from %d, Databricks sent them from %d", s.conn.Name, it.Ref, offset, start)
		}
		if it.Size >= 0 && total >= 0 && total != it.Size {
			return nil, changed("listed with %d bytes, now %d", it.Size, total)
		}
	case http.StatusPreconditionFailed:
		return nil, changed("modified after %s", it.ModTime.UTC().Format(time.RFC3339))
	case http.StatusRequestedRangeNotSatisfiable:
		return nil, changed("now shorter than the resume offset %d", offset)
	case http.StatusNotFound:
		return nil, connectors.BadInput("connection %q: file %s no longer exists: it was deleted or moved since it was listed", s.conn.Name, it.Ref)
	default:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return nil, s.httpFailure("downloading "+it.Ref, resp.StatusCode, body)
	}
	ok = true
	return resp.Body, nil
}

// contentRange parses "bytes start-end/total" (total may be "*", -1).
func contentRange(h string) (start, total int64, err error) {
	spec, ok := strings.CutPrefix(h, "bytes ")
	rng, tot, ok2 := strings.Cut(spec, "/")
	first, _, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", h)
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("malformed Content-Range %q", h)
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("malformed Content-Range %q", h)
		}
	}
	return start, total, nil
}

// httpFailure explains an error answer to a request the connector made
// without the SDK.
func (s *Source) httpFailure(what string, status int, body []byte) error {
	msg := strings.TrimSpace(string(body))
	var e struct {
		ErrorCode string `json:"error_code"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		msg = e.ErrorCode + ": " + e.Message
	}
	switch status {
	case http.StatusUnauthorized:
		return connectors.BadInput("connection %q: %s: Databricks at %s refused the credentials, %s: %s; check that the secrets hold current credentials for this workspace", s.conn.Name, what, s.host, s.auth, msg)
	case http.StatusForbidden:
		return connectors.BadInput("connection %q: %s: Databricks at %s denied access to the identity signed in with %s: %s; grant it the permission", s.conn.Name, what, s.host, s.auth, msg)
	case http.StatusBadRequest:
		return connectors.BadInput("connection %q: %s: Databricks at %s rejected the request: %s", s.conn.Name, what, s.host, msg)
	}
	return fmt.Errorf("connection %q: %s: Databricks at %s answered HTTP %d: %s", s.conn.Name, what, s.host, status, msg)
}
