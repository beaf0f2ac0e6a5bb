package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"
	"golang.org/x/time/rate"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// countingProxy forwards TCP connections to a server and counts the bytes
// the server sends back: what the worker fetched, measured outside Airlock.
//
// While limited, the proxy sends at most bytesPerSecond: slower than the
// worker reads, so no megabytes pile up in socket buffers and every byte
// counted is a byte the worker had already received.
type countingProxy struct {
	ln         net.Listener
	target     string
	downstream atomic.Int64
	limit      atomic.Pointer[rate.Limiter]
	wg         sync.WaitGroup
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &countingProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *countingProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer client.Close()
			server, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer server.Close()
			go func() { _, _ = io.Copy(server, client); server.(*net.TCPConn).CloseWrite() }()
			_, _ = io.CopyBuffer(countingWriter{client, &p.downstream, &p.limit}, server, make([]byte, proxyChunk))
		}()
	}
}

func (p *countingProxy) addr() string { return p.ln.Addr().String() }

// limitTo caps what the proxy sends; 0 lifts the cap.
func (p *countingProxy) limitTo(bytesPerSecond int) {
	if bytesPerSecond == 0 {
		p.limit.Store(nil)
		return
	}
	p.limit.Store(rate.NewLimiter(rate.Limit(bytesPerSecond), proxyChunk))
}

const proxyChunk = 32 << 10

type countingWriter struct {
	w     io.Writer
	n     *atomic.Int64
	limit *atomic.Pointer[rate.Limiter]
}

func (c countingWriter) Write(b []byte) (int, error) {
	if l := c.limit.Load(); l != nil {
		if err := l.WaitN(context.Background(), len(b)); err != nil {
			return 0, err
		}
	}
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// TestWorkerCrashMidTransferFromCloud kills a worker (SIGKILL) while it
// copies a large object from S3 (into local staging) and from Azure Blob
// (into S3 staging, a multipart upload), starts a new worker, and checks that
// the retry resumed: the bytes the sources sent over both attempts, counted
// by a proxy in front of each server, exceed the object's size by less than
// two parts; and the digests are right.
//
// The first worker reads with one part in flight (concurrency 1): with c
// parts in flight, a crash can lose up to c parts plus one checkpoint
// interval of fetched bytes, so c = 1 is what keeps the loss under two parts.
func TestWorkerCrashMidTransferFromCloud(t *testing.T) {
	needServer(t)
	cl := startClouds(t)
	const size = 96 << 20
	const part = 8 << 20
	big := randomBytes(7, size)
	cl.putS3(t, "clinic/big/scan.bin", big)
	cl.putAzure(t, "export/big/scan.bin", big)
	want := sha(big)
	big = nil

	for _, tc := range []struct {
		name, conn, stores, connectors string
		proxied                        func(p string) string
	}{
		{
			name: "s3 source into local staging", conn: "bucket", stores: localStores,
			connectors: fmt.Sprintf("connectors: {s3: {partSize: %d, concurrency: 1}}", part),
		},
		{
			name: "azure source into s3 staging", conn: "container", stores: cl.storesYAML("s3"),
			// The S3 store's parts (5 MiB) are what its checkpoints wait for.
			connectors: fmt.Sprintf("connectors: {azureblob: {partSize: %d, concurrency: 1}, s3: {partSize: 5242880}}", part),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var proxy *countingProxy
			var conns string
			if tc.conn == "bucket" {
				u, _ := url.Parse(cl.s3.Endpoint)
				proxy = newCountingProxy(t, u.Host)
				conns = fmt.Sprintf(`  - type: s3
    name: bucket
    url: s3://%s/clinic
    endpoint: http://%s
    pathStyle: true
    credentials: {accessKeyIdKey: s3-access-key, secretAccessKeyKey: s3-secret-key}
`, sourceBucket, proxy.addr())
			} else {
				u, _ := url.Parse(cl.az.BlobEndpoint)
				proxy = newCountingProxy(t, u.Host)
				conns = fmt.Sprintf(`  - type: azureblob
    name: container
    url: http://%s/%s/%s/export
    credentials: {accountKeyKey: azure-key}
`, proxy.addr(), cl.az.AccountName, sourceContainer)
			}
			// The source sends at 8 MiB/s while the first worker runs, so
			// the copy is mid-way when it is killed; the second worker
			// copies at full speed.
			proxy.limitTo(8 << 20)
			e := newEnvConfig(t, "  checkpointEvery: 100ms", tc.stores, tc.connectors)
			e.workerEnv = cl.workerEnv()
			doc := e.writeSource("crash-"+tc.conn, nil, fmt.Sprintf("  - file: {path: big/scan.bin, connection: %s}\n", tc.conn))
			addConnections(t, doc, conns)

			first := e.startWorker(e.config)
			id := strings.TrimSpace(airlockOK(t, "import", "-f", doc, "--workspace", "ws-crash", "--as", "rita"))
			var checkpoint int64
			waitForEvery(t, 60*time.Second, 20*time.Millisecond, func() bool {
				desc, err := devServer.Client().DescribeWorkflowExecution(context.Background(), id, "")
				if err != nil {
					return false
				}
				for _, pa := range desc.PendingActivities {
					if pa.HeartbeatDetails == nil || pa.State != enums.PENDING_ACTIVITY_STATE_STARTED {
						continue
					}
					var p activities.ExtractProgress
					if converter.GetDefaultDataConverter().FromPayloads(pa.HeartbeatDetails, &p) == nil && p.Current != nil && p.Current.Store.Offset >= 32<<20 {
						checkpoint = p.Current.Store.Offset
						return true
					}
				}
				return false
			}, "the copy has checkpointed at least 32 MiB")
			first.kill(t)
			fetchedByFirst := proxy.downstream.Load()
			t.Logf("killed the worker with SIGKILL after a checkpoint at %.1f MiB; the source had sent %.1f MiB", mib(checkpoint), mib(fetchedByFirst))

			proxy.limitTo(0)
			e.startWorker(e.config)
			st := waitState(t, id, model.StateAwaitingApproval, 90*time.Second)
			if len(st.Files) != 1 || st.Files[0].SHA256 != want || st.Files[0].Size != size {
				t.Fatalf("staged %+v; want big/scan.bin with %d bytes and sha256 %s", st.Files, size, want)
			}
			resumed, attempt := extractResult(t, id, "big/scan.bin")
			if attempt < 2 || resumed <= 0 {
				t.Fatalf("finished on attempt %d having resumed %d bytes; want a retry that resumed from a checkpoint", attempt, resumed)
			}
			total := proxy.downstream.Load()
			refetched := total - size
			t.Logf("MEASURE crash test (%s): %d MiB object, %d MiB parts; the sources sent %.1f MiB in all, so %.1f MiB (%.2f parts) were fetched twice; the retry (attempt %d) resumed at %.1f MiB",
				tc.name, size>>20, part>>20, mib(total), mib(refetched), float64(refetched)/part, attempt, mib(resumed))
			if refetched >= 2*part {
				t.Errorf("%.1f MiB were fetched again; want less than two parts (%d MiB)", mib(refetched), 2*part>>20)
			}

			airlockOK(t, "approve", id, "--stage", "data-engineering", "--as", "dana")
			airlockOK(t, "approve", id, "--stage", "information-governance", "--as", "ian")
			waitState(t, id, model.StateCompleted, 60*time.Second)
			kind := "local"
			if tc.conn == "container" {
				kind = "s3"
			}
			if got := sha(cl.readStore(t, e, kind, "ws-crash/crash-"+tc.conn+"/"+id+"/big/scan.bin")); got != want {
				t.Fatalf("released big/scan.bin has sha256 %s, want %s", got, want)
			}
			if left := cl.stagingLeft(t, e, kind, id); len(left) != 0 {
				t.Errorf("staging still holds %v after release (partial uploads included)", left)
			}
		})
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
