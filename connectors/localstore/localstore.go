// Package localstore is a connectors.Store over a local folder (or a mounted
// volume): Airlock's staging area and a workspace store can both be one.
//
// Every operation goes through an [os.Root] opened on the folder, and every
// key is checked with model.CleanRelPath, so neither ".." nor a symlink can
// make the store read or write outside its folder.
//
// A file being written lives at <root>/.airlock-partial/<key>.part and is
// renamed onto <root>/<key> only on Commit, so readers never see a half
// written file under its final name, and a copy interrupted after a
// Checkpoint resumes from the bytes already on disk.
package localstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/airlockhq/airlock/connectors"
)

// PartialDir is the folder under the store's root that holds files still
// being written. Keys may not start with it.
const PartialDir = ".airlock-partial"

// partialSuffix ends the name of every partial file.
const partialSuffix = ".part"

// bufferSize is how much a Writer buffers before writing to the partial file.
const bufferSize = 1 << 20

// Store keeps files under a local folder.
type Store struct {
	dir  string
	root *os.Root
	// dirMu orders creating partial folders against removing empty ones, so
	// that one writer's Commit does not remove the folder another writer of
	// this Store is about to create its partial file in.
	dirMu sync.Mutex
}

var _ connectors.Store = (*Store)(nil)

// New opens the store at root, creating the folder (mode 0750) if needed.
func New(root string) (*Store, error) {
	if root == "" {
		return nil, connectors.BadInput("local store: no folder given: configure the path of the staging or workspace folder")
	}
	dir, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("local store %s: %w", root, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("local store: create folder %s: %w (check that the path is right and the worker may write there)", dir, err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("local store: open folder %s: %w", dir, err)
	}
	return &Store{dir: dir, root: r}, nil
}

// Root returns the absolute path of the store's folder.
func (s *Store) Root() string { return s.dir }

// Close releases the store's handle on its folder. Writers and readers
// already open keep working; new operations fail.
func (s *Store) Close() error { return s.root.Close() }

// URL returns "file://" followed by the absolute path of key.
func (s *Store) URL(key string) string {
	p := s.dir
	if c := path.Clean("/" + key); c != "/" {
		p = filepath.Join(s.dir, filepath.FromSlash(c))
	}
	return "file://" + filepath.ToSlash(p)
}

// checkKey validates key and returns it cleaned.
func (s *Store) checkKey(key string) (string, error) {
	k, err := connectors.StoreKey("local store "+s.dir, key)
	if err != nil {
		return "", err
	}
	if reserved(k) {
		return "", connectors.BadInput("local store %s: key %q: the folder %s is reserved for files being written; choose another key", s.dir, key, PartialDir)
	}
	return k, nil
}

// checkPrefix validates a List or DeletePrefix prefix ("" stays "").
func (s *Store) checkPrefix(prefix string) (string, error) {
	c, err := connectors.StorePrefix("local store "+s.dir, prefix)
	if err != nil || c == "" {
		return c, err
	}
	if reserved(c) {
		return "", connectors.BadInput("local store %s: prefix %q: the folder %s is reserved for files being written; choose another prefix", s.dir, prefix, PartialDir)
	}
	return c, nil
}

func reserved(p string) bool { return p == PartialDir || strings.HasPrefix(p, PartialDir+"/") }

func partialName(key string) string { return PartialDir + "/" + key + partialSuffix }

// escapes reports whether err is os.Root refusing a path that leaves the
// root. The os package does not export that error value, so its text is
// compared.
func escapes(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// notFound reports whether err means the path does not exist (a missing
// file, or a folder on the way that is a file).
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// pathError turns an os.Root error about key into one that says what to do.
func (s *Store) pathError(op, key string, err error) error {
	switch {
	case escapes(err):
		return connectors.BadInput("local store %s: %s %q: the key goes through a symlink that leads outside the store's folder; remove the link or choose another key", s.dir, op, key)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("local store %s: %s %q: %w (check that the worker may write to the store's folder)", s.dir, op, key, err)
	}
	return fmt.Errorf("local store %s: %s %q: %w", s.dir, op, key, err)
}

// checkParents makes sure the folders on the way to key are folders inside
// the store (or do not exist yet, to be made on Commit), and that key itself
// is not a folder, so that Create fails rather than Commit.
func (s *Store) checkParents(key string) error {
	parts := strings.Split(key, "/")
	for i := 1; i <= len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		fi, err := s.root.Stat(p)
		switch {
		case notFound(err):
			return nil
		case err != nil:
			return s.pathError("create", key, err)
		case i < len(parts) && !fi.IsDir():
			return connectors.BadInput("local store %s: key %q: %s is a file, so it cannot hold other files; choose another key", s.dir, key, p)
		case i == len(parts) && fi.IsDir():
			return connectors.BadInput("local store %s: key %q is a folder holding other files; choose another key", s.dir, key)
		}
	}
	return nil
}

// Create starts writing key. With from, it resumes the partial file of an
// earlier attempt when that still holds at least from.Offset bytes: the
// partial is cut back to from.Offset and writing continues there. Otherwise
// (or without from) it starts a fresh partial file and Offset is 0.
func (s *Store) Create(ctx context.Context, key string, from *connectors.Checkpoint) (connectors.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, err := s.checkKey(key)
	if err != nil {
		return nil, err
	}
	if err := s.checkParents(k); err != nil {
		return nil, err
	}
	part := partialName(k)
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	var f *os.File
	var offset int64
	// Another process sharing the folder may remove an empty partial folder
	// between MkdirAll and OpenFile: try again a few times.
	for attempt := 0; ; attempt++ {
		if err := s.root.MkdirAll(path.Dir(part), 0o750); err != nil {
			return nil, s.pathError("create", k, err)
		}
		f, offset, err = s.openPartial(part, from)
		if err == nil || !notFound(err) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return nil, s.pathError("create", k, err)
	}
	return &writer{s: s, key: k, part: part, f: f, buf: bufio.NewWriterSize(f, bufferSize), offset: offset, state: writing}, nil
}

// openPartial opens the partial file, resumed at from.Offset when it can be.
func (s *Store) openPartial(part string, from *connectors.Checkpoint) (*os.File, int64, error) {
	if from != nil && from.Offset > 0 {
		f, err := s.root.OpenFile(part, os.O_RDWR, 0)
		if err == nil {
			fi, err := f.Stat()
			if err == nil && fi.Mode().IsRegular() && fi.Size() >= from.Offset {
				if err := f.Truncate(from.Offset); err != nil {
					f.Close()
					return nil, 0, err
				}
				if _, err := f.Seek(from.Offset, io.SeekStart); err != nil {
					f.Close()
					return nil, 0, err
				}
				return f, from.Offset, nil
			}
			f.Close()
		}
		// The partial is gone or shorter than the checkpoint: start over.
	}
	f, err := s.root.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	return f, 0, err
}

// removeEmptyPartialDirs removes the folders of a partial file that are now
// empty, from the deepest up, stopping below PartialDir or at the first
// folder that still holds something.
func (s *Store) removeEmptyPartialDirs(part string) {
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	for d := path.Dir(part); d != PartialDir && d != "." && d != "/"; d = path.Dir(d) {
		if err := s.root.Remove(d); err != nil {
			return
		}
	}
}

// writer states.
const (
	writing   = iota // the partial file is open
	closed           // flushed and closed, but Commit has not renamed it yet
	committed        // renamed onto the key
	aborted          // removed
)

// writer writes one key's partial file.
type writer struct {
	s      *Store
	key    string
	part   string
	f      *os.File
	buf    *bufio.Writer
	offset int64
	state  int
}

// notWriting explains why op cannot run once the writer left the writing state.
func (w *writer) notWriting(op string) error {
	what := map[int]string{closed: "closed by a failed commit", committed: "committed", aborted: "aborted"}[w.state]
	return fmt.Errorf("local store %s: %s %q: the writer was already %s; create a new writer to write the file again", w.s.dir, op, w.key, what)
}

func (w *writer) Write(p []byte) (int, error) {
	if w.state != writing {
		return 0, w.notWriting("write")
	}
	n, err := w.buf.Write(p)
	w.offset += int64(n)
	if err != nil {
		return n, fmt.Errorf("local store %s: write %q: %w", w.s.dir, w.key, err)
	}
	return n, nil
}

// Offset is the number of bytes the file holds so far.
func (w *writer) Offset() int64 { return w.offset }

// Checkpoint writes the buffered bytes, syncs the partial file to disk and
// returns its length, from which a later Create can resume.
func (w *writer) Checkpoint() (connectors.Checkpoint, error) {
	if w.state != writing {
		return connectors.Checkpoint{}, w.notWriting("checkpoint")
	}
	if err := w.flushSync(); err != nil {
		return connectors.Checkpoint{}, err
	}
	return connectors.Checkpoint{Offset: w.offset}, nil
}

func (w *writer) flushSync() error {
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("local store %s: write %q: %w", w.s.dir, w.key, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("local store %s: sync %q: %w", w.s.dir, w.key, err)
	}
	return nil
}

// Commit syncs the partial file and renames it onto key, replacing any file
// already there, then syncs the key's folder so the rename survives a crash.
// A Commit that failed may be called again; after a successful one it does
// nothing.
func (w *writer) Commit() error {
	switch w.state {
	case committed:
		return nil
	case aborted:
		return w.notWriting("commit")
	case writing:
		if err := w.flushSync(); err != nil {
			return err
		}
		if err := w.f.Close(); err != nil {
			return fmt.Errorf("local store %s: close %q: %w", w.s.dir, w.key, err)
		}
		w.state = closed
	}
	r := w.s.root
	parent := path.Dir(w.key)
	if parent != "." {
		if err := r.MkdirAll(parent, 0o750); err != nil {
			return w.s.pathError("commit", w.key, err)
		}
	}
	if err := r.Rename(w.part, w.key); err != nil {
		return w.s.pathError("commit", w.key, err)
	}
	w.state = committed
	w.s.removeEmptyPartialDirs(w.part)
	if err := syncDir(r, parent); err != nil {
		return fmt.Errorf("local store %s: commit %q: sync folder %s: %w", w.s.dir, w.key, parent, err)
	}
	return nil
}

// Abort closes and removes the partial file. After Commit it does nothing.
func (w *writer) Abort() error {
	switch w.state {
	case committed, aborted:
		return nil
	case writing:
		w.f.Close() // the data is being thrown away: a close error does not matter
	}
	w.state = aborted
	if err := w.s.root.Remove(w.part); err != nil && !notFound(err) {
		return w.s.pathError("abort", w.key, err)
	}
	w.s.removeEmptyPartialDirs(w.part)
	return nil
}

// syncDir fsyncs the folder dir of r, where the file system allows it.
func syncDir(r *os.Root, dir string) error {
	d, err := r.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// Open reads the committed file key. A missing key gives an error wrapping
// connectors.ErrNotFound.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, err := s.checkKey(key)
	if err != nil {
		return nil, err
	}
	f, err := s.root.Open(k)
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("local store %s: key %q: %w", s.dir, k, connectors.ErrNotFound)
		}
		return nil, s.pathError("open", k, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, s.pathError("open", k, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("local store %s: key %q is a folder, not a file: %w", s.dir, k, connectors.ErrNotFound)
	}
	return f, nil
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
	fi, err := s.root.Stat(k)
	if err != nil {
		if notFound(err) {
			return connectors.ObjectInfo{}, fmt.Errorf("local store %s: key %q: %w", s.dir, k, connectors.ErrNotFound)
		}
		return connectors.ObjectInfo{}, s.pathError("stat", k, err)
	}
	if !fi.Mode().IsRegular() {
		return connectors.ObjectInfo{}, fmt.Errorf("local store %s: key %q is a folder, not a file: %w", s.dir, k, connectors.ErrNotFound)
	}
	return connectors.ObjectInfo{Key: k, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List returns the committed files under the folder prefix ("" for the whole
// store), sorted by key. A prefix that names a file lists that file; one that
// does not exist gives an empty list. Partial files and symlinks are not
// listed.
func (s *Store) List(ctx context.Context, prefix string) ([]connectors.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.checkPrefix(prefix)
	if err != nil {
		return nil, err
	}
	start := p
	if start == "" {
		start = "."
	}
	fi, err := s.root.Lstat(start)
	switch {
	case notFound(err):
		return []connectors.ObjectInfo{}, nil
	case err != nil:
		return nil, s.pathError("list", prefix, err)
	case fi.Mode().IsRegular():
		return []connectors.ObjectInfo{{Key: p, Size: fi.Size(), ModTime: fi.ModTime()}}, nil
	case !fi.IsDir():
		return []connectors.ObjectInfo{}, nil
	}
	out := []connectors.ObjectInfo{}
	err = s.walk(ctx, start, func(key string, fi fs.FileInfo) {
		out = append(out, connectors.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// walk calls fn for every regular file below dir, skipping PartialDir at
// the store's top and not following symlinks.
func (s *Store) walk(ctx context.Context, dir string, fn func(key string, fi fs.FileInfo)) error {
	d, err := s.root.Open(dir)
	if err != nil {
		if notFound(err) {
			return nil // removed while listing
		}
		return s.pathError("list", dir, err)
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return s.pathError("list", dir, err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if dir == "." && e.Name() == PartialDir {
			continue
		}
		key := path.Join(dir, e.Name())
		switch t := e.Type(); {
		case t.IsDir():
			if err := s.walk(ctx, key, fn); err != nil {
				return err
			}
		case t.IsRegular():
			fi, err := e.Info()
			if notFound(err) {
				continue // removed while listing
			}
			if err != nil {
				return s.pathError("list", key, err)
			}
			fn(key, fi)
		}
	}
	return nil
}

// DeletePrefix removes everything under the folder prefix (or the file it
// names), partial files included. It succeeds when nothing is there. The
// empty prefix is refused so that a mistake cannot wipe the whole store.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.checkPrefix(prefix)
	if err != nil {
		return err
	}
	if p == "" {
		return connectors.BadInput("local store %s: delete: empty prefix would delete the whole store; name the folder to delete", s.dir)
	}
	for _, name := range []string{p, PartialDir + "/" + p, partialName(p)} {
		if err := s.root.RemoveAll(name); err != nil && !notFound(err) {
			return s.pathError("delete", prefix, err)
		}
	}
	s.removeEmptyPartialDirs(PartialDir + "/" + p)
	return nil
}

// Partials returns the keys whose partial files are still on disk, sorted:
// writes that were neither committed nor aborted.
func (s *Store) Partials() ([]string, error) {
	out := []string{}
	if _, err := s.root.Lstat(PartialDir); notFound(err) {
		return out, nil
	}
	var walk func(dir string) error
	walk = func(dir string) error {
		d, err := s.root.Open(dir)
		if err != nil {
			if notFound(err) {
				return nil
			}
			return s.pathError("list partials", dir, err)
		}
		entries, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return s.pathError("list partials", dir, err)
		}
		for _, e := range entries {
			name := path.Join(dir, e.Name())
			switch {
			case e.IsDir():
				if err := walk(name); err != nil {
					return err
				}
			case e.Type().IsRegular() && strings.HasSuffix(name, partialSuffix):
				out = append(out, strings.TrimSuffix(strings.TrimPrefix(name, PartialDir+"/"), partialSuffix))
			}
		}
		return nil
	}
	if err := walk(PartialDir); err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}
