package azureblob

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/testservers"
)

// BenchmarkStoreWriteAndRead writes a file of AIRLOCK_BENCH_MIB MiB (64 by
// default) through a store with the default options (16 MiB blocks, 3 at a
// time), then reads it back through a source (parallel ranged downloads),
// checking its SHA-256 and reporting each direction's MB/s and the peak Go
// heap of each (sampled every 20 ms), which stays near (Concurrency+1) ×
// PartSize when writing and Concurrency × PartSize when reading, whatever
// the size.
func BenchmarkStoreWriteAndRead(b *testing.B) {
	if azurite == nil {
		testservers.Unavailable(b, azuriteErr)
	}
	mib := 64
	if v, err := strconv.Atoi(os.Getenv("AIRLOCK_BENCH_MIB")); err == nil && v > 0 {
		mib = v
	}
	size := int64(mib) << 20
	ctx := b.Context()
	name := "bench"
	if _, err := azurite.CreateContainer(ctx, name); err != nil {
		b.Fatal(err)
	}
	conn, p := keyConn(name, "")
	st, err := NewStore(ctx, conn, p, Options{})
	if err != nil {
		b.Fatal(err)
	}
	src, err := New(ctx, conn, p, Options{})
	if err != nil {
		b.Fatal(err)
	}
	chunk := randomBytes(1 << 20)
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	defer close(stop)
	b.SetBytes(size)
	for b.Loop() {
		runtime.GC()
		want := sha256.New()
		start := time.Now()
		w, err := st.Create(ctx, "big.bin", nil)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 256<<10) // the copy loop's buffer
		r := io.LimitReader(&repeat{chunk: chunk}, size)
		for {
			n, rerr := r.Read(buf)
			if n > 0 {
				want.Write(buf[:n])
				if _, err := w.Write(buf[:n]); err != nil {
					b.Fatal(err)
				}
			}
			if rerr == io.EOF {
				break
			}
		}
		if err := w.Commit(); err != nil {
			b.Fatal(err)
		}
		wrote := time.Since(start)
		b.ReportMetric(float64(peak.Swap(0))/(1<<20), "write-peak-heap-MiB")
		runtime.GC()

		start = time.Now()
		items, err := src.List(ctx, model.Object{File: &model.FileObject{Path: "big.bin"}})
		if err != nil {
			b.Fatal(err)
		}
		rc, err := src.Open(ctx, items[0], 0)
		if err != nil {
			b.Fatal(err)
		}
		got := sha256.New()
		n, err := io.CopyBuffer(got, rc, buf)
		rc.Close()
		if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			b.Fatalf("read back %d bytes, %v, digest match %v", n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
		}
		read := time.Since(start)
		b.ReportMetric(float64(peak.Swap(0))/(1<<20), "read-peak-heap-MiB")
		b.ReportMetric(float64(size)/wrote.Seconds()/1e6, "write-MB/s")
		b.ReportMetric(float64(size)/read.Seconds()/1e6, "read-MB/s")
		if err := st.DeletePrefix(ctx, "big.bin"); err != nil {
			b.Fatal(err)
		}
	}
}

// repeat yields chunk over and over.
type repeat struct {
	chunk []byte
	off   int
}

func (r *repeat) Read(p []byte) (int, error) {
	n := copy(p, r.chunk[r.off:])
	r.off = (r.off + n) % len(r.chunk)
	return n, nil
}
