package databricks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/databricks/databricks-sdk-go/service/sql"
)

const (
	// maxLinkRefreshes bounds how often one chunk's link is fetched again
	// because it expired.
	maxLinkRefreshes = 3
	// linkMargin is how close to its expiration a link is treated as
	// expired, so that a download does not start on a link about to lapse.
	linkMargin = 10 * time.Second
)

// writeResult downloads the statement's result chunks and writes their
// rows, in chunk order, to the plan's file. Chunks are downloaded in
// parallel into a spool folder inside dir, at most DownloadConcurrency
// ahead of the chunk being written, and each is removed once written, so
// neither memory nor disk holds the whole result.
func (s *Source) writeResult(ctx context.Context, plan tablePlan, resp *sql.StatementResponse, dir string, progress func(string)) (int64, error) {
	m := resp.Manifest
	id := resp.StatementId
	fail := func(format string, args ...any) error {
		return fmt.Errorf("connection %q: table %q: statement %s: %s", s.conn.Name, plan.name, id, fmt.Sprintf(format, args...))
	}
	schema, err := arrowSchema(m.Schema.Columns)
	if err != nil {
		return 0, fail("%v", err)
	}
	n := m.TotalChunkCount
	if n < 0 || len(m.Chunks) > 0 && len(m.Chunks) != n {
		return 0, fail("the manifest lists %d chunks but says there are %d", len(m.Chunks), n)
	}
	chunkRows := map[int]int64{}
	for _, c := range m.Chunks {
		chunkRows[c.ChunkIndex] = c.RowCount
	}

	final, partial := outputPath(dir, plan)
	f, err := os.Create(partial)
	if err != nil {
		return 0, fail("creating %s: %v", partial, err)
	}
	defer func() {
		f.Close()
		os.Remove(partial)
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	var tw tableWriter
	if plan.csv {
		tw = newCSVWriter(bw, schema)
	} else if tw, err = newParquetWriter(bw, schema); err != nil {
		return 0, fail("starting the Parquet file: %v", err)
	}

	spool, err := os.MkdirTemp(dir, ".databricks-chunks-")
	if err != nil {
		return 0, fail("creating a spool folder in %s: %v", dir, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		os.RemoveAll(spool)
	}()

	fetch := &chunkFetcher{s: s, plan: plan, id: id, links: map[int]sql.ExternalLink{}}
	if resp.Result != nil {
		fetch.remember(resp.Result.ExternalLinks)
	}
	type slot struct {
		done chan struct{}
		path string
		err  error
	}
	slots := make([]*slot, n)
	for i := range slots {
		slots[i] = &slot{done: make(chan struct{}), path: filepath.Join(spool, fmt.Sprintf("chunk-%06d.arrow", i))}
	}
	window := make(chan struct{}, s.opts.DownloadConcurrency)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				for _, sl := range slots[i:] {
					sl.err = ctx.Err()
					close(sl.done)
				}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(slots[i].done)
				slots[i].err = fetch.download(ctx, i, slots[i].path)
			}()
		}
	}()

	var rows int64
	mem := memory.NewGoAllocator()
	for i, sl := range slots {
		select {
		case <-sl.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if sl.err != nil {
			return 0, sl.err
		}
		got, err := writeChunk(sl.path, schema, tw, mem)
		os.Remove(sl.path)
		<-window
		if err != nil {
			return 0, fail("chunk %d of %d: %v", i+1, n, err)
		}
		if want, ok := chunkRows[i]; ok && got != want {
			return 0, fail("chunk %d of %d holds %d rows where the manifest says %d", i+1, n, got, want)
		}
		rows += got
		progress(fmt.Sprintf("table %s: chunk %d of %d written, %d rows so far", plan.name, i+1, n, rows))
	}
	if rows != m.TotalRowCount {
		return 0, fail("the chunks held %d rows where the manifest says %d", rows, m.TotalRowCount)
	}
	if err := tw.Close(); err != nil {
		return 0, fail("finishing %s: %v", plan.file, err)
	}
	if err := bw.Flush(); err != nil {
		return 0, fail("writing %s: %v", partial, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fail("writing %s: %v", partial, err)
	}
	if err := f.Close(); err != nil {
		return 0, fail("writing %s: %v", partial, err)
	}
	if err := os.Rename(partial, final); err != nil {
		return 0, fail("renaming %s to %s: %v", partial, final, err)
	}
	return rows, nil
}

// writeChunk decodes a spooled Arrow IPC stream and writes its record
// batches, conformed to schema, to tw. It returns the rows written.
func writeChunk(path string, schema *arrow.Schema, tw tableWriter, mem memory.Allocator) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rd, err := ipc.NewReader(bufio.NewReaderSize(f, 1<<16), ipc.WithAllocator(mem))
	if err != nil {
		return 0, fmt.Errorf("reading the Arrow stream: %v", err)
	}
	defer rd.Release()
	got := rd.Schema()
	if got.NumFields() != schema.NumFields() {
		return 0, fmt.Errorf("the Arrow stream has %d columns where the manifest lists %d", got.NumFields(), schema.NumFields())
	}
	for i := range got.NumFields() {
		if got.Field(i).Name != schema.Field(i).Name {
			return 0, fmt.Errorf("column %d is %q in the Arrow stream but %q in the manifest", i+1, got.Field(i).Name, schema.Field(i).Name)
		}
	}
	var rows int64
	for rd.Next() {
		rec, err := conformRecord(rd.RecordBatch(), schema, mem)
		if err != nil {
			return rows, err
		}
		err = tw.Write(rec)
		rows += rec.NumRows()
		rec.Release()
		if err != nil {
			return rows, err
		}
	}
	if err := rd.Err(); err != nil && !errors.Is(err, io.EOF) {
		return rows, fmt.Errorf("reading the Arrow stream: %v", err)
	}
	return rows, nil
}

// chunkFetcher finds and downloads the result chunks of one statement.
type chunkFetcher struct {
	s     *Source
	plan  tablePlan
	id    string
	mu    sync.Mutex
	links map[int]sql.ExternalLink
}

func (f *chunkFetcher) remember(links []sql.ExternalLink) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range links {
		f.links[l.ChunkIndex] = l
	}
}

// link returns a usable link to chunk i: a known one that is not about to
// expire, or a fresh one from the chunk endpoint. stale forces a fresh one.
func (f *chunkFetcher) link(ctx context.Context, i int, stale bool) (sql.ExternalLink, error) {
	f.mu.Lock()
	l, ok := f.links[i]
	if stale {
		delete(f.links, i)
		ok = false
	}
	f.mu.Unlock()
	if ok && !expiring(l) {
		return l, nil
	}
	var rd *sql.ResultData
	err := callAPI(ctx, func(ctx context.Context) (err error) {
		rd, err = f.s.stmts.GetStatementResultChunkN(ctx, sql.GetStatementResultChunkNRequest{StatementId: f.id, ChunkIndex: i})
		return err
	})
	if err != nil {
		return sql.ExternalLink{}, f.s.apiFailure(fmt.Sprintf("table %q: fetching the link to chunk %d of statement %s", f.plan.name, i, f.id), err)
	}
	f.remember(rd.ExternalLinks)
	f.mu.Lock()
	l, ok = f.links[i]
	f.mu.Unlock()
	if !ok {
		return sql.ExternalLink{}, fmt.Errorf("connection %q: table %q: Databricks sent no link to chunk %d of statement %s", f.s.conn.Name, f.plan.name, i, f.id)
	}
	return l, nil
}

// expiring reports whether a link's expiration has passed or is near.
func expiring(l sql.ExternalLink) bool {
	if l.Expiration == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, l.Expiration)
	return err == nil && time.Now().Add(linkMargin).After(t)
}

// download fetches chunk i into path. The link is presigned cloud storage:
// the request carries the link's http_headers and no Authorization header.
// A link that expired (before or during the request) is fetched again.
func (f *chunkFetcher) download(ctx context.Context, i int, path string) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("connection %q: table %q: statement %s, chunk %d: %s", f.s.conn.Name, f.plan.name, f.id, i, fmt.Sprintf(format, args...))
	}
	stale := false
	refreshes, attempts := 0, 0
	for {
		l, err := f.link(ctx, i, stale)
		if err != nil {
			return err
		}
		if l.ExternalLink == "" {
			return fail("Databricks sent a link without external_link")
		}
		host := "the result storage"
		if u, err := url.Parse(l.ExternalLink); err == nil {
			host = u.Host
		}
		if expiring(l) {
			if refreshes++; refreshes > maxLinkRefreshes {
				return fail("every link Databricks sent had expired (%d fetched); check the worker's clock", refreshes)
			}
			stale = true
			continue
		}
		resp, err := doHTTP(ctx, f.s.http, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.ExternalLink, nil)
			if err != nil {
				return nil, errors.New("the link is not a valid URL")
			}
			for k, v := range l.HttpHeaders {
				req.Header.Set(k, v)
			}
			req.Header.Del("Authorization")
			return req, nil
		})
		if err != nil {
			if isContext(err) {
				return err
			}
			return fail("downloading from %s: %v", host, err)
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
			resp.Body.Close()
			if linkExpired(resp.StatusCode, body) {
				if refreshes++; refreshes > maxLinkRefreshes {
					return fail("%s refused %d links as expired; check the worker's clock", host, refreshes)
				}
				stale = true
				continue
			}
			return fail("%s answered HTTP %d: %s", host, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		err = spoolBody(resp.Body, path)
		resp.Body.Close()
		if err == nil {
			return nil
		}
		if isContext(err) || ctx.Err() != nil {
			return ctx.Err()
		}
		if attempts++; attempts >= maxAttempts {
			return fail("downloading from %s failed %d times, last: %v", host, attempts, err)
		}
		if err := sleep(ctx, backoff(attempts)); err != nil {
			return err
		}
	}
}

// linkExpired reports whether a storage answer says the presigned link is
// no longer valid: 403 (S3, Azure, GCS refuse expired signatures so), or
// another 4xx that says it expired.
func linkExpired(status int, body []byte) bool {
	if status == http.StatusForbidden {
		return true
	}
	return status >= 400 && status < 500 && strings.Contains(strings.ToLower(string(body)), "expired")
}

// spoolBody copies a download into path, replacing what an earlier attempt
// left there.
func spoolBody(body io.Reader, path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, body); err != nil {
		out.Close()
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	return out.Close()
}
