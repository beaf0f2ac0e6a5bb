// Package rangereader reads a large remote object as one stream by fetching
// byte ranges of it in parallel and handing them on in order. Object stores
// (S3, Azure Blob) serve one connection at a modest rate, so a few ranged
// requests in flight copy a big object several times faster than a single
// GET, while memory stays bounded: at most Concurrency parts of PartSize
// bytes exist at any time, buffered or being fetched, whatever the object's
// size.
package rangereader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Defaults for a Config's zero fields.
const (
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 4
	DefaultRetries     = 2
)

// retryDelay is the pause before a part's first retry; it doubles after each.
const retryDelay = 100 * time.Millisecond

// Fetch returns the n bytes of the object that start at off. The reader it
// returns must yield exactly n bytes; fewer is an error (io.ErrUnexpectedEOF).
type Fetch func(ctx context.Context, off, n int64) (io.ReadCloser, error)

// Config tunes a Reader.
type Config struct {
	// PartSize is the length of each ranged fetch (DefaultPartSize when 0).
	PartSize int64
	// Concurrency is how many parts may be fetched or wait to be read at
	// once (DefaultConcurrency when 0). Memory is PartSize × Concurrency.
	Concurrency int
	// Retries is how many more times a part is fetched after a failure
	// that Retryable accepts (DefaultRetries when 0; negative for none).
	Retries int
	// Retryable says whether a part's fetch or read error is worth another
	// try. Nil means every error but the context's own.
	Retryable func(error) bool
}

func (c Config) withDefaults() Config {
	if c.PartSize <= 0 {
		c.PartSize = DefaultPartSize
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	return c
}

// part is one range of the object and, once fetched, its bytes.
type part struct {
	off, n int64
	done   chan struct{} // closed when buf or err is set
	buf    []byte
	err    error
}

// Reader streams the bytes of an object from an offset to its end. Reads
// must not run concurrently with each other; Close may be called from
// another goroutine, and stops every fetch still running.
type Reader struct {
	ctx    context.Context
	cancel context.CancelFunc
	cfg    Config
	fetch  Fetch

	// free holds the part buffers not in use: Concurrency tokens, each a
	// buffer (nil until first needed). Taking one is what allows a fetch to
	// start, and the reader gives it back only once the part is consumed.
	free  chan []byte
	parts chan *part // in object order, filled by dispatch
	wg    sync.WaitGroup

	cur  *part
	pos  int   // read position in cur.buf
	err  error // sticky: once set, every Read returns it
	once sync.Once
}

// New returns a Reader of the bytes [offset, size) of an object, fetched in
// parts of cfg.PartSize with up to cfg.Concurrency parts in flight or
// buffered. Fetching starts at once; errors surface from Read, in order:
// bytes before a failed part are all delivered first. Cancelling ctx fails
// the reader.
func New(ctx context.Context, size, offset int64, cfg Config, fetch Fetch) *Reader {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	r := &Reader{
		ctx:    ctx,
		cancel: cancel,
		cfg:    cfg,
		fetch:  fetch,
		free:   make(chan []byte, cfg.Concurrency),
		parts:  make(chan *part, cfg.Concurrency),
	}
	for i := 0; i < cfg.Concurrency; i++ {
		r.free <- nil
	}
	if offset < 0 || offset > size {
		r.err = fmt.Errorf("range reader: offset %d is outside the object's %d bytes", offset, size)
		close(r.parts)
		return r
	}
	r.wg.Add(1)
	go r.dispatch(size, offset)
	return r
}

// dispatch starts the fetch of each part in order, as buffers come free.
func (r *Reader) dispatch(size, offset int64) {
	defer r.wg.Done()
	defer close(r.parts)
	for off := offset; off < size; off += r.cfg.PartSize {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.ctx.Done():
			return
		}
		n := min(r.cfg.PartSize, size-off)
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		p := &part{off: off, n: n, done: make(chan struct{}), buf: buf[:n]}
		// parts has room for Concurrency parts and at most that many buffers
		// exist, so this send never waits.
		r.parts <- p
		r.wg.Add(1)
		go r.fetchPart(p)
	}
}

// fetchPart fills p.buf, trying again on retryable errors.
func (r *Reader) fetchPart(p *part) {
	defer r.wg.Done()
	defer close(p.done)
	for attempt := 0; ; attempt++ {
		err := r.fetchOnce(p)
		if err == nil {
			return
		}
		if ctxErr := r.ctx.Err(); ctxErr != nil {
			p.err = ctxErr
			return
		}
		if attempt >= r.cfg.Retries || (r.cfg.Retryable != nil && !r.cfg.Retryable(err)) {
			p.err = fmt.Errorf("bytes %d-%d: %w", p.off, p.off+p.n-1, err)
			return
		}
		select {
		case <-time.After(retryDelay << attempt):
		case <-r.ctx.Done():
			p.err = r.ctx.Err()
			return
		}
	}
}

func (r *Reader) fetchOnce(p *part) error {
	body, err := r.fetch(r.ctx, p.off, p.n)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err := io.ReadFull(body, p.buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// Read copies the next bytes of the object into b, in order.
func (r *Reader) Read(b []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	if r.cur == nil {
		var p *part
		var ok bool
		select {
		case p, ok = <-r.parts:
		case <-r.ctx.Done():
			r.err = r.ctx.Err()
			return 0, r.err
		}
		if !ok {
			if err := r.ctx.Err(); err != nil {
				r.err = err
			} else {
				r.err = io.EOF
			}
			return 0, r.err
		}
		select {
		case <-p.done:
		case <-r.ctx.Done():
			r.err = r.ctx.Err()
			return 0, r.err
		}
		if p.err != nil {
			r.err = p.err
			return 0, r.err
		}
		r.cur, r.pos = p, 0
	}
	n := copy(b, r.cur.buf[r.pos:])
	r.pos += n
	if r.pos == len(r.cur.buf) {
		// The part is consumed: its buffer may hold the next fetch.
		r.free <- r.cur.buf[:0]
		r.cur = nil
	}
	return n, nil
}

// Close stops the fetches still running and waits for them to end. A Read
// after Close fails with context.Canceled.
func (r *Reader) Close() error {
	r.once.Do(func() {
		r.cancel()
		r.wg.Wait()
	})
	return nil
}
