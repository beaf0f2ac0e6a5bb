// Package testservers starts the real servers Airlock's tests and benchmarks
// run against (versitygw for S3, Azurite for Azure Blob) as child processes
// on free loopback ports, and stops them. deploy/tools/install.sh installs
// the pinned builds into $AIRLOCK_CACHE/bin; Tool finds them there.
//
// On a developer's machine without a tool, tests skip with the install
// command; under CI=true they fail instead, so a missing install step can
// never pass as green.
package testservers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cache is where deploy/tools/install.sh puts the pinned tools:
// $AIRLOCK_CACHE, else ~/.cache/airlock.
func Cache() string {
	if c := os.Getenv("AIRLOCK_CACHE"); c != "" {
		return c
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "airlock")
}

// Tool returns the path of a pinned tool in $AIRLOCK_CACHE/bin, or an error
// that says how to install it.
func Tool(name string) (string, error) {
	p := filepath.Join(Cache(), "bin", name)
	if st, err := os.Stat(p); err == nil && !st.IsDir() {
		return p, nil
	}
	return "", fmt.Errorf("%s is not installed at %s: run deploy/tools/install.sh", name, p)
}

// Unavailable skips t with why on a developer's machine and fails it under
// CI=true, where every real server must be there.
func Unavailable(t testing.TB, why error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("under CI the real servers are required: %v", why)
	}
	t.Skipf("skipping: %v", why)
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a server running as a child process.
type Process struct {
	Name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error

	stopOnce sync.Once
}

// StartProcess runs bin with args (in its own process group) and waits until
// ready returns nil, the process dies, or timeout passes.
func StartProcess(name, bin string, args, env []string, ready func(context.Context) error, timeout time.Duration) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &Process{Name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		err := ready(ctx)
		if err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready (%v); its output:\n%s", name, p.err, out.String())
		case <-ctx.Done():
			p.Stop()
			return nil, fmt.Errorf("%s was not ready after %s (%v); its output:\n%s", name, timeout, err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Output is what the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Pid is the server's process id (for peak-RSS measurements and kills).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop ends the process group: SIGTERM, then SIGKILL after five seconds.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
}

// DialReady is a readiness check that succeeds once addr accepts TCP connections.
func DialReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// HostPort joins 127.0.0.1 and port.
func HostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 { // keep the last output, not all of it
		b.b.Reset()
	}
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// ErrNotReady is what a readiness check returns before the server answers.
var ErrNotReady = errors.New("not ready yet")
