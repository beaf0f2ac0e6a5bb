package dlt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/model"
)

// Runner exit statuses (see the runner script).
const (
	exitConfig = 2
)

// quietAfter is how long the runner may print nothing before Produce reports
// that it is still running, so that progress (which heartbeats) keeps coming.
const quietAfter = 15 * time.Second

// passEnv are the worker's environment variables the child may see: none
// holds a secret of Airlock's, and proxies and CA bundles are what a
// network source may need to reach its server.
var passEnv = []string{
	"PATH", "LANG",
	"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PGSSLROOTCERT",
}

// Produce runs the dlt pipeline that loads obj's table into dir/<table>/ and
// describes what it wrote. The folder is emptied first, so a retried attempt
// never mixes files of two runs; on any failure it is removed again.
func (s *Source) Produce(ctx context.Context, obj model.Object, dir string, progress func(string)) (connectors.Produced, error) {
	if err := ctx.Err(); err != nil {
		return connectors.Produced{}, err
	}
	name, err := s.tableName(obj)
	if err != nil {
		return connectors.Produced{}, err
	}
	if progress == nil {
		progress = func(string) {}
	}
	outDir, err := filepath.Abs(dir)
	if err != nil {
		return connectors.Produced{}, fmt.Errorf("connection %q: table %q: work folder %s: %w", s.conn.Name, name, dir, err)
	}
	folder := filepath.Join(outDir, filepath.FromSlash(name))
	if err := os.RemoveAll(folder); err != nil {
		return connectors.Produced{}, fmt.Errorf("connection %q: table %q: emptying %s: %w", s.conn.Name, name, folder, err)
	}
	if err := os.MkdirAll(filepath.Dir(folder), 0o755); err != nil {
		return connectors.Produced{}, fmt.Errorf("connection %q: table %q: %w", s.conn.Name, name, err)
	}
	scratch, err := os.MkdirTemp(outDir, ".dlt-run-")
	if err != nil {
		return connectors.Produced{}, fmt.Errorf("connection %q: table %q: scratch folder in %s: %w", s.conn.Name, name, outDir, err)
	}
	defer os.RemoveAll(scratch)

	rc := s.spec.runnerConfig(name, obj.Table.Format, outDir, scratch)
	res, err := s.run(ctx, rc, scratch, progress)
	if err == nil {
		var p connectors.Produced
		if p, err = s.check(res, rc, folder); err == nil {
			return p, nil
		}
	}
	os.RemoveAll(folder)
	return connectors.Produced{}, err
}

// runResult is the runner's RESULT.json.
type runResult struct {
	Error            string `json:"error"`
	Kind             string `json:"kind"`
	Pipeline         string `json:"pipeline"`
	DLTVersion       string `json:"dlt_version"`
	Source           string `json:"source"`
	SchemaName       string `json:"schema_name"`
	DatasetName      string `json:"dataset_name"`
	LoaderFileFormat string `json:"loader_file_format"`
	Loads            []struct {
		LoadID     string `json:"load_id"`
		State      string `json:"state"`
		Status     *int   `json:"status"`
		FailedJobs int    `json:"failed_jobs"`
	} `json:"loads"`
	Tables []connectors.Table `json:"tables"`
	Files  []struct {
		Path  string `json:"path"`
		Table string `json:"table"`
		Kind  string `json:"kind"`
		Size  int64  `json:"size"`
	} `json:"files"`
}

// run starts the runner and waits for it, streaming its output to progress.
func (s *Source) run(ctx context.Context, rc runnerConfig, scratch string, progress func(string)) (*runResult, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("connection %q: table %q: %s", s.conn.Name, rc.Table, fmt.Sprintf(format, args...))
	}
	script := filepath.Join(scratch, RunnerFileName)
	cfgPath := filepath.Join(scratch, "config.json")
	resultPath := filepath.Join(scratch, "result.json")
	cfg, err := json.MarshalIndent(rc, "", "  ")
	if err != nil {
		return nil, fail("%v", err)
	}
	if err := os.WriteFile(script, runnerScript, 0o644); err != nil {
		return nil, fail("writing the runner: %v", err)
	}
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, fail("writing the runner's config: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(scratch, "tmp"), 0o700); err != nil {
		return nil, fail("%v", err)
	}

	runCtx := ctx
	if s.opts.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
	}
	sink := &lineSink{progress: progress, scrub: s.secrets.Scrub, last: time.Now()}
	stdout, stderr := &lineWriter{sink: sink}, &lineWriter{sink: sink}
	cmd := exec.CommandContext(runCtx, s.opts.Python, "-I", "-u", script, cfgPath, resultPath)
	cmd.Dir = scratch
	cmd.Env = s.childEnv(scratch)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Cancelling kills the runner's whole process group at once: a pipeline
	// cut short leaves nothing to save, and its folder is removed.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second

	started := time.Now()
	progress(fmt.Sprintf("dlt: starting the %s pipeline for table %s", rc.Source, rc.Table))
	if err := cmd.Start(); err != nil {
		return nil, fail("starting %s: %v", s.opts.Python, err)
	}
	stop := make(chan struct{})
	var keepalive sync.WaitGroup
	keepalive.Add(1)
	go func() {
		defer keepalive.Done()
		t := time.NewTicker(quietAfter / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				sink.quiet(quietAfter, fmt.Sprintf("dlt: table %s still loading (%s)", rc.Table, time.Since(started).Round(time.Second)))
			}
		}
	}()
	waitErr := cmd.Wait()
	close(stop)
	keepalive.Wait()
	// Nothing the runner started may outlive it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	stdout.flush()
	stderr.flush()

	if runCtx.Err() != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connection %q: table %q: dlt pipeline stopped: %w", s.conn.Name, rc.Table, ctx.Err())
		}
		return nil, fmt.Errorf("connection %q: table %q: dlt pipeline stopped after the configured timeout of %s: %w", s.conn.Name, rc.Table, s.opts.Timeout, runCtx.Err())
	}
	var res runResult
	data, readErr := os.ReadFile(resultPath)
	if readErr == nil {
		readErr = json.Unmarshal(data, &res)
	}
	var exitErr *exec.ExitError
	switch {
	case errors.As(waitErr, &exitErr):
		msg := res.Error
		if msg == "" {
			msg = sink.tailText(12)
		}
		msg = s.secrets.Scrub(msg)
		if exitErr.ExitCode() == exitConfig {
			return nil, connectors.BadInput("connection %q: table %q: %s", s.conn.Name, rc.Table, msg)
		}
		return nil, fail("dlt pipeline failed (%v): %s", exitErr, msg)
	case waitErr != nil:
		return nil, fail("dlt pipeline: %v; its last output:\n%s", waitErr, sink.tailText(12))
	case readErr != nil:
		return nil, fail("the dlt runner exited without a readable result (%v); its last output:\n%s", readErr, sink.tailText(12))
	case res.Error != "":
		return nil, fail("dlt pipeline failed: %s", s.secrets.Scrub(res.Error))
	}
	return &res, nil
}

// childEnv is the runner's whole environment: nothing of the worker's but
// the variables in passEnv, plus dlt's settings and the connection's secrets
// under dlt's config names.
func (s *Source) childEnv(scratch string) []string {
	env := map[string]string{
		"PATH": "/usr/local/bin:/usr/bin:/bin",
		"LANG": "C.UTF-8",
	}
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			env[k] = v
		}
	}
	for k, v := range map[string]string{
		"HOME":                             scratch,
		"TMPDIR":                           filepath.Join(scratch, "tmp"),
		"TZ":                               "UTC",
		"PYTHONUNBUFFERED":                 "1",
		"RUNTIME__DLTHUB_TELEMETRY":        "false",
		"RUNTIME__LOG_LEVEL":               "WARNING",
		"RESTORE_FROM_DESTINATION":         "false",
		"DLT_DATA_DIR":                     filepath.Join(scratch, "dlt-data"),
		"NORMALIZE__WORKERS":               "1",
		"DATA_WRITER__DISABLE_COMPRESSION": "true",
	} {
		env[k] = v
	}
	for k, v := range s.spec.env {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// check verifies what the runner reports against dlt's own records and the
// folder, and turns it into Produced.
func (s *Source) check(res *runResult, rc runnerConfig, folder string) (connectors.Produced, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("connection %q: table %q: the dlt run is not complete: %s", s.conn.Name, rc.Table, fmt.Sprintf(format, args...))
	}
	if len(res.Loads) == 0 {
		return connectors.Produced{}, fail("the runner reports no load")
	}
	var loadIDs []string
	for _, l := range res.Loads {
		if l.State != "loaded" || l.Status == nil || *l.Status != 0 || l.FailedJobs != 0 {
			status := "none"
			if l.Status != nil {
				status = fmt.Sprint(*l.Status)
			}
			return connectors.Produced{}, fail("load %s is %q with _dlt_loads status %s and %d failed job(s)", l.LoadID, l.State, status, l.FailedJobs)
		}
		loadIDs = append(loadIDs, l.LoadID)
	}
	if len(res.Tables) == 0 {
		return connectors.Produced{}, fail("the runner reports no table")
	}
	tables := map[string]int64{}
	for _, t := range res.Tables {
		tables[t.Name] = t.Rows
	}
	prefix := rc.Table + "/"
	reported := map[string]bool{}
	dataFiles := map[string]int{}
	var files []connectors.ProducedFile
	for _, f := range res.Files {
		clean, err := model.CleanRelPath(f.Path)
		if err != nil || clean != f.Path || !strings.HasPrefix(f.Path, prefix) {
			return connectors.Produced{}, fail("the runner reports a file %q outside the table's folder %s", f.Path, prefix)
		}
		full := filepath.Join(rc.OutputDir, filepath.FromSlash(f.Path))
		st, err := os.Lstat(full)
		switch {
		case err != nil:
			return connectors.Produced{}, fail("the runner reports %s, which does not exist: %v", f.Path, err)
		case !st.Mode().IsRegular():
			return connectors.Produced{}, fail("%s is not a regular file", f.Path)
		case st.Size() != f.Size:
			return connectors.Produced{}, fail("%s holds %d bytes, the runner reports %d", f.Path, st.Size(), f.Size)
		}
		if f.Table != "" {
			if _, ok := tables[f.Table]; !ok {
				return connectors.Produced{}, fail("%s belongs to table %q, which the runner does not describe", f.Path, f.Table)
			}
			dataFiles[f.Table]++
		}
		reported[f.Path] = true
		files = append(files, connectors.ProducedFile{Path: f.Path, EncodingFormat: mediaType(f.Path), Table: f.Table})
	}
	for t, rows := range tables {
		if rows > 0 && dataFiles[t] == 0 {
			return connectors.Produced{}, fail("table %s has %d rows but no data file", t, rows)
		}
	}
	// Nothing in the folder may be left out of what the crate receives.
	err := filepath.WalkDir(folder, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(rc.OutputDir, p)
		rel = filepath.ToSlash(rel)
		if !reported[rel] {
			return fmt.Errorf("%s is in the folder but not in the runner's list", rel)
		}
		return nil
	})
	if err != nil {
		return connectors.Produced{}, fail("%v", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return connectors.Produced{
		Files:  files,
		Tables: res.Tables,
		Properties: map[string]string{
			"pipeline":           res.Pipeline,
			"load_id":            strings.Join(loadIDs, " "),
			"dlt_version":        res.DLTVersion,
			"source":             res.Source,
			"destination":        "filesystem",
			"loader_file_format": res.LoaderFileFormat,
		},
	}, nil
}

// mediaType labels a produced file; dlt's init marker holds JSON.
func mediaType(p string) string {
	if path.Base(p) == "init" {
		return "application/json"
	}
	return file.MediaType(p)
}

// lineSink passes the runner's output on a line at a time, scrubbed, and
// keeps the last lines for error messages.
type lineSink struct {
	mu       sync.Mutex
	progress func(string)
	scrub    func(string) string
	tail     []string
	last     time.Time
}

const (
	maxLine  = 2000 // bytes of one line passed on
	keepTail = 40
)

func (s *lineSink) line(l string) {
	l = strings.TrimSpace(strings.TrimRight(l, "\r"))
	if l == "" {
		return
	}
	l = s.scrub(l) // before cutting, which could split a secret
	if len(l) > maxLine {
		l = strings.ToValidUTF8(l[:maxLine], "") + " …"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tail = append(s.tail, l)
	if len(s.tail) > keepTail {
		s.tail = s.tail[len(s.tail)-keepTail:]
	}
	s.last = time.Now()
	s.progress(l)
}

// quiet reports msg if nothing was reported for d.
func (s *lineSink) quiet(d time.Duration, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.last) >= d {
		s.last = time.Now()
		s.progress(msg)
	}
}

func (s *lineSink) tailText(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tail
	if len(t) > n {
		t = t[len(t)-n:]
	}
	if len(t) == 0 {
		return "(no output)"
	}
	return strings.Join(t, "\n")
}

// lineWriter splits a stream into lines for a lineSink.
type lineWriter struct {
	sink    *lineSink
	pending []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			break
		}
		w.sink.line(string(w.pending[:i]))
		w.pending = w.pending[i+1:]
	}
	if len(w.pending) > 4*maxLine { // a very long line: pass it on in pieces
		w.sink.line(string(w.pending))
		w.pending = w.pending[:0]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.pending) > 0 {
		w.sink.line(string(w.pending))
		w.pending = nil
	}
}
