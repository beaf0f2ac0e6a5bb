package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/azureblob"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/connectors/s3"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

// copyAirlockCmd is the subcommand the bench re-executes itself with to run
// Airlock's copy in a process of its own, so that its peak RSS is Airlock's.
const copyAirlockCmd = "copy-airlock"

// requestID is the request the bench's copies belong to: the staged file
// lands at <staging>/<requestID>/<path>.
const requestID = "bench"

// airlockSettings are the worker settings the Airlock child runs with: the
// connectors' part size and concurrency (worker config
// connectors.s3/azureblob.partSize and .concurrency) and the copy buffer
// (transfer.bufferSize). Zero means the worker's default.
type airlockSettings struct {
	PartSize    int64
	Concurrency int
	BufferSize  int64
}

// airlockOutcome is what the child prints on stdout as JSON.
type airlockOutcome struct {
	Files []model.FileRecord `json:"files"`
	// Staged is the file's path in the staging folder.
	Staged string `json:"staged"`
	// ExtractSeconds is how long ExtractObject itself took (without the
	// process's start and PlanImport).
	ExtractSeconds float64 `json:"extract_seconds"`
}

// runCopyAirlock is `bench copy-airlock`: it copies one file object of a
// connection into a local staging folder through the worker's real code
// path, PlanImport then ExtractObject (run by Temporal's activity test
// environment instead of a worker polling a server), with the source
// registry the worker builds and secrets from AIRLOCK_SECRET_* variables.
func runCopyAirlock(args []string) int {
	fs := flag.NewFlagSet(copyAirlockCmd, flag.ContinueOnError)
	connJSON := fs.String("connection", "", "the data source's connection, as JSON (model.Connection; credentials name secret keys, whose values come from AIRLOCK_SECRET_* variables)")
	path := fs.String("path", "", "the file object's path below the connection (spec.objects[].file.path)")
	staging := fs.String("staging", "", "the local staging folder")
	workDir := fs.String("work", "", "the worker's work folder (for producers; unused by s3 and azureblob)")
	var set airlockSettings
	fs.Var(sizeFlag{&set.PartSize}, "part-size", "connector part size (0: the connector's default)")
	fs.IntVar(&set.Concurrency, "concurrency", 0, "connector concurrency (0: the connector's default)")
	fs.Var(sizeFlag{&set.BufferSize}, "buffer-size", "copy buffer, transfer.bufferSize (0: the default)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the copy to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	out, err := copyAirlock(*connJSON, *path, *staging, *workDir, set, *cpuprofile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", copyAirlockCmd, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", copyAirlockCmd, err)
		return 1
	}
	return 0
}

func copyAirlock(connJSON, path, stagingDir, workDir string, set airlockSettings, cpuprofile string) (airlockOutcome, error) {
	var conn model.Connection
	if err := json.Unmarshal([]byte(connJSON), &conn); err != nil || conn.Type == "" {
		return airlockOutcome{}, fmt.Errorf("-connection: expected a connection as JSON with a type (%v)", err)
	}
	if path == "" || stagingDir == "" {
		return airlockOutcome{}, errors.New("-path and -staging are required")
	}
	provider := &secrets.Provider{} // the environment: AIRLOCK_SECRET_*
	staging, err := localstore.New(stagingDir)
	if err != nil {
		return airlockOutcome{}, err
	}
	defer staging.Close()
	// The same registry and options the worker builds from its config
	// (workers/main.go).
	sources := connectors.Merge(
		s3.Factories(provider, s3.Options{PartSize: set.PartSize, Concurrency: set.Concurrency}),
		azureblob.Factories(provider, azureblob.Options{PartSize: set.PartSize, Concurrency: set.Concurrency}),
	)
	a := &activities.Activities{
		Staging:    staging,
		Workspaces: staging,
		Sources:    sources,
		Secrets:    provider,
		WorkDir:    workDir,
		Transfer:   activities.TransferConfig{BufferSize: int(set.BufferSize)},
	}
	obj := model.Object{File: &model.FileObject{Path: path, Connection: conn.Name}}
	ds := model.DataSource{
		APIVersion: model.APIVersion,
		Kind:       model.KindDataSource,
		Metadata:   model.ObjectMeta{Name: "bench"},
		Spec:       model.DataSourceSpec{Type: model.TypeImport, Connections: []model.Connection{conn}, Objects: []model.Object{obj}},
	}

	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))

	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	val, err := env.ExecuteActivity(a.PlanImport, activities.PlanImportInput{DataSource: ds})
	if err != nil {
		return airlockOutcome{}, fmt.Errorf("PlanImport: %w", err)
	}
	var plan activities.PlanImportResult
	if err := val.Get(&plan); err != nil {
		return airlockOutcome{}, err
	}
	if len(plan.Objects) != 1 {
		return airlockOutcome{}, fmt.Errorf("PlanImport planned %d objects, want 1", len(plan.Objects))
	}

	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return airlockOutcome{}, fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return airlockOutcome{}, fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	env = suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	val, err = env.ExecuteActivity(a.ExtractObject, activities.ExtractObjectInput{
		RequestID:  requestID,
		Connection: conn,
		Object:     obj,
		Index:      0,
		Items:      plan.Objects[0].Items,
	})
	if err != nil {
		return airlockOutcome{}, fmt.Errorf("ExtractObject: %w", err)
	}
	var res activities.ExtractObjectResult
	if err := val.Get(&res); err != nil {
		return airlockOutcome{}, err
	}
	if len(res.Files) != 1 {
		return airlockOutcome{}, fmt.Errorf("ExtractObject staged %d files, want 1", len(res.Files))
	}
	return airlockOutcome{
		Files:          res.Files,
		Staged:         filepath.Join(staging.Root(), activities.StagingPrefix(requestID), filepath.FromSlash(res.Files[0].Path)),
		ExtractSeconds: res.Extraction.EndedAt.Sub(res.Extraction.StartedAt).Seconds(),
	}, nil
}
