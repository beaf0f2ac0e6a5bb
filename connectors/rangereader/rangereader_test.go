package rangereader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// object is a fake remote object whose fetches the tests can watch and steer.
type object struct {
	data []byte
	// before runs at the start of every fetch; an error fails it.
	before func(ctx context.Context, off, n int64, attempt int) error
	// short makes the body of a fetch shorter than asked.
	short func(off int64, attempt int) bool

	mu       sync.Mutex
	attempts map[int64]int
	active   atomic.Int32
	maxAct   atomic.Int32
	calls    atomic.Int32
}

func newObject(size int) *object {
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	return &object{data: data, attempts: map[int64]int{}}
}

func (o *object) tries(off int64) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.attempts[off]
}

func (o *object) fetch(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	o.calls.Add(1)
	act := o.active.Add(1)
	defer o.active.Add(-1)
	for {
		m := o.maxAct.Load()
		if act <= m || o.maxAct.CompareAndSwap(m, act) {
			break
		}
	}
	o.mu.Lock()
	attempt := o.attempts[off]
	o.attempts[off]++
	o.mu.Unlock()
	if off < 0 || n <= 0 || off+n > int64(len(o.data)) {
		return nil, fmt.Errorf("bad range %d+%d of %d", off, n, len(o.data))
	}
	if o.before != nil {
		if err := o.before(ctx, off, n, attempt); err != nil {
			return nil, err
		}
	}
	end := off + n
	if o.short != nil && o.short(off, attempt) {
		end = off + n/2
	}
	return io.NopCloser(bytes.NewReader(o.data[off:end])), nil
}

func TestOrderAcrossSizesOffsetsAndConcurrency(t *testing.T) {
	o := newObject(1000)
	// Later parts finish before earlier ones: the reader must still hand
	// bytes on in order.
	o.before = func(ctx context.Context, off, n int64, _ int) error {
		time.Sleep(time.Duration(1000-off) * time.Microsecond)
		return nil
	}
	for _, partSize := range []int64{1, 7, 100, 333, 1000, 5000} {
		for _, conc := range []int{1, 3, 8} {
			for _, offset := range []int64{0, 1, 99, 100, 998, 999, 1000} {
				if partSize == 1 && conc != 8 {
					continue // slow and adds nothing
				}
				r := New(context.Background(), int64(len(o.data)), offset, Config{PartSize: partSize, Concurrency: conc}, o.fetch)
				// Odd read sizes cross part boundaries at every position.
				got, err := readAllIn(r, 13)
				r.Close()
				if err != nil {
					t.Fatalf("part %d conc %d offset %d: %v", partSize, conc, offset, err)
				}
				if !bytes.Equal(got, o.data[offset:]) {
					t.Fatalf("part %d conc %d offset %d: bytes differ (got %d bytes, want %d)", partSize, conc, offset, len(got), len(o.data)-int(offset))
				}
			}
		}
	}
}

func readAllIn(r io.Reader, chunk int) ([]byte, error) {
	var out []byte
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func TestEmptyRangeAndBadOffset(t *testing.T) {
	o := newObject(10)
	r := New(context.Background(), 10, 10, Config{}, o.fetch)
	if n, err := r.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Fatalf("offset at the end: %d, %v; want 0, EOF", n, err)
	}
	r.Close()
	if o.calls.Load() != 0 {
		t.Fatalf("fetched %d times for an empty range", o.calls.Load())
	}
	r = New(context.Background(), 10, 11, Config{}, o.fetch)
	if _, err := r.Read(make([]byte, 4)); err == nil || err == io.EOF {
		t.Fatalf("offset past the end: %v; want an error", err)
	}
	r.Close()
}

func TestBoundedMemory(t *testing.T) {
	const partSize, conc = 10, 3
	o := newObject(200)
	r := New(context.Background(), 200, 5, Config{PartSize: partSize, Concurrency: conc}, o.fetch)
	defer r.Close()
	// Nobody reads: exactly conc parts are fetched, then the reader waits.
	// (Wait for them to start: on a busy machine that can take a while.)
	for deadline := time.Now().Add(5 * time.Second); o.calls.Load() < conc && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if c := o.calls.Load(); c != conc {
		t.Fatalf("with nothing read, %d parts were fetched; want %d (the concurrency)", c, conc)
	}
	// Reading one byte does not free a part; finishing the first does.
	buf := make([]byte, 1)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if c := o.calls.Load(); c != conc {
		t.Fatalf("after reading 1 byte, %d parts were fetched; want %d", c, conc)
	}
	if _, err := io.ReadFull(r, make([]byte, partSize-1)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for o.calls.Load() != conc+1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if c := o.calls.Load(); c != conc+1 {
		t.Fatalf("after the first part was read, %d parts were fetched; want %d", c, conc+1)
	}
}

func TestFetchStartsOnlyWhenPartsAreConsumed(t *testing.T) {
	const partSize, conc, offset = 7, 4, 3
	o := newObject(500)
	var consumed atomic.Int64
	var violation atomic.Value
	o.before = func(_ context.Context, off, _ int64, attempt int) error {
		// Part i may start only once part i-conc was read in full.
		if need := off - offset - (conc-1)*partSize; attempt == 0 && consumed.Load() < need {
			violation.Store(fmt.Sprintf("fetch at %d started with %d bytes consumed; want >= %d", off, consumed.Load(), need))
		}
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		return nil
	}
	r := New(context.Background(), 500, offset, Config{PartSize: partSize, Concurrency: conc}, o.fetch)
	defer r.Close()
	var got []byte
	buf := make([]byte, 5)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		consumed.Add(int64(n))
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if v := violation.Load(); v != nil {
		t.Fatal(v)
	}
	if m := o.maxAct.Load(); m > conc {
		t.Fatalf("%d fetches ran at once; the concurrency is %d", m, conc)
	}
	if !bytes.Equal(got, o.data[offset:]) {
		t.Fatal("bytes differ")
	}
}

func TestErrorAfterTheBytesBeforeIt(t *testing.T) {
	boom := errors.New("access denied")
	o := newObject(100)
	o.before = func(_ context.Context, off, _ int64, _ int) error {
		if off == 40 {
			return boom
		}
		return nil
	}
	r := New(context.Background(), 100, 0, Config{PartSize: 10, Concurrency: 3, Retryable: func(err error) bool { return !errors.Is(err, boom) }}, o.fetch)
	defer r.Close()
	got, err := readAllIn(r, 3)
	if !errors.Is(err, boom) {
		t.Fatalf("error %v; want one wrapping %v", err, boom)
	}
	if !bytes.Equal(got, o.data[:40]) {
		t.Fatalf("got %d bytes before the error; want the 40 before the failed part", len(got))
	}
	if _, err2 := r.Read(make([]byte, 1)); !errors.Is(err2, boom) {
		t.Fatalf("the error is not sticky: %v", err2)
	}
	if a := o.tries(40); a != 1 {
		t.Fatalf("a non-retryable error was tried %d times", a)
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	o := newObject(100)
	o.before = func(_ context.Context, off, _ int64, attempt int) error {
		if off == 20 && attempt < 2 {
			return errors.New("connection reset")
		}
		return nil
	}
	o.short = func(off int64, attempt int) bool { return off == 50 && attempt == 0 }
	r := New(context.Background(), 100, 0, Config{PartSize: 10, Concurrency: 2}, o.fetch)
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, o.data) {
		t.Fatal("bytes differ after retries")
	}
	if o.tries(20) != 3 || o.tries(50) != 2 {
		t.Fatalf("attempts: part at 20: %d (want 3), part at 50: %d (want 2)", o.tries(20), o.tries(50))
	}

	// Past the retries, the error surfaces.
	o2 := newObject(100)
	o2.short = func(off int64, _ int) bool { return off == 30 }
	r2 := New(context.Background(), 100, 0, Config{PartSize: 10, Concurrency: 2, Retries: 1}, o2.fetch)
	defer r2.Close()
	if _, err := io.ReadAll(r2); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a body that always ends short: %v; want io.ErrUnexpectedEOF", err)
	}
	if o2.tries(30) != 2 {
		t.Fatalf("with Retries 1, the part was tried %d times; want 2", o2.tries(30))
	}
}

func TestCancellation(t *testing.T) {
	o := newObject(1000)
	started := make(chan struct{}, 100)
	o.before = func(ctx context.Context, off, _ int64, _ int) error {
		if off == 0 {
			return nil
		}
		started <- struct{}{}
		<-ctx.Done() // a fetch that hangs until cancelled
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := New(ctx, 1000, 0, Config{PartSize: 100, Concurrency: 4}, o.fetch)
	if _, err := io.ReadFull(r, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	<-started
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read after cancel: %v; want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a Read blocked on a hanging fetch did not return on cancel")
	}
	r.Close()
	if a := o.active.Load(); a != 0 {
		t.Fatalf("%d fetches still run after Close", a)
	}
}

func TestCloseStopsFetches(t *testing.T) {
	o := newObject(1000)
	o.before = func(ctx context.Context, _, _ int64, _ int) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return nil
		}
	}
	r := New(context.Background(), 1000, 0, Config{PartSize: 100, Concurrency: 4}, o.fetch)
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	r.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %s", d)
	}
	if a := o.active.Load(); a != 0 {
		t.Fatalf("%d fetches still run after Close", a)
	}
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}
