package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/workflows"
)

func (a *app) importCmd() *cobra.Command {
	var files []string
	var workspace, as, policy string
	var wait bool
	taskQueue := workflows.TaskQueue
	if q := os.Getenv("AIRLOCK_TASK_QUEUE"); q != "" {
		taskQueue = q
	}
	cmd := &cobra.Command{
		Use:   "import -f FILE --as USER [--workspace W]",
		Short: "Start an import of a data source into quarantine, for approval",
		Long: `import validates the data source document, then starts an import request and
prints its id. The workspace comes from --workspace or from an
AnalyticsWorkspaceDataBinding for the data source in the given files.
With --wait it shows progress until the data is in quarantine and the request
leaves EXTRACTING.`,
		Example: `  airlock import -f examples/datasources/sample-file.yaml --workspace advanced-generic-workspace --as rita
  airlock import -f datasource.yaml -f binding.yaml --as rita --policy two-person-import --wait
  ID=$(airlock import -f examples/datasources/sample-file.yaml --workspace advanced-generic-workspace --as rita)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(as) == "" {
				return fmt.Errorf("--as: missing: say who is asking for the import")
			}
			docs, err := readDocuments(files)
			if err != nil {
				if fe, ok := model.AsFieldErrors(err); ok {
					for _, e := range fe {
						fmt.Fprintln(a.errOut, e.Error())
					}
					fmt.Fprintf(a.errOut, "%d problem(s) found; nothing was started\n", len(fe))
					return &exitError{err}
				}
				return err
			}
			if len(docs.DataSources) != 1 {
				return fmt.Errorf("-f: expected exactly one AnalyticsWorkspaceDataSource, found %d: import one data source at a time", len(docs.DataSources))
			}
			ds := docs.DataSources[0]
			if ds.Spec.Type != model.TypeImport {
				return fmt.Errorf("%s: spec.type is %s: only %s data sources are imported; %s ones arrive by upload", ds.Metadata.Name, ds.Spec.Type, model.TypeImport, model.TypeUploaded)
			}
			binding := ""
			for _, b := range docs.Bindings {
				if b.Spec.DataSource != ds.Metadata.Name {
					continue
				}
				if workspace != "" && workspace != b.Spec.Workspace {
					return fmt.Errorf("--workspace %s contradicts binding %s, which binds %s to workspace %s: drop one of them", workspace, b.Metadata.Name, ds.Metadata.Name, b.Spec.Workspace)
				}
				workspace, binding = b.Spec.Workspace, b.Metadata.Name
			}
			if workspace == "" {
				return fmt.Errorf("--workspace: missing: name the workspace the data is for, or pass an AnalyticsWorkspaceDataBinding with -f")
			}
			if !model.ValidName(workspace) {
				return fmt.Errorf("--workspace %q: %s", workspace, model.NameRule)
			}
			svc, err := a.connect(taskQueue)
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			ctx, cancel := a.ctx()
			defer cancel()
			id, err := svc.StartImport(ctx, requests.StartImport{
				DataSource: ds, Workspace: workspace, Binding: binding, Requester: as, Policy: policy, Via: "cli",
			})
			if err != nil {
				return explain(err, "")
			}
			if !wait {
				if a.output == "json" {
					return a.printJSON(map[string]string{"id": id, "state": string(model.StateExtracting)})
				}
				fmt.Fprintln(a.out, id)
				return nil
			}
			if a.output == "text" {
				fmt.Fprintln(a.out, id)
			}
			st, err := a.follow(svc, id)
			if err != nil {
				return err
			}
			if a.output == "json" {
				if err := a.printJSON(st); err != nil {
					return err
				}
			} else {
				printStatusLine(a.errOut, st)
			}
			if st.State.Terminal() && st.State != model.StateCompleted {
				// The import ended before reaching approval: say so in the exit code.
				return &exitError{fmt.Errorf("import ended %s", st.State)}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "YAML file with the data source (and optionally its binding); repeatable")
	cmd.Flags().StringVar(&workspace, "workspace", "", "workspace the data is for (or give a binding with -f)")
	cmd.Flags().StringVar(&as, "as", "", "who is asking (recorded as the requester; the requester never approves)")
	cmd.Flags().StringVar(&policy, "policy", "", "approval policy to use, among those the project allows (default: the project's default)")
	cmd.Flags().BoolVar(&wait, "wait", false, "show progress until the data is in quarantine")
	cmd.Flags().StringVar(&taskQueue, "task-queue", taskQueue, "task queue of the Airlock workers (or AIRLOCK_TASK_QUEUE); must match the worker config's taskQueue")
	return cmd
}

// follow shows extraction progress until the request leaves EXTRACTING.
func (a *app) follow(svc *requests.Service, id string) (model.RequestStatus, error) {
	start := time.Now()
	lastPrint := time.Time{}
	for {
		st, err := a.status(svc, id)
		if err != nil {
			return st, err
		}
		if st.State != model.StateExtracting {
			fmt.Fprintf(a.errOut, "\r%-120s\r", "")
			return st, nil
		}
		done := st.Progress.BytesDone
		producing := "" // the latest line of a producer (a query, a pipeline) still running
		ctx, cancel := a.ctx()
		live, err := svc.InFlight(ctx, id)
		cancel()
		if err == nil {
			done += live.BytesDone
			producing = live.Producing
		}
		if time.Since(lastPrint) >= time.Second {
			lastPrint = time.Now()
			pct := 0.0
			if st.Progress.BytesTotal > 0 {
				pct = 100 * float64(done) / float64(st.Progress.BytesTotal)
			}
			line := fmt.Sprintf("EXTRACTING  %d/%d objects  %s / %s  (%.0f%%)  %s elapsed",
				st.Progress.ObjectsDone, st.Progress.ObjectsTotal, model.FormatBytes(done), model.FormatBytes(st.Progress.BytesTotal), pct, time.Since(start).Round(time.Second))
			if producing != "" {
				line += "  " + producing
			}
			if len(line) > 120 {
				line = line[:117] + "..."
			}
			fmt.Fprintf(a.errOut, "\r%-120s", line)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
