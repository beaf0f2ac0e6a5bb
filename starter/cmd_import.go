package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
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
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			id := newRequestID(ds.Metadata.Name)
			in := workflows.ImportInput{DataSource: ds, Workspace: workspace, Requester: as, Policy: policy, Binding: binding, Via: "cli"}
			ctx, cancel := a.ctx()
			defer cancel()
			_, err = c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID:        id,
				TaskQueue: taskQueue,
				TypedSearchAttributes: temporal.NewSearchAttributes(
					workflows.KeyKind.ValueSet(string(model.KindImport)),
					workflows.KeyState.ValueSet(string(model.StateExtracting)),
					workflows.KeyProject.ValueSet(ds.Spec.Project.ID),
					workflows.KeyDataSource.ValueSet(ds.Metadata.Name),
					workflows.KeyWorkspace.ValueSet(workspace),
					workflows.KeyRequester.ValueSet(as),
				),
				StaticSummary: fmt.Sprintf("Import %s into workspace %s (project %s), asked by %s", ds.Metadata.Name, workspace, ds.Spec.Project.ID, as),
				StaticDetails: staticDetails(ds, workspace, as, policy),
			}, workflows.ImportWorkflowName, in)
			if err != nil {
				if strings.Contains(err.Error(), "search attribute") {
					return fmt.Errorf("starting the import: %v (register Airlock's search attributes: `make dev` does, or run `temporal operator search-attribute create --name %s --type Keyword` for each of %s)", err, workflows.SearchAttrKind, strings.Join(workflows.SearchAttributeNames, ", "))
				}
				return fmt.Errorf("starting the import: %w", err)
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
			st, err := a.follow(c, id)
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

func staticDetails(ds model.DataSource, workspace, as, policy string) string {
	var b strings.Builder
	s := ds.Spec
	fmt.Fprintf(&b, "**%s**\n\n%s\n\n", s.DisplayName, strings.TrimSpace(s.Description))
	fmt.Fprintf(&b, "- data source: `%s`\n- publisher: %s (contact %s)\n- project: `%s`\n- workspace: `%s`\n- requested by: %s\n", ds.Metadata.Name, s.Publisher.Organisation, s.Publisher.Contact.Name, s.Project.ID, workspace, as)
	if policy != "" {
		fmt.Fprintf(&b, "- policy requested: `%s`\n", policy)
	}
	b.WriteString("\nObjects:\n")
	for _, o := range s.Objects {
		conn, _ := ds.Connection(o.ConnectionName())
		fmt.Fprintf(&b, "- %s from %s connection `%s`\n", o.Describe(), conn.Type, conn.Name)
	}
	return b.String()
}

// newRequestID makes a readable, unique request id: import-<datasource>-<6 chars>.
func newRequestID(datasource string) string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	buf := make([]byte, 6)
	_, _ = rand.Read(buf)
	for i := range buf {
		buf[i] = alphabet[int(buf[i])%len(alphabet)]
	}
	return "import-" + datasource + "-" + string(buf)
}

// follow shows extraction progress until the request leaves EXTRACTING.
func (a *app) follow(c client.Client, id string) (model.RequestStatus, error) {
	start := time.Now()
	lastPrint := time.Time{}
	for {
		st, err := a.queryState(c, id)
		if err != nil {
			return st, err
		}
		if st.State != model.StateExtracting {
			fmt.Fprintf(a.errOut, "\r%-120s\r", "")
			return st, nil
		}
		done := st.Progress.BytesDone
		inflight := 0
		producing := "" // the latest line of a producer (a query, a pipeline) still running
		ctx, cancel := a.ctx()
		desc, err := c.DescribeWorkflowExecution(ctx, id, "")
		cancel()
		if err == nil {
			for _, pa := range desc.PendingActivities {
				if pa.GetActivityType().GetName() != "ExtractObject" || pa.HeartbeatDetails == nil {
					continue
				}
				var p activities.ExtractProgress
				if converter.GetDefaultDataConverter().FromPayloads(pa.HeartbeatDetails, &p) == nil {
					done += p.BytesDone
					inflight++
					if p.Phase == activities.PhaseProducing && p.Message != "" {
						producing = p.Message
					}
				}
			}
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
