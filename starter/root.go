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
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/version"
	"github.com/airlockhq/airlock/workflows"
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

// queryState asks a request's workflow for its state document.
func (a *app) queryState(c client.Client, id string) (model.RequestStatus, error) {
	ctx, cancel := a.ctx()
	defer cancel()
	var st model.RequestStatus
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryState)
	if err != nil {
		return st, explainNotFound(err, id)
	}
	return st, v.Get(&st)
}

func explainNotFound(err error, id string) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("no request %q in this namespace: check the id with `airlock list`", id)
	}
	return err
}

// reason extracts the message a workflow gave for refusing an update.
func reason(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
