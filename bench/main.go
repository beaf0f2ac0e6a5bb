// Command bench is Airlock's transfer benchmark (make bench): it copies one
// large object of random bytes (1 GiB by default) from an S3 server
// (versitygw) and from an Azure Blob server (Azurite) into a local folder,
// with Airlock's connectors, with rclone and with aws s3 cp (S3 only), and
// reports each tool's throughput and peak memory, and Airlock's ratio to the
// fastest reference tool on each source.
//
// Airlock runs the way a worker does: the real PlanImport and ExtractObject
// activities (through Temporal's activity test environment, not a server),
// the worker's source registry with secrets from AIRLOCK_SECRET_* variables,
// and a local staging store. Every tool runs as a child process of its own
// (Airlock as `bench copy-airlock ...`), so its peak RSS, read from the
// kernel when it exits, is the tool's alone. Every copy's SHA-256 is checked
// against the uploaded object's: a tool that copies wrong bytes fails the
// bench.
//
//	go run ./bench [-size 1GiB] [-runs 3] [-sources s3,azureblob] [-o .airlock/bench.json]
//	go run ./bench upload [-size 1GiB] [-runs 3] [-chunk 8MiB]   (upload.go)
//
// The servers' and the tools' files live in a temporary folder that is
// removed at the end; the servers are stopped, also on Ctrl-C.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors/azureblob"
	"github.com/airlockhq/airlock/connectors/s3"
	"github.com/airlockhq/airlock/model"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == copyAirlockCmd {
		os.Exit(runCopyAirlock(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == uploadCmd {
		os.Exit(runUploadBench(os.Args[2:]))
	}
	os.Exit(runBench(os.Args[1:]))
}

// config is the bench's flags.
type config struct {
	size    int64
	runs    int
	airlock airlockSettings
	sources []string
	tools   []string
	out     string
	dir     string
	cpuprof string
	check   bool
	// The reference tools and their tuning (their own defaults unless set).
	rclone         string
	rcloneStreams  int
	aws            string
	awsConcurrency int
	awsChunk       int64
}

// Tool names.
const (
	toolAirlock = "airlock"
	toolRclone  = "rclone"
	toolAWS     = "aws"
)

// The reference tools' own defaults, which the bench uses unless told
// otherwise: rclone downloads a file above 250 MiB with 4 streams; aws s3
// cp runs 10 requests at once in 8 MiB chunks.
const (
	rcloneDefaultStreams  = 4
	awsDefaultConcurrency = 10
	awsDefaultChunk       = 8 << 20
)

func parseFlags(args []string) (config, error) {
	c := config{size: 1 << 30}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bench [flags]\n\nCopies a random object from versitygw (S3) and Azurite (Azure Blob) with Airlock, rclone and aws s3 cp, and reports MB/s (10^6 bytes/s) and peak RSS.\n\n")
		fs.PrintDefaults()
	}
	fs.Var(sizeFlag{&c.size}, "size", "size of the benchmark object (e.g. 1GiB, 256MiB)")
	fs.IntVar(&c.runs, "runs", 3, "runs of each tool on each source (interleaved); best and median are reported")
	fs.Var(sizeFlag{&c.airlock.PartSize}, "part-size", fmt.Sprintf("Airlock: the connectors' part size, worker config connectors.s3/azureblob.partSize (default: the connectors' %s)", formatSize(s3.DefaultPartSize)))
	fs.IntVar(&c.airlock.Concurrency, "concurrency", 0, fmt.Sprintf("Airlock: parts fetched at once, worker config connectors.s3/azureblob.concurrency (default: the connectors' %d)", s3.DefaultConcurrency))
	fs.Var(sizeFlag{&c.airlock.BufferSize}, "buffer-size", "Airlock: the copy buffer, worker config transfer.bufferSize (default: the worker's, 1MiB)")
	sources := fs.String("sources", "s3,azureblob", "sources to read from, comma-separated: s3 (versitygw), azureblob (Azurite)")
	tools := fs.String("tools", "airlock,rclone,aws", "tools to run, comma-separated: airlock, rclone, aws")
	fs.StringVar(&c.out, "o", filepath.Join(".airlock", "bench.json"), "write the report as JSON to this file")
	fs.StringVar(&c.dir, "dir", "", "folder for the servers' data and the copies (default: the system's temporary folder); all tools write to the same disk")
	fs.StringVar(&c.cpuprof, "cpuprofile", "", "write a CPU profile of each Airlock copy into this folder (airlock-SOURCE-runN.pprof; go tool pprof reads them)")
	fs.BoolVar(&c.check, "check", false, "exit with status 3 when Airlock misses a target (throughput ≥ the fastest reference tool, peak RSS < 100 MiB)")
	fs.StringVar(&c.rclone, "rclone", "rclone", "the rclone binary (deploy/tools/install.sh bench installs Debian's)")
	fs.IntVar(&c.rcloneStreams, "rclone-streams", rcloneDefaultStreams, "rclone --multi-thread-streams (rclone's default: 4)")
	fs.StringVar(&c.aws, "aws", "/usr/bin/aws", "the AWS CLI v2 binary (Debian's awscli; a pyenv shim named aws may come first in PATH)")
	fs.IntVar(&c.awsConcurrency, "aws-concurrency", awsDefaultConcurrency, "aws s3 max_concurrent_requests (the CLI's default: 10)")
	fs.Var(sizeFlag{&c.awsChunk}, "aws-chunk", "aws s3 multipart_chunksize (the CLI's default: 8MiB)")
	c.awsChunk = awsDefaultChunk
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: every setting is a flag (see -help)", fs.Arg(0))
	}
	var err error
	if c.sources, err = parseList("-sources", *sources, []string{model.ConnS3, model.ConnAzureBlob}); err != nil {
		return c, err
	}
	if c.tools, err = parseList("-tools", *tools, []string{toolAirlock, toolRclone, toolAWS}); err != nil {
		return c, err
	}
	switch {
	case c.size <= 0:
		return c, errors.New("-size must be more than 0 bytes")
	case c.runs < 1:
		return c, errors.New("-runs must be at least 1")
	case c.airlock.Concurrency < 0:
		return c, errors.New("-concurrency must be 1 or more (or 0 for the connectors' default)")
	case c.rcloneStreams < 1 || c.awsConcurrency < 1:
		return c, errors.New("-rclone-streams and -aws-concurrency must be at least 1")
	case c.awsChunk < 5<<20:
		return c, errors.New("-aws-chunk must be at least 5MiB (S3's smallest part)")
	}
	return c, nil
}

// parseList splits a comma-separated flag and checks each name.
func parseList(flagName, value string, allowed []string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(value, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || v == a
		}
		if !ok {
			return nil, fmt.Errorf("%s: unknown %q: use some of %s", flagName, v, strings.Join(allowed, ","))
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty: use some of %s", flagName, strings.Join(allowed, ","))
	}
	return out, nil
}

func runBench(args []string) int {
	c, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 2
	}
	// Stop (and clean up: servers, temporary files) on Ctrl-C, on kill, and
	// when the output's reader goes away (| head) rather than die at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	rep, err := bench(ctx, c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if c.check {
		for _, v := range rep.Verdicts {
			if !v.FastEnough || !v.SmallEnough {
				return 3
			}
		}
	}
	return 0
}

// tool is one contender.
type tool struct {
	name      string
	reference bool
	// command is the child that copies src's object into dir, and the file
	// it makes there; ok is false for a source the tool cannot read.
	command func(src *source, dir string, run int) (c child, out string, ok bool)
}

func bench(ctx context.Context, c config) (Report, error) {
	rep := Report{
		Date:        time.Now().UTC(),
		ObjectBytes: c.size,
		RunsPerTool: c.runs,
		Units:       Units,
		Cores:       runtime.NumCPU(),
		LoadBefore:  loadAverage(),
		Tools:       map[string]string{},
	}
	base, err := os.MkdirTemp(c.dir, "airlock-bench-")
	if err != nil {
		return rep, fmt.Errorf("-dir: %w", err)
	}
	defer os.RemoveAll(base)
	if c.cpuprof != "" {
		if err := os.MkdirAll(c.cpuprof, 0o755); err != nil {
			return rep, fmt.Errorf("-cpuprofile: %w", err)
		}
	}
	tools, err := c.contenders(base, &rep)
	if err != nil {
		return rep, err
	}

	fmt.Fprintf(os.Stderr, "bench: writing a %s object of random bytes (load average %s)\n", formatSize(c.size), rep.LoadBefore)
	objectFile := filepath.Join(base, "object.bin")
	if rep.ObjectSHA256, err = makeRandomFile(objectFile, c.size); err != nil {
		return rep, err
	}
	var sources []*source
	defer func() {
		for _, s := range sources {
			s.stop()
		}
	}()
	for _, name := range c.sources {
		server := map[string]string{model.ConnS3: "versitygw", model.ConnAzureBlob: "Azurite"}[name]
		fmt.Fprintf(os.Stderr, "bench: starting %s and uploading the object\n", server)
		began := time.Now()
		var s *source
		switch name {
		case model.ConnS3:
			s, err = startS3(ctx, objectFile, c.size)
		case model.ConnAzureBlob:
			s, err = startAzure(ctx, objectFile)
		}
		if err != nil {
			return rep, fmt.Errorf("%s: %w", name, err)
		}
		sources = append(sources, s)
		fmt.Fprintf(os.Stderr, "bench: %s ready with the object after %.1f s\n", server, time.Since(began).Seconds())
	}
	if err := os.Remove(objectFile); err != nil {
		return rep, err
	}

	// One result per tool and source, in table order.
	type cell struct{ tool, source string }
	index := map[cell]int{}
	for _, s := range sources {
		for _, t := range tools {
			if ch, _, ok := t.command(s, filepath.Join(base, "target"), 1); ok {
				index[cell{t.name, s.name}] = len(rep.Results)
				rep.Results = append(rep.Results, Result{Tool: t.name, Source: s.name, Reference: t.reference, Command: ch.String()})
			}
		}
	}
	// Runs are interleaved (run 1 of every tool, then run 2, ...) so that
	// load from other processes on the machine spreads over all tools.
	target := filepath.Join(base, "target")
	for run := 1; run <= c.runs; run++ {
		for _, s := range sources {
			for _, t := range tools {
				i, ok := index[cell{t.name, s.name}]
				if !ok {
					continue
				}
				r, err := runOnce(ctx, t, s, target, run, c.size, rep.ObjectSHA256)
				if err != nil {
					return rep, fmt.Errorf("%s from %s, run %d: %w", t.name, s.name, run, err)
				}
				activity := ""
				if r.ActivitySeconds > 0 {
					activity = fmt.Sprintf("  (ExtractObject %.2f s)", r.ActivitySeconds)
				}
				fmt.Fprintf(os.Stderr, "bench: run %d/%d %-9s %-7s %6.2f s %7.1f MB/s  +fsync %5.2f s  peak RSS %6.1f MiB  CPU %5.1f s%s\n",
					run, c.runs, s.name, t.name, r.Seconds, r.MBps, r.SyncSeconds, float64(r.PeakRSSBytes)/(1<<20), r.UserCPU+r.SysCPU, activity)
				rep.Results[i].Runs = append(rep.Results[i].Runs, r)
			}
		}
	}
	rep.LoadAfter = loadAverage()
	rep.Verdicts = summarize(rep.Results)
	rep.Notes = notes(c, base)

	fmt.Printf("Airlock transfer benchmark: a %s object (%d bytes, SHA-256 %s…), %d runs per tool, %d cores, load average %s before and %s after.\n\n",
		formatSize(c.size), c.size, rep.ObjectSHA256[:16], c.runs, rep.Cores, rep.LoadBefore, rep.LoadAfter)
	writeTable(os.Stdout, rep.Results)
	fmt.Println()
	for _, v := range rep.Verdicts {
		fmt.Println(v.Line())
	}
	fmt.Printf("\nAirlock settings: %s\n", settingsLine(rep.Airlock))
	for _, t := range []string{toolRclone, toolAWS} {
		if v, ok := rep.Tools[t]; ok {
			fmt.Printf("%s: %s\n", t, v)
		}
	}
	fmt.Printf("\nUnits: %s.\n", Units)
	for _, n := range rep.Notes {
		fmt.Printf("Note: %s\n", n)
	}
	if err := writeJSON(c.out, rep); err != nil {
		return rep, err
	}
	fmt.Printf("\nReport written to %s\n", c.out)
	return rep, nil
}

// runOnce runs one copy into an empty target folder and checks the bytes
// it made.
func runOnce(ctx context.Context, t tool, s *source, target string, run int, size int64, want string) (Run, error) {
	if err := os.RemoveAll(target); err != nil {
		return Run{}, err
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return Run{}, err
	}
	// Write back what earlier runs left in the page cache, so that no run
	// pays for another's writes.
	syscall.Sync()
	ch, out, _ := t.command(s, target, run)
	r, stdout, err := runChild(ctx, ch, size)
	if err != nil {
		return Run{}, err
	}
	if t.name == toolAirlock {
		var o airlockOutcome
		if err := json.Unmarshal(stdout, &o); err != nil {
			return Run{}, fmt.Errorf("reading the Airlock child's outcome %q: %w", tail(stdout), err)
		}
		if len(o.Files) != 1 || o.Files[0].SHA256 != want || o.Files[0].Size != size || o.Staged != out {
			return Run{}, fmt.Errorf("Airlock staged %+v at %s; want one file of %d bytes with SHA-256 %s at %s", o.Files, o.Staged, size, want, out)
		}
		r.ActivitySeconds = o.ExtractSeconds
	}
	// How long the copy then takes to reach the disk: nothing for a tool
	// that synced it before it exited.
	began := time.Now()
	if err := syncFile(out); err != nil {
		return Run{}, fmt.Errorf("the copy is not where %s should have put it: %w", t.name, err)
	}
	r.SyncSeconds = time.Since(began).Seconds()
	r.DurableMBps = float64(size) / (r.Seconds + r.SyncSeconds) / 1e6
	got, n, err := fileSHA256(out)
	if err != nil {
		return Run{}, fmt.Errorf("the copy is not where %s should have put it: %w", t.name, err)
	}
	if got != want || n != size {
		return Run{}, fmt.Errorf("%s copied the wrong bytes: %s holds %d bytes with SHA-256 %s; the object has %d bytes with SHA-256 %s", t.name, out, n, got, size, want)
	}
	return r, nil
}

// contenders checks that the tools asked for are there, records their
// versions and settings in rep, and returns them in table order.
func (c config) contenders(base string, rep *Report) ([]tool, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the bench's own binary to run Airlock's copies: %w", err)
	}
	var out []tool
	for _, name := range c.tools {
		switch name {
		case toolAirlock:
			rep.Airlock = c.airlockSettings()
			out = append(out, tool{name: toolAirlock, command: func(s *source, dir string, run int) (child, string, bool) {
				conn, _ := json.Marshal(s.conn)
				argv := []string{self, copyAirlockCmd, "-connection", string(conn), "-path", benchObject,
					"-staging", dir, "-work", filepath.Join(base, "work")}
				if c.airlock.PartSize > 0 {
					argv = append(argv, "-part-size", strconv.FormatInt(c.airlock.PartSize, 10))
				}
				if c.airlock.Concurrency > 0 {
					argv = append(argv, "-concurrency", strconv.Itoa(c.airlock.Concurrency))
				}
				if c.airlock.BufferSize > 0 {
					argv = append(argv, "-buffer-size", strconv.FormatInt(c.airlock.BufferSize, 10))
				}
				if c.cpuprof != "" {
					argv = append(argv, "-cpuprofile", filepath.Join(c.cpuprof, fmt.Sprintf("airlock-%s-run%d.pprof", s.name, run)))
				}
				staged := filepath.Join(dir, activities.StagingPrefix(requestID), benchObject)
				return child{argv: argv, env: s.airlockEnv}, staged, true
			}})
		case toolRclone:
			bin, v, err := toolVersion(c.rclone, "version")
			if err != nil {
				return nil, fmt.Errorf("-rclone: %w", err)
			}
			rep.Tools[toolRclone] = fmt.Sprintf("%s; rclone copy with --multi-thread-streams %d (its default is %d), otherwise its defaults (multi-thread cutoff 250Mi; checks size and, when the source has one, the MD5 after the copy)", v, c.rcloneStreams, rcloneDefaultStreams)
			out = append(out, tool{name: toolRclone, reference: true, command: func(s *source, dir string, _ int) (child, string, bool) {
				argv := []string{bin, "--config", "/dev/null", "copy", s.rcloneRemote, dir, "--multi-thread-streams", strconv.Itoa(c.rcloneStreams)}
				return child{argv: argv, env: s.rcloneEnv}, filepath.Join(dir, benchObject), true
			}})
		case toolAWS:
			bin, v, err := toolVersion(c.aws, "--version")
			if err != nil {
				return nil, fmt.Errorf("-aws: %w (deploy/tools/install.sh bench does not install it when another aws, such as a pyenv shim, is on PATH: then apt-get install awscli; or leave aws out with -tools airlock,rclone)", err)
			}
			if !strings.HasPrefix(v, "aws-cli/2.") {
				return nil, fmt.Errorf("-aws: %s is %q, not the AWS CLI v2: run deploy/tools/install.sh bench (Debian's awscli) or point -aws at an AWS CLI v2", bin, v)
			}
			awsConfig := filepath.Join(base, "aws-config")
			cfg := fmt.Sprintf("[default]\ns3 =\n  addressing_style = path\n  max_concurrent_requests = %d\n  multipart_chunksize = %d\n", c.awsConcurrency, c.awsChunk)
			if err := os.WriteFile(awsConfig, []byte(cfg), 0o600); err != nil {
				return nil, err
			}
			rep.Tools[toolAWS] = fmt.Sprintf("%s; aws s3 cp --no-progress --only-show-errors with s3 max_concurrent_requests %d and multipart_chunksize %s (the CLI's defaults are %d and %s) and path-style addressing", v, c.awsConcurrency, formatSize(c.awsChunk), awsDefaultConcurrency, formatSize(awsDefaultChunk))
			out = append(out, tool{name: toolAWS, reference: true, command: func(s *source, dir string, _ int) (child, string, bool) {
				if s.awsURL == "" {
					return child{}, "", false
				}
				dst := filepath.Join(dir, benchObject)
				argv := []string{bin, "s3", "cp", s.awsURL, dst, "--endpoint-url", s.awsEndpoint, "--no-progress", "--only-show-errors"}
				return child{argv: argv, env: append([]string{"AWS_CONFIG_FILE=" + awsConfig}, s.awsEnv...)}, dst, true
			}})
		}
	}
	return out, nil
}

// toolVersion finds bin and returns its path and the first line of its
// version output.
func toolVersion(bin string, arg string) (string, string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", "", fmt.Errorf("%s is not installed: run deploy/tools/install.sh bench (it installs rclone and awscli from Debian), or make bench", bin)
	}
	out, err := exec.Command(path, arg).CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("%s %s: %v: %s", path, arg, err, tail(out))
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return path, line, nil
}

// airlockSettings describes the settings Airlock's copies ran with.
func (c config) airlockSettings() map[string]string {
	part, conc := "connectors' default: "+formatSize(s3.DefaultPartSize), "connectors' default: "+strconv.Itoa(s3.DefaultConcurrency)
	if s3.DefaultPartSize != azureblob.DefaultPartSize || s3.DefaultConcurrency != azureblob.DefaultConcurrency {
		part = fmt.Sprintf("connectors' defaults: s3 %s, azureblob %s", formatSize(s3.DefaultPartSize), formatSize(azureblob.DefaultPartSize))
		conc = fmt.Sprintf("connectors' defaults: s3 %d, azureblob %d", s3.DefaultConcurrency, azureblob.DefaultConcurrency)
	}
	if c.airlock.PartSize > 0 {
		part = formatSize(c.airlock.PartSize)
	}
	if c.airlock.Concurrency > 0 {
		conc = strconv.Itoa(c.airlock.Concurrency)
	}
	buf := "worker's default: 1MiB"
	if c.airlock.BufferSize > 0 {
		buf = formatSize(c.airlock.BufferSize)
	}
	return map[string]string{"part_size": part, "concurrency": conc, "buffer_size": buf, "staging": "local store"}
}

func settingsLine(s map[string]string) string {
	return fmt.Sprintf("part size %s; concurrency %s; copy buffer %s; staging: %s", s["part_size"], s["concurrency"], s["buffer_size"], s["staging"])
}

// notes are the conditions a reader of the numbers should know.
func notes(c config, base string) []string {
	n := []string{
		"every tool writes into the same folder, " + filepath.Join(base, "target") + ", on the same disk; the servers keep their data under the system's temporary folder",
		"the page cache is not dropped: the servers read the object from memory after the upload, alike for every tool; before each run the bench syncs, so no run pays for another's write-back",
		"Airlock's local staging store fsyncs the file at each checkpoint (every 2 s) and at commit, so its time includes making the copy durable; rclone and aws s3 cp do not fsync: the durable columns add the fsync the bench does after they exit",
		"Airlock hashes the file with SHA-256 while copying; rclone checks the MD5 after copying when the source has one (versitygw's ETag of the single-part upload; Azurite's Content-MD5 only for an object of at most 256 MiB, uploaded in one request, not one uploaded in blocks); aws s3 cp checks nothing on download",
		fmt.Sprintf("the servers (versitygw; Azurite, single-threaded Node.js) run on the same %d cores as the tool measured, and their CPU is not in the tool's CPU s", runtime.NumCPU()),
		"runs are interleaved (each run goes through every tool in turn) so that load from other processes spreads over all of them",
	}
	for _, s := range c.sources {
		if s == model.ConnAzureBlob && slices.Contains(c.tools, toolRclone) {
			n = append(n, "rclone reads Azurite through a container SAS URL signed with the account key: rclone 1.60 cannot send an account key to a custom endpoint")
		}
	}
	return n
}
