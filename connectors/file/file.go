// Package file is the connector for data that sits in a directory the worker
// can see: "file" connections (a folder below the worker's configured file
// root, addressed by a file: URL) and "pvc" connections (a Kubernetes
// persistent volume claim mounted below the worker's PVC root).
//
// Every file access goes through an [os.Root] opened on the connection's
// folder, so neither ".." nor a symlink can lead a read outside it: the
// operating system layer refuses such paths, and List reports the offending
// link by name.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/version"
)

// InstrumentName names this connector in a crate's CreateAction.
const InstrumentName = "airlock-file-connector"

// Config says where the worker finds the directories file and pvc connections
// name. An empty root means the worker does not serve that connection type.
type Config struct {
	// FileRoot (config field sources.fileRoot) is the folder a file
	// connection's URL is resolved in, like a chroot: file:///sample-data
	// means <FileRoot>/sample-data.
	FileRoot string
	// PVCRoot (config field sources.pvcRoot) is the folder under which each
	// persistent volume claim is mounted, at <PVCRoot>/<connection name>.
	PVCRoot string
}

// Factories returns the factories for the file and pvc connection types.
func Factories(cfg Config) connectors.Registry {
	f := func(_ context.Context, conn model.Connection) (connectors.Source, error) { return New(cfg, conn) }
	return connectors.Registry{
		model.ConnFile: f,
		model.ConnPVC:  f,
	}
}

// Source reads the files of one file or pvc connection.
type Source struct {
	conn model.Connection
	// base is the host folder the connection is confined to (FileRoot or
	// PVCRoot), and sub the slash-separated path of the connection's folder
	// below it ("" for base itself). Opening base and then sub through
	// os.Root keeps even the connection's own folder from escaping base.
	base string
	sub  string
	// dir is the connection's folder on the host, for messages.
	dir string
	// url is the connection's location as people wrote it, normalised.
	url string
}

var _ connectors.Source = (*Source)(nil)

// New builds the source for conn, which must be a file or pvc connection. It
// checks that the connection's folder exists, so a misconfigured data source
// fails before anything is copied.
func New(cfg Config, conn model.Connection) (connectors.Source, error) {
	s := &Source{conn: conn}
	var err error
	switch conn.Type {
	case model.ConnFile:
		if cfg.FileRoot == "" {
			return nil, connectors.BadInput("connection %q: this worker is not configured to read file connections: set sources.fileRoot to the folder file: URLs are resolved in", conn.Name)
		}
		if s.base, err = filepath.Abs(cfg.FileRoot); err != nil {
			return nil, fmt.Errorf("connection %q: sources.fileRoot %q: %w", conn.Name, cfg.FileRoot, err)
		}
		if s.sub, err = urlPath(conn); err != nil {
			return nil, err
		}
		s.url = "file:///" + s.sub
	case model.ConnPVC:
		if cfg.PVCRoot == "" {
			return nil, connectors.BadInput("connection %q: this worker is not configured to read pvc connections: set sources.pvcRoot to the folder the claims are mounted under", conn.Name)
		}
		if s.base, err = filepath.Abs(cfg.PVCRoot); err != nil {
			return nil, fmt.Errorf("connection %q: sources.pvcRoot %q: %w", conn.Name, cfg.PVCRoot, err)
		}
		if c, err := model.CleanRelPath(conn.Name); err != nil || c != conn.Name || strings.Contains(c, "/") {
			return nil, connectors.BadInput("pvc connection %q: the name must be the claim's name (a single folder name under sources.pvcRoot, without '/' or '..')", conn.Name)
		}
		sub, err := urlPath(conn)
		if err != nil {
			return nil, err
		}
		s.sub = path.Join(conn.Name, sub)
		s.url = "pvc://" + s.sub
	default:
		return nil, connectors.BadInput("connection %q has type %q: the file connector reads only %s and %s connections", conn.Name, conn.Type, model.ConnFile, model.ConnPVC)
	}
	s.dir = filepath.Join(s.base, filepath.FromSlash(s.sub))
	r, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	r.Close()
	return s, nil
}

// urlPath returns the clean relative path a connection's optional file: URL
// names ("" for the root itself).
func urlPath(conn model.Connection) (string, error) {
	if conn.URL == "" {
		return "", nil
	}
	bad := func(why string, args ...any) error {
		return connectors.BadInput("connection %q: url %q: %s", conn.Name, conn.URL, fmt.Sprintf(why, args...))
	}
	u, err := url.Parse(conn.URL)
	if err != nil {
		return "", bad("not a valid URL (%v): write it as file:///folder/below/the/root", errors.Unwrap(err))
	}
	if u.Scheme != "file" {
		return "", bad("a %s connection's url must be a file: URL such as file:///sample-data", conn.Type)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", bad("host %q is not supported: file URLs name a folder on the worker, write file:///%s%s (three slashes)", u.Host, u.Host, u.Path)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", bad("a file URL cannot have a query or fragment; percent-encode '?' as %%3F and '#' as %%23 in folder names")
	}
	p := u.Path
	if u.Opaque != "" {
		p = u.Opaque
	}
	p = strings.Trim(p, "/")
	if p == "" || p == "." {
		return "", nil
	}
	clean, err := model.CleanRelPath(p)
	if err != nil {
		return "", bad("%v", err)
	}
	return clean, nil
}

// openRoot opens the connection's folder as an os.Root. The caller closes it.
func (s *Source) openRoot() (*os.Root, error) {
	base, err := os.OpenRoot(s.base)
	if err != nil {
		return nil, s.dirError(s.base, err)
	}
	if s.sub == "" {
		return base, nil
	}
	defer base.Close()
	r, err := base.OpenRoot(s.sub)
	if err != nil {
		return nil, s.dirError(s.dir, err)
	}
	return r, nil
}

// dirError explains why the connection's folder dir cannot be opened.
func (s *Source) dirError(dir string, err error) error {
	field := "sources.fileRoot"
	if s.conn.Type == model.ConnPVC {
		field = "sources.pvcRoot"
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if s.conn.Type == model.ConnPVC && dir != s.base {
			return connectors.BadInput("connection %q: directory %s does not exist: check that the claim %q is mounted under %s (%s) and that the url, if set, names an existing folder", s.conn.Name, dir, s.conn.Name, s.base, field)
		}
		return connectors.BadInput("connection %q: directory %s does not exist: check the connection's url and the worker's %s (%s)", s.conn.Name, dir, field, s.base)
	case notDir(err):
		return connectors.BadInput("connection %q: %s is a file, not a directory: point the connection's url at a folder", s.conn.Name, dir)
	case escapes(err):
		return connectors.BadInput("connection %q: directory %s leads outside %s (%s) through a symlink: the connector does not follow links out of its root", s.conn.Name, dir, s.base, field)
	case errors.Is(err, fs.ErrPermission):
		return connectors.BadInput("connection %q: the worker may not read directory %s: grant it read access", s.conn.Name, dir)
	}
	return fmt.Errorf("connection %q: open directory %s: %w", s.conn.Name, dir, err)
}

// escapes reports whether err is os.Root refusing a path that leaves the
// root (through ".." or a symlink). The os package does not export that
// error value, so its text is compared.
func escapes(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// notDir reports whether err says a path is not a directory. os.OpenRoot
// reports that with an unexported error value rather than ENOTDIR, so its
// text is compared too.
func notDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR) || (err != nil && strings.HasSuffix(err.Error(), "not a directory"))
}

// where describes the connection's folder in messages.
func (s *Source) where() string { return fmt.Sprintf("%s (%s)", s.url, s.dir) }

// Describe says where the connection reads, e.g.
// `file:///sample-data (file connection "sample")`.
func (s *Source) Describe() string {
	return fmt.Sprintf("%s (%s connection %q)", s.url, s.conn.Type, s.conn.Name)
}

// Instrument names the connector and the Airlock release it belongs to.
func (s *Source) Instrument() connectors.Instrument {
	return connectors.Instrument{Name: InstrumentName, Version: version.Version}
}

// List returns the files obj names: the single file of a file object, or
// every regular file below a prefix object's folder, sorted by Path. Paths
// are relative to the connection's folder.
func (s *Source) List(ctx context.Context, obj model.Object) ([]connectors.Item, error) {
	return connectors.ListFileObject(ctx, obj, fmt.Sprintf("connection %q", s.conn.Name), "file",
		func(_ context.Context, p string) ([]connectors.Item, error) { return s.listFile(p) }, s.listPrefix)
}

func (s *Source) listFile(p string) ([]connectors.Item, error) {
	rel, err := model.CleanRelPath(p)
	if err != nil {
		return nil, connectors.BadInput("connection %q: file.path: %v", s.conn.Name, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fi, err := root.Stat(rel)
	if err != nil {
		return nil, s.pathError("file", rel, err)
	}
	switch {
	case fi.IsDir():
		return nil, connectors.BadInput("connection %q: %s is a folder under %s: describe this object as a prefix to bring in the files inside it", s.conn.Name, rel, s.where())
	case !fi.Mode().IsRegular():
		return nil, connectors.BadInput("connection %q: %s under %s is not a regular file (%s): only regular files can be brought in", s.conn.Name, rel, s.where(), fi.Mode().Type())
	}
	return []connectors.Item{item(rel, fi)}, nil
}

// pathError explains why the file or prefix rel cannot be read.
func (s *Source) pathError(kind, rel string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return connectors.BadInput("connection %q: %s %s not found under %s: check the object's path", s.conn.Name, kind, rel, s.where())
	case escapes(err):
		return connectors.BadInput("connection %q: %s %s under %s is or goes through a symlink that leads outside the connection's folder: the connector does not follow links out of its root; copy the data inside it instead", s.conn.Name, kind, rel, s.where())
	case errors.Is(err, syscall.ELOOP):
		return connectors.BadInput("connection %q: %s %s under %s goes through a symlink loop: fix the link", s.conn.Name, kind, rel, s.where())
	case errors.Is(err, fs.ErrPermission):
		return connectors.BadInput("connection %q: the worker may not read %s %s under %s: grant it read access", s.conn.Name, kind, rel, s.where())
	}
	return fmt.Errorf("connection %q: %s %s under %s: %w", s.conn.Name, kind, rel, s.where(), err)
}

func (s *Source) listPrefix(ctx context.Context, p string) ([]connectors.Item, error) {
	rel := "."
	if t := strings.TrimSuffix(p, "/"); t != "" {
		c, err := model.CleanRelPath(t)
		if err != nil {
			return nil, connectors.BadInput("connection %q: prefix.path: %v", s.conn.Name, err)
		}
		rel = c
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fi, err := root.Stat(rel)
	if err != nil {
		return nil, s.pathError("prefix", rel, err)
	}
	if !fi.IsDir() {
		return nil, connectors.BadInput("connection %q: prefix %s under %s is a file, not a folder: describe this object as a file", s.conn.Name, rel, s.where())
	}
	w := walker{s: s, root: root}
	if err := w.walk(ctx, rel, []fs.FileInfo{fi}); err != nil {
		return nil, err
	}
	if len(w.items) == 0 {
		name := rel
		if rel == "." {
			name = "/"
		}
		return nil, connectors.BadInput("connection %q: prefix %s under %s is empty: it holds no files; check the object's path or put the data there", s.conn.Name, name, s.where())
	}
	sort.Slice(w.items, func(i, j int) bool { return w.items[i].Path < w.items[j].Path })
	return w.items, nil
}

// walker collects the regular files below a folder, following symlinks that
// stay inside the root and refusing those that do not.
type walker struct {
	s     *Source
	root  *os.Root
	items []connectors.Item
}

// walk adds the files below dir. ancestors are the folders from the prefix
// down to dir, to detect a symlink that loops back up.
func (w *walker) walk(ctx context.Context, dir string, ancestors []fs.FileInfo) error {
	f, err := w.root.Open(dir)
	if err != nil {
		return w.s.pathError("folder", dir, err)
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return w.s.pathError("folder", dir, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := path.Join(dir, e.Name())
		if _, err := model.CleanRelPath(rel); err != nil {
			return connectors.BadInput("connection %q: %s under %s: %v", w.s.conn.Name, rel, w.s.where(), err)
		}
		switch t := e.Type(); {
		case t.IsRegular():
			fi, err := e.Info()
			if err != nil {
				return w.s.pathError("file", rel, err)
			}
			w.items = append(w.items, item(rel, fi))
		case t.IsDir():
			fi, err := e.Info()
			if err != nil {
				return w.s.pathError("folder", rel, err)
			}
			if err := w.walk(ctx, rel, append(ancestors, fi)); err != nil {
				return err
			}
		case t&fs.ModeSymlink != 0:
			fi, err := w.root.Stat(rel)
			switch {
			case escapes(err):
				return connectors.BadInput("connection %q: symlink %s under %s leads outside the connection's folder: the connector does not follow links out of its root; remove the link or copy the data inside the folder", w.s.conn.Name, rel, w.s.where())
			case errors.Is(err, fs.ErrNotExist):
				return connectors.BadInput("connection %q: symlink %s under %s points to a file that does not exist: fix or remove the link", w.s.conn.Name, rel, w.s.where())
			case err != nil:
				return w.s.pathError("symlink", rel, err)
			case fi.Mode().IsRegular():
				w.items = append(w.items, item(rel, fi))
			case fi.IsDir():
				for _, a := range ancestors {
					if os.SameFile(a, fi) {
						return connectors.BadInput("connection %q: symlink %s under %s loops back to a folder that contains it: remove the link", w.s.conn.Name, rel, w.s.where())
					}
				}
				if err := w.walk(ctx, rel, append(ancestors, fi)); err != nil {
					return err
				}
			}
		}
		// Sockets, devices and pipes hold no data to copy: skip them.
	}
	return nil
}

func item(rel string, fi fs.FileInfo) connectors.Item {
	return connectors.Item{
		Path:           rel,
		Ref:            rel,
		Size:           fi.Size(),
		ModTime:        fi.ModTime(),
		EncodingFormat: MediaType(rel),
	}
}

// Open streams item's bytes from offset on. item.Ref is the path below the
// connection's folder, as List returned it. The file is read as it is
// consumed, never loaded whole.
func (s *Source) Open(ctx context.Context, it connectors.Item, offset int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rel, err := model.CleanRelPath(it.Ref)
	if err != nil {
		return nil, connectors.BadInput("connection %q: item ref: %v", s.conn.Name, err)
	}
	if offset < 0 {
		return nil, connectors.BadInput("connection %q: file %s: negative offset %d: resume from 0 or a checkpoint's offset", s.conn.Name, rel, offset)
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close() // files opened through a root outlive it
	f, err := root.Open(rel)
	if err != nil {
		return nil, s.pathError("file", rel, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("connection %q: file %s under %s: %w", s.conn.Name, rel, s.where(), err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, connectors.BadInput("connection %q: %s under %s is not a regular file: only regular files can be read", s.conn.Name, rel, s.where())
	}
	if offset > fi.Size() {
		f.Close()
		return nil, connectors.BadInput("connection %q: file %s under %s holds %d bytes, fewer than the resume offset %d: the file changed since the copy began; start the copy again", s.conn.Name, rel, s.where(), fi.Size(), offset)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("connection %q: file %s under %s: seek to %d: %w", s.conn.Name, rel, s.where(), offset, err)
		}
	}
	return &ctxReader{ctx: ctx, f: f}, nil
}

// ctxReader stops reading once its context is done, so a cancelled copy
// does not run to the end of a large file.
type ctxReader struct {
	ctx context.Context
	f   *os.File
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.f.Read(p)
}

func (r *ctxReader) Close() error { return r.f.Close() }
