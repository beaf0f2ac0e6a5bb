// Command api serves Airlock's HTTP API (/api/v1), its upload endpoint
// (tus 1.0.0 at /api/v1/files/) and the web console. It reaches requests
// through the Temporal server named by the standard TEMPORAL_* environment
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API key), reads and writes
// the stores of the shared config file, and signs people in with OpenID
// Connect (or, for development, the config's directory users).
//
//	go run ./api --config deploy/dev/airlock.yaml [--listen 127.0.0.1:8080] [--public-url URL] [--temporal-ui URL]
//
// JSON API (errors are {"error": {"status": N, "message": "..."}}; 401 for
// an anonymous caller, 403 for one without the capability, 404 alike for a
// missing request and one the caller may not read):
//
//	GET  /healthz                              the process is up
//	GET  /readyz                               Temporal answers and staging lists
//	GET  /api/v1/me                            the caller and their capabilities
//	POST /api/v1/imports                       {"document": YAML, "workspace", "policy"} -> 201 {"id", "state"}
//	GET  /api/v1/requests                      ?state=&kind=&project=&awaiting_role=&mine=true&page_size=&page_token=
//	GET  /api/v1/requests/{id}                 the state document (airlock status -o json)
//	POST /api/v1/requests/{id}/decisions       {"stage", "decision", "comment", "manifest_digest"}
//	POST /api/v1/requests/{id}/cancel          {"reason"}
//	GET  /api/v1/requests/{id}/crate           ro-crate-metadata.json
//	GET  /api/v1/requests/{id}/preview         ?path=FILE&rows=20: first rows of a CSV, TSV or Parquet file
//	POST /api/v1/uploads                       {"project", "workspace", "display_name", "description", "license", "publisher", "policy"} -> 201
//	GET  /api/v1/uploads/{id}/files            the files uploaded so far
//	POST /api/v1/uploads/{id}/confirm          every file is there: the request moves to CHECKING
//	GET  /api/v1/schedules                     the import schedules the caller may see (import:<project> or read:<project>)
//	POST /api/v1/schedules                     {"document", "workspace", "policy", "cron", "id", "note"} -> 201 {"id"}
//	GET  /api/v1/schedules/{id}                one schedule: cron, state, next runs, recent runs, counts
//	POST /api/v1/schedules/{id}/pause          {"note"} (optional); pausing, unpausing and deleting need import:<project>
//	POST /api/v1/schedules/{id}/unpause        {"note"} (optional)
//	DELETE /api/v1/schedules/{id}              the schedule fires no more; imports it started go on
//	POST /api/v1/egress                        {"workspace", "project", "destination", "files", "justification", "policy", "id"} -> 201 {"id", "state"}
//	GET  /api/v1/egress/destinations           the destinations the configuration agrees: name, description, revocable
//	GET  /api/v1/egress/public-key             the release signing key's public half (PEM; key id in Airlock-Key-Id)
//	POST /api/v1/requests/{id}/reviews         {"stage", "turn", "files": [{"path", "verdict", "comment"}], "comment", "manifest_digest"}
//	POST /api/v1/requests/{id}/resubmit        {"files", "comment"}: a new turn of a RETURNED egress
//	POST /api/v1/requests/{id}/withdraw        {"reason"}: the requester withdraws an egress
//	POST /api/v1/requests/{id}/revoke          {"reason"}: remove a RELEASED egress's copies
//	     /api/v1/files/                        tus 1.0.0 (metadata request=<id>, filename=<path>)
//
// Console: / (my requests), /queue, /requests/{id}, /uploads/new,
// /uploads/{id}, /signin; sign-in routes under /auth/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdklog "go.temporal.io/sdk/log"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/config"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/version"
)

// shutdownGrace is how long requests in flight (uploads among them) get to
// finish once the server is told to stop.
const shutdownGrace = 20 * time.Second

func main() {
	var o overrides
	configPath := flag.String("config", os.Getenv("AIRLOCK_CONFIG"), "config file shared with the worker (or AIRLOCK_CONFIG)")
	flag.StringVar(&o.listen, "listen", "", "address to listen on, overriding the config's api.listen (HOST:PORT)")
	flag.StringVar(&o.publicURL, "public-url", "", "the API's address as browsers reach it, overriding api.publicURL")
	flag.StringVar(&o.temporalUI, "temporal-ui", "", "the Temporal UI's base URL, overriding api.temporalUI")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *configPath, o, logger); err != nil {
		fmt.Fprintln(os.Stderr, "airlock api:", err)
		os.Exit(1)
	}
}

// overrides are the flags that replace settings of the config's api block
// (make dev picks a free port, for one).
type overrides struct {
	listen, publicURL, temporalUI string
}

// apply sets the overrides on cfg. A public URL the config left to its
// default (http://<listen>) follows an overridden listen address.
func (o overrides) apply(cfg *config.Config) {
	if o.listen != "" {
		if cfg.API.PublicURL == "http://"+cfg.API.Listen {
			cfg.API.PublicURL = "http://" + o.listen
		}
		cfg.API.Listen = o.listen
	}
	if o.publicURL != "" {
		cfg.API.PublicURL = o.publicURL
	}
	if o.temporalUI != "" {
		cfg.API.TemporalUI = o.temporalUI
	}
}

// run serves until ctx ends (SIGINT, SIGTERM), then drains.
func run(ctx context.Context, configPath string, o overrides, logger *slog.Logger) error {
	if configPath == "" {
		return fmt.Errorf("no config: pass --config FILE (for development: --config deploy/dev/airlock.yaml)")
	}
	cfg, _, err := config.Load(configPath)
	if err != nil {
		return err
	}
	o.apply(cfg)
	staging, workspaces, err := cfg.OpenStores(ctx)
	if err != nil {
		return err
	}
	authn, err := auth.New(ctx, cfg.API.Auth, auth.Options{
		PublicURL:  cfg.API.PublicURL,
		Secrets:    cfg.SecretProvider(),
		DevUsers:   cfg.Directory.Users,
		ListenAddr: cfg.API.Listen,
		Logger:     logger,
	})
	if err != nil {
		return fmt.Errorf("api.auth: %w", err)
	}
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return fmt.Errorf("reading the TEMPORAL_* environment: %w", err)
	}
	opts.Logger = sdklog.NewStructuredLogger(logger)
	if opts.Namespace == "" {
		opts.Namespace = client.DefaultNamespace
	}
	// Dial lazily: the API starts (and answers /healthz, and /readyz with
	// "not ready") while Temporal is still coming up.
	tc, err := client.NewLazyClient(opts)
	if err != nil {
		return fmt.Errorf("Temporal client for %s: %w", addressOf(opts), err)
	}
	defer tc.Close()
	srv, err := newServer(serverConfig{
		Requests:    &requests.Service{Client: tc, TaskQueue: cfg.TaskQueue},
		Schedules:   &requests.Service{Client: tc, TaskQueue: cfg.TaskQueue},
		Egress:      egressSettingsFrom(cfg),
		Auth:        authn,
		Staging:     staging,
		Workspaces:  workspaces,
		Limits:      cfg.Uploads.UploadLimits,
		ExpireAfter: time.Duration(cfg.Uploads.ExpireAfter),
		PublicURL:   cfg.API.PublicURL,
		TemporalUI:  cfg.API.TemporalUI,
		Namespace:   opts.Namespace,
		Ready: func(ctx context.Context) error {
			_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
		Logger: logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen %s: %w (is another process using the port? change api.listen)", cfg.API.Listen, err)
	}
	hs := &http.Server{
		Handler:           srv.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No Read/WriteTimeout: uploads and previews stream for as long
		// as they take; tus resumes a connection that drops.
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	logger.Info("airlock api listening", "url", cfg.API.PublicURL, "listen", ln.Addr().String(), "version", version.Version,
		"auth", authn.Mode(), "temporal", addressOf(opts), "namespace", opts.Namespace, "task_queue", cfg.TaskQueue,
		"staging", staging.URL(""), "workspaces", workspaces.URL(""))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("airlock api stopping: finishing requests in flight", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("stopping: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Uploads in progress keep what they have made durable; they resume.
	if c, ok := srv.uploads.(io.Closer); ok {
		if err := c.Close(); err != nil {
			logger.Warn("closing the upload endpoint", "error", err)
		}
	}
	logger.Info("airlock api stopped")
	return nil
}

func addressOf(o client.Options) string {
	if o.HostPort == "" {
		return client.DefaultHostPort
	}
	return o.HostPort
}
