package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdklog "go.temporal.io/sdk/log"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/version"
)

// app holds what every command shares.
type app struct {
	out, errOut io.Writer
	output      string // text or json
	timeout     time.Duration
	dial        func() (client.Client, error)
}

func newRootCmd(out, errOut io.Writer) *cobra.Command {
	return newApp(out, errOut).rootCmd()
}

func newApp(out, errOut io.Writer) *app {
	a := &app{out: out, errOut: errOut}
	a.dial = a.defaultDial
	return a
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "airlock",
		Short: "Move research data into secure workspaces through human approval gates",
		Long: `airlock starts and follows Airlock requests: imports of data sources into a
quarantined staging area, their approval stage by stage, and their release into a workspace.

It reaches Temporal through the standard environment: TEMPORAL_ADDRESS (default
127.0.0.1:7233), TEMPORAL_NAMESPACE (default "default"), TEMPORAL_API_KEY and the
TEMPORAL_TLS_* variables, or a profile in TEMPORAL_CONFIG_FILE.`,
		Example: `  airlock validate -f examples/datasources/sample-file.yaml
  airlock import -f examples/datasources/sample-file.yaml --workspace advanced-generic-workspace --as rita --wait
  airlock status import-sample-clinic-extract-x7k2m9
  airlock approve import-sample-clinic-extract-x7k2m9 --stage data-engineering --as dana --comment "schema checked"`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version,
	}
	root.SetOut(a.out)
	root.SetErr(a.errOut)
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "text", "output format: text or json")
	root.PersistentFlags().DurationVar(&a.timeout, "timeout", 30*time.Second, "how long to wait for the Temporal server on each call")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if a.output != "text" && a.output != "json" {
			return fmt.Errorf("--output %q: expected text or json", a.output)
		}
		return nil
	}
	root.AddCommand(a.validateCmd(), a.importCmd(), a.statusCmd(), a.listCmd(),
		a.decideCmd(model.Approve), a.decideCmd(model.Reject), a.cancelCmd())
	root.AddCommand(a.egressCmd())
	root.AddCommand(a.revokeCmd())
	root.AddCommand(a.scheduleCmd())
	return root
}

func (a *app) defaultDial() (client.Client, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return nil, fmt.Errorf("reading the TEMPORAL_* environment: %w", err)
	}
	opts.Logger = sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)) // keep SDK logs off a person's terminal
	addr := opts.HostPort
	if addr == "" {
		addr = client.DefaultHostPort
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Temporal at %s: %v (start it with `make dev`, or set TEMPORAL_ADDRESS)", addr, err)
	}
	return c, nil
}

func (a *app) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), a.timeout)
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// connect dials Temporal and returns the requests service over it; close
// its client when done.
func (a *app) connect(taskQueue string) (*requests.Service, error) {
	c, err := a.dial()
	if err != nil {
		return nil, err
	}
	return &requests.Service{Client: c, TaskQueue: taskQueue}, nil
}

// status reads a request's state document.
func (a *app) status(svc *requests.Service, id string) (model.RequestStatus, error) {
	ctx, cancel := a.ctx()
	defer cancel()
	st, err := svc.Status(ctx, id)
	return st, explain(err, id)
}

// explain puts the requests package's errors in the CLI's words.
func explain(err error, id string) error {
	if errors.Is(err, requests.ErrNotFound) {
		return fmt.Errorf("no request %q in this namespace: check the id with `airlock list`", id)
	}
	var fe *requests.FieldError
	if errors.As(err, &fe) {
		return flagError(fe)
	}
	return err
}

// flags names the flag that carries each field the requests package may
// refuse.
var flags = map[string]string{
	"state": "--state", "kind": "--kind", "project": "--project", "awaiting_role": "--awaiting-role",
	"workspace": "--workspace", "requester": "--as",
}

// flagError names the flag that carries a refused field, when there is one.
func flagError(fe *requests.FieldError) error {
	named := *fe
	if flag, ok := flags[fe.Field]; ok {
		named.Field = flag
	}
	return &named
}

// refusal prints why the server refused an update and exits 1; other
// errors go up as they are.
func (a *app) refusal(err error, id string) error {
	var refused *requests.RefusedError
	if errors.As(err, &refused) || errors.Is(err, requests.ErrNotFound) {
		err = explain(err, id)
		fmt.Fprintf(a.errOut, "refused: %s\n", err)
		return &exitError{err}
	}
	return explain(err, id)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
