// Package connectors defines how Airlock reads data from where it lives
// (sources) and where it keeps it (stores), and holds the registry that turns
// a data source's connection into a Source. Each kind of source and store is a
// sub-package: file (a mounted directory or PVC), localstore (a local folder
// as staging or workspace); S3, Azure Blob, Databricks and dlt follow the
// same interfaces.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// Factory builds a Source for one connection of a data source.
type Factory func(conn model.Connection) (Source, error)

// Registry maps connection types to the factories this worker can serve.
type Registry map[string]Factory

// Source builds the source for conn, or says why this worker cannot.
func (r Registry) Source(conn model.Connection) (Source, error) {
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
	return f(conn)
}
