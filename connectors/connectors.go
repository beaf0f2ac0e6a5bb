// Package connectors defines how Airlock reads data from where it lives
// (sources) and where it keeps it (stores), and holds the registry that turns
// a data source's connection into a Source. Each kind of source and store is a
// sub-package: file (a mounted directory or PVC), localstore (a local folder
// as staging or workspace), s3 and azureblob (sources and stores), databricks
// (tables through SQL warehouses, files in Unity Catalog volumes) and dlt (a
// dlt pipeline run as a subprocess).
package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/airlockhq/airlock/model"
)

// Item is one file that an object yields.
type Item struct {
	// Path is where the file sits in the request's crate: relative,
	// slash-separated and clean (model.CleanRelPath holds).
	Path string
	// Ref is the connector's own reference to the file (for a directory, the
	// path below the connection's root).
	Ref string
	// Size in bytes, or -1 when the source cannot tell before reading.
	Size int64
	// ModTime is the source's modification time, when known.
	ModTime time.Time
	// EncodingFormat is the file's media type (text/csv, application/vnd.apache.parquet, ...).
	EncodingFormat string
}

// Instrument names the software that extracted the data, for the crate's CreateAction.
type Instrument struct {
	Name    string
	Version string
}

// Source reads files from one connection of a data source.
type Source interface {
	// List returns the files obj names, sorted by Path.
	List(ctx context.Context, obj model.Object) ([]Item, error)
	// Open streams item's bytes starting at offset, so that an interrupted
	// copy resumes where it stopped.
	Open(ctx context.Context, item Item, offset int64) (io.ReadCloser, error)
	// Instrument names the connector.
	Instrument() Instrument
	// Describe is a human-readable location of the connection, without secrets.
	Describe() string
}

// Checkpoint is how far a write has durably got, and what the store needs to
// continue it (for a local store nothing; for S3 the multipart upload).
type Checkpoint struct {
	Offset int64  `json:"offset"`
	Token  string `json:"token,omitempty"`
}

// NotResumable is returned by Source.Open for an item that can only be read
// from its start (offset must be 0); the copy then starts the file again.
var ErrNotResumable = errors.New("this source cannot resume a file part-way; it is read again from the start")

// Producer is a Source whose objects are made by running something (a SQL
// statement, a dlt pipeline) rather than read from files that already exist.
// For an object it produces, ExtractObject calls Produce instead of Open:
// the producer writes its files into dir, a local work folder of the
// request, and Airlock then streams them into staging, fingerprinting them
// on the way. Produces reports whether an object is one it makes.
type Producer interface {
	Source
	Produces(obj model.Object) bool
	// Produce writes obj's files into dir and describes them. It reports
	// progress (a line for people) through progress, which heartbeats.
	Produce(ctx context.Context, obj model.Object, dir string, progress func(string)) (Produced, error)
}

// Produced is what a producer made: its files (paths relative to the work
// folder, as they will sit in the crate) and the tables they hold.
type Produced struct {
	Files  []ProducedFile `json:"files"`
	Tables []Table        `json:"tables,omitempty"`
	// Properties are facts about the run for the crate's CreateAction
	// (a statement id, a dlt load id), never secrets.
	Properties map[string]string `json:"properties,omitempty"`
}

// ProducedFile is one file a producer wrote.
type ProducedFile struct {
	Path           string `json:"path"`
	EncodingFormat string `json:"encoding_format,omitempty"`
	// Table names the entry of Produced.Tables the file holds rows of, if any.
	Table string `json:"table,omitempty"`
}

// Table describes a table a producer wrote: its name, row count and columns.
type Table struct {
	Name    string   `json:"name"`
	Rows    int64    `json:"rows"`
	Columns []Column `json:"columns,omitempty"`
}

// Column is a table column and its type as the source names it.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Writer receives a file's bytes. Nothing is visible under the final key until
// Commit; Abort throws the partial data away.
type Writer interface {
	io.Writer
	// Offset is the number of bytes the file holds so far, including those
	// before a resumed checkpoint.
	Offset() int64
	// Checkpoint makes the bytes written so far resumable and says how to
	// resume them.
	Checkpoint() (Checkpoint, error)
	// Commit publishes the file under its final key, atomically.
	Commit() error
	// Abort removes the partial file. Calling it after Commit does nothing.
	Abort() error
}

// PartWriter is a Writer that makes data durable in whole parts (an S3
// multipart upload, Azure blocks). A copy checkpoints only when Offset is a
// multiple of PartSize, so that Checkpoint can make every byte written so far
// durable and the checkpoint's offset matches the bytes hashed.
type PartWriter interface {
	Writer
	PartSize() int64
}

// ObjectInfo describes a stored file.
type ObjectInfo struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Store keeps files under slash-separated keys: the staging area (quarantine)
// and the workspaces are stores.
type Store interface {
	// Create starts writing key. With a checkpoint from an earlier attempt it
	// resumes from there when the partial data is still intact; the returned
	// Writer's Offset says where writing continues (0 when it could not resume).
	Create(ctx context.Context, key string, from *Checkpoint) (Writer, error)
	// Open reads a committed file.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes a committed file; a missing file gives ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns the committed files under prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// DeletePrefix removes every file under prefix, partial files included.
	DeletePrefix(ctx context.Context, prefix string) error
	// URL is a human-readable location of key, for status and the crate.
	URL(key string) string
}

// ErrNotFound is returned by Store.Stat and Store.Open for a missing key.
var ErrNotFound = errors.New("not found")

// BadInputError marks a problem that retrying cannot fix: a path that escapes
// its root, a file that does not exist, a connection the worker cannot serve.
// Activities turn it into a non-retryable Temporal error.
type BadInputError struct{ Err error }

func (e *BadInputError) Error() string { return e.Err.Error() }
func (e *BadInputError) Unwrap() error { return e.Err }

// BadInput wraps a formatted message as a BadInputError.
func BadInput(format string, args ...any) error {
	return &BadInputError{Err: fmt.Errorf(format, args...)}
}

// IsBadInput reports whether err (or anything it wraps) is a BadInputError.
func IsBadInput(err error) bool {
	var b *BadInputError
	return errors.As(err, &b)
}

// Factory builds a Source for one connection of a data source. It runs inside
// an activity: that is where secret references are resolved.
type Factory func(ctx context.Context, conn model.Connection) (Source, error)

// Registry maps connection types to the factories this worker can serve.
type Registry map[string]Factory

// Source builds the source for conn, or says why this worker cannot.
func (r Registry) Source(ctx context.Context, conn model.Connection) (Source, error) {
	f, ok := r[conn.Type]
	if !ok {
		var served []string
		for _, t := range model.ConnectionTypes {
			if _, ok := r[t]; ok {
				served = append(served, t)
			}
		}
		return nil, BadInput("connection %q: this worker cannot read %s connections (it serves: %v); run a worker configured for %s", conn.Name, conn.Type, served, conn.Type)
	}
	return f(ctx, conn)
}

// Merge returns a registry serving every type that any of rs serves; a later
// registry wins for a type two serve.
func Merge(rs ...Registry) Registry {
	out := Registry{}
	for _, r := range rs {
		for t, f := range r {
			out[t] = f
		}
	}
	return out
}

// StoreFactory builds a store (staging or workspaces) from the worker's
// config, given as a connection: type local, s3 or azureblob.
type StoreFactory func(ctx context.Context, conn model.Connection) (Store, error)

// StoreKey checks a store key and returns it clean; where names the store in
// the refusal ("store s3://bucket/staging").
func StoreKey(where, key string) (string, error) {
	k, err := model.CleanRelPath(key)
	if err != nil {
		return "", BadInput("%s: key %q: %v", where, key, err)
	}
	return k, nil
}

// StorePrefix checks a List or DeletePrefix prefix and returns it clean,
// without a trailing "/" ("" stays "", meaning the whole store).
func StorePrefix(where, prefix string) (string, error) {
	p := strings.TrimSuffix(prefix, "/")
	if p == "" {
		return "", nil
	}
	c, err := model.CleanRelPath(p)
	if err != nil {
		return "", BadInput("%s: prefix %q: %v", where, prefix, err)
	}
	return c, nil
}

// ListFileObject is List for sources that hold files: it refuses table and
// empty objects in the words of the connection (who, of type kind) and hands
// a file or prefix object's path to the matching lister.
func ListFileObject(ctx context.Context, obj model.Object, who, kind string,
	listFile, listPrefix func(ctx context.Context, path string) ([]Item, error)) ([]Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case obj.Table != nil:
		return nil, BadInput("%s: object table %q: %s connections hold files; describe this object as file or prefix", who, obj.Table.Name, kind)
	case obj.File != nil:
		return listFile(ctx, obj.File.Path)
	case obj.Prefix != nil:
		return listPrefix(ctx, obj.Prefix.Path)
	}
	return nil, BadInput("%s: empty object: give exactly one of file or prefix", who)
}
