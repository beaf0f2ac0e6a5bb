// Command dev runs Airlock for development on one machine: the Temporal dev
// server (pinned CLI, SQLite under .airlock/, Airlock's search attributes
// registered, Temporal UI) and an Airlock worker with deploy/dev/airlock.yaml.
// Ctrl-C stops everything it started.
//
//	make dev            # or: go run ./deploy/dev
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/airlockhq/airlock/workflows"
)

func main() {
	port := flag.Int("port", 7233, "Temporal frontend port (a free one is chosen if it is taken)")
	uiPort := flag.Int("ui-port", 8233, "Temporal UI port (a free one is chosen if it is taken)")
	config := flag.String("config", "deploy/dev/airlock.yaml", "worker config")
	flag.Parse()
	// .airlock/ holds the dev server's database, logs and binaries; the
	// stores are wherever the worker config puts them (.airlock/ too).
	if err := run(*port, *uiPort, *config, ".airlock"); err != nil {
		fmt.Fprintln(os.Stderr, "airlock dev:", err)
		os.Exit(1)
	}
}

func run(port, uiPort int, config, state string) error {
	if _, err := os.Stat("go.mod"); err != nil {
		return errors.New("run from the repository's top folder (where go.mod is): make dev")
	}
	cache := os.Getenv("AIRLOCK_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "airlock")
	}
	if err := step("installing pinned tools", exec.Command("deploy/tools/install.sh", "temporal")); err != nil {
		return err
	}
	temporalCLI := filepath.Join(cache, "bin", "temporal")
	if err := os.MkdirAll(filepath.Join(state, "bin"), 0o755); err != nil {
		return err
	}
	workerBin := filepath.Join(state, "bin", "airlock-worker")
	if err := step("building the worker", exec.Command("go", "build", "-o", workerBin, "./workers")); err != nil {
		return err
	}
	if err := step("building the airlock CLI into bin/airlock", exec.Command("go", "build", "-o", "bin/airlock", "./starter")); err != nil {
		return err
	}
	port, uiPort = freeOr(port), freeOr(uiPort)
	addr := "127.0.0.1:" + strconv.Itoa(port)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(port),
		"--ui-port", strconv.Itoa(uiPort), "--db-filename", filepath.Join(state, "temporal.db"),
		"--log-level", "warn", "--namespace", "default"}
	for _, sa := range workflows.SearchAttributeNames {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	serverLog, err := os.Create(filepath.Join(state, "temporal.log"))
	if err != nil {
		return err
	}
	defer serverLog.Close()
	server := exec.Command(temporalCLI, args...)
	server.Stdout, server.Stderr = serverLog, serverLog
	serverDone, err := startGroup("Temporal dev server", server)
	if err != nil {
		return err
	}
	defer terminate("Temporal dev server", server, serverDone)
	if err := waitReady(ctx, addr, serverDone); err != nil {
		return fmt.Errorf("%w (see %s)", err, serverLog.Name())
	}

	worker := exec.Command(workerBin, "--config", config)
	worker.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+addr, "TEMPORAL_NAMESPACE=default")
	worker.Stdout, worker.Stderr = os.Stdout, os.Stderr
	workerDone, err := startGroup("worker", worker)
	if err != nil {
		return err
	}
	defer terminate("worker", worker, workerDone)

	envFile := filepath.Join(state, "env")
	_ = os.WriteFile(envFile, []byte("export TEMPORAL_ADDRESS="+addr+"\nexport TEMPORAL_NAMESPACE=default\n"), 0o644)
	fmt.Printf(`
Airlock is running.
  Temporal UI:      http://127.0.0.1:%d/namespaces/default/workflows
  Temporal server:  %s (namespace default; data in %s)
  Worker config:    %s

In another terminal:
  source %s        # sets TEMPORAL_ADDRESS for the CLI
  bin/airlock import -f examples/datasources/sample-file.yaml --as rita --wait

Ctrl-C stops everything.
`, uiPort, addr, filepath.Join(state, "temporal.db"), config, envFile)

	select {
	case <-ctx.Done():
		fmt.Println("\nstopping...")
		return nil
	case err := <-serverDone:
		return fmt.Errorf("the Temporal dev server stopped: %v (see %s)", err, serverLog.Name())
	case err := <-workerDone:
		return fmt.Errorf("the worker stopped: %v", err)
	}
}

func step(what string, cmd *exec.Cmd) error {
	fmt.Fprintf(os.Stderr, "%s...\n", what)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// freeOr returns port if nothing listens on it, or else a free port.
func freeOr(port int) int {
	if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
		l.Close()
		return port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return port
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitReady(ctx context.Context, addr string, died <-chan error) error {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-died:
			return fmt.Errorf("the Temporal dev server exited during start-up: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		c, err := client.Dial(client.Options{HostPort: addr, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	return errors.New("the Temporal dev server did not become ready within 90s")
}

// startGroup starts cmd in its own process group (so terminate reaches its
// children too) and reports its exit on the returned channel.
func startGroup(name string, cmd *exec.Cmd) (<-chan error, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done, nil
}

// terminate stops a child process group: SIGTERM, then SIGKILL after 10s.
func terminate(name string, cmd *exec.Cmd, done <-chan error) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fmt.Fprintf(os.Stderr, "%s did not stop in 10s; killing it\n", name)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
