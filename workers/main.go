// Command worker runs Airlock's workflows and activities: it polls the
// airlock task queue of the Temporal server named by the standard TEMPORAL_*
// environment (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API key).
//
//	go run ./workers --config deploy/dev/airlock.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/config"
	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/azureblob"
	"github.com/airlockhq/airlock/connectors/databricks"
	"github.com/airlockhq/airlock/connectors/dlt"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/connectors/s3"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/version"
	"github.com/airlockhq/airlock/workflows"
)

func main() {
	configPath := flag.String("config", os.Getenv("AIRLOCK_CONFIG"), "worker config file (or AIRLOCK_CONFIG)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(*configPath, logger); err != nil {
		fmt.Fprintln(os.Stderr, "airlock worker:", err)
		os.Exit(1)
	}
}

func run(configPath string, logger *slog.Logger) error {
	if configPath == "" {
		return fmt.Errorf("no config: pass --config FILE (for development: --config deploy/dev/airlock.yaml)")
	}
	cfg, book, err := config.Load(configPath)
	if err != nil {
		return err
	}
	acts, err := NewActivities(cfg, &book)
	if err != nil {
		return err
	}
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return fmt.Errorf("reading the TEMPORAL_* environment: %w", err)
	}
	opts.Logger = sdklog.NewStructuredLogger(logger)
	c, err := client.Dial(opts)
	if err != nil {
		return fmt.Errorf("connecting to Temporal at %s: %w (is the server running? set TEMPORAL_ADDRESS)", addressOf(opts), err)
	}
	defer c.Close()
	acts.Temporal = c
	w := worker.New(c, cfg.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize: cfg.MaxConcurrentActivities,
		// Send each copy checkpoint to the server when it is made, not
		// batched for 80% of the heartbeat timeout: a crash then loses at
		// most one checkpoint interval of copying.
		MaxHeartbeatThrottleInterval: time.Duration(cfg.Transfer.CheckpointEvery),
		WorkerStopTimeout:            10 * time.Second,
	})
	Register(w, acts)
	logger.Info("airlock worker starting", "version", version.Version, "address", addressOf(opts), "namespace", opts.Namespace,
		"task_queue", cfg.TaskQueue, "staging", acts.Staging.URL(""), "workspaces", acts.Workspaces.URL(""),
		"policies", len(book.Policies))
	return w.Run(worker.InterruptCh())
}

// Register registers every workflow and activity on w.
func Register(w worker.Registry, acts *activities.Activities) {
	w.RegisterWorkflowWithOptions(workflows.ImportWorkflow, workflow.RegisterOptions{Name: workflows.ImportWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.UploadWorkflow, workflow.RegisterOptions{Name: workflows.UploadWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.EgressWorkflow, workflow.RegisterOptions{Name: workflows.EgressWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.RetentionWorkflow, workflow.RegisterOptions{Name: workflows.RetentionWorkflowName})
	w.RegisterWorkflowWithOptions(workflows.ScheduledImportWorkflow, workflow.RegisterOptions{Name: workflows.ScheduledImportWorkflowName})
	w.RegisterActivity(acts)
}

// NewActivities builds the activities' dependencies from the config: the
// secret provider, the stores (local folders, S3 or Azure Blob), the egress
// destinations and signing key name, and every source connector this
// worker serves.
func NewActivities(cfg *config.Config, book *model.PolicyBook) (*activities.Activities, error) {
	provider := cfg.SecretProvider()
	staging, workspaces, err := cfg.OpenStores(context.Background())
	if err != nil {
		return nil, err
	}
	destinations, err := cfg.OpenDestinations(context.Background())
	if err != nil {
		return nil, err
	}
	return &activities.Activities{
		Staging:    staging,
		Workspaces: workspaces,
		Sources: connectors.Merge(
			file.Factories(file.Config{FileRoot: cfg.Sources.FileRoot, PVCRoot: cfg.Sources.PVCRoot}),
			s3.Factories(provider, cfg.S3Options()),
			azureblob.Factories(provider, cfg.AzureBlobOptions()),
			databricks.Factories(provider, databricks.Options{DefaultWarehouseID: cfg.Connectors.Databricks.WarehouseID}),
			dlt.Factories(provider, dlt.Options{Python: cfg.Connectors.DLT.Python, FileRoot: cfg.Connectors.DLT.FileRoot}),
		),
		Policies:     book,
		Secrets:      provider,
		WorkDir:      cfg.WorkDir,
		Destinations: destinations,
		SigningKey:   cfg.Egress.SigningKey,
		Transfer: activities.TransferConfig{
			BufferSize:        cfg.Transfer.BufferSize,
			CheckpointEvery:   time.Duration(cfg.Transfer.CheckpointEvery),
			MaxBytesPerSecond: cfg.Transfer.MaxBytesPerSecond,
		},
	}, nil
}

func addressOf(o client.Options) string {
	if o.HostPort == "" {
		return client.DefaultHostPort
	}
	return o.HostPort
}
