package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// child is one process to time: argv and the environment variables it adds
// to the bench's own (secrets among them, never in argv).
type child struct {
	argv []string
	env  []string
}

// String is the command line, for the report.
func (c child) String() string { return strings.Join(c.argv, " ") }

// runChild runs c to its end and measures it: wall time from start to exit,
// and from the kernel's accounting of that process (wait4's rusage) its
// peak resident set and CPU time. size is the number of bytes it copied,
// for MB/s (10^6 bytes per second). A failed child is an error carrying its
// output.
func runChild(ctx context.Context, c child, size int64) (Run, []byte, error) {
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Env = append(inheritedEnv(), c.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return Run{}, nil, fmt.Errorf("%s: %w\nstdout:\n%s\nstderr:\n%s", c, err, tail(stdout.Bytes()), tail(stderr.Bytes()))
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return Run{}, nil, fmt.Errorf("%s: the kernel reported no resource usage for the process", c)
	}
	secs := elapsed.Seconds()
	return Run{
		Seconds:      secs,
		MBps:         float64(size) / secs / 1e6,
		PeakRSSBytes: ru.Maxrss * 1024, // Linux reports KiB
		UserCPU:      time.Duration(ru.Utime.Nano()).Seconds(),
		SysCPU:       time.Duration(ru.Stime.Nano()).Seconds(),
	}, stdout.Bytes(), nil
}

// inheritedEnv is the bench's environment without the variables that would
// steer a tool elsewhere than the bench's servers: AWS and rclone settings
// and Airlock secrets of the caller's own.
func inheritedEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "RCLONE_") || strings.HasPrefix(kv, "AIRLOCK_SECRET_") || strings.HasPrefix(kv, "AZURE_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// tail is the end of a tool's output, enough to see why it failed.
func tail(b []byte) string {
	const n = 4000
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// fileSHA256 hashes a file and returns its size too.
func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// syncFile makes path's data durable (fsync) and then its folder's entry.
func syncFile(path string) error {
	for _, p := range []string{path, filepath.Dir(path)} {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("fsync %s: %w", p, err)
		}
	}
	return nil
}

// loadAverage is /proc/loadavg's three load averages, for the report.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
