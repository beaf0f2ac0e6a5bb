package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/workflows"
)

// scheduleCmd groups the commands that manage import schedules.
func (a *app) scheduleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "Import a data source on a timetable (create, list, show, pause, unpause, delete)",
		Long: `A schedule imports a data source again and again, on a cron timetable. Each time
it fires, it starts an import exactly as airlock import does (same document,
workspace, requester and policy; each import awaits its own approvals), unless
an import of the data source is still running: then that run is skipped and
recorded, and the next run tries again.`,
		Example: `  airlock schedule create -f examples/datasources/sample-file.yaml --workspace advanced-generic-workspace --cron "0 2 * * *" --as rita --note "nightly extract"
  airlock schedule list
  airlock schedule pause import-sample-clinic-extract --as rita --note "source under maintenance"
  airlock schedule unpause import-sample-clinic-extract --as rita
  airlock schedule delete import-sample-clinic-extract`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("schedule: name a subcommand: create, list, show, pause, unpause or delete (airlock schedule --help)")
		},
	}
	cmd.AddCommand(a.scheduleCreateCmd(), a.scheduleListCmd(), a.scheduleShowCmd(),
		a.schedulePauseCmd(true), a.schedulePauseCmd(false), a.scheduleDeleteCmd())
	return cmd
}

func (a *app) scheduleCreateCmd() *cobra.Command {
	var files []string
	var id, cron, workspace, as, policy, binding, note string
	taskQueue := workflows.TaskQueue
	if q := os.Getenv("AIRLOCK_TASK_QUEUE"); q != "" {
		taskQueue = q
	}
	cmd := &cobra.Command{
		Use:   "create -f FILE --cron EXPR --as USER [--workspace W] [--id ID] [--policy P] [--binding B] [--note N]",
		Short: "Create a schedule that imports a data source on a cron timetable",
		Long: `create validates the data source document as airlock import does, then creates a
schedule and prints its id (default import-<data source>). Each time the
schedule fires it starts an import requested by --as, unless an import of the
data source is still running.

--cron is in UTC unless prefixed with CRON_TZ=<zone>: 5 fields (minute hour
day-of-month month day-of-week), 6 (with a year) or 7 (seconds first); or
@hourly, @daily, @weekly, @monthly, @yearly, @every <interval>.`,
		Example: `  airlock schedule create -f examples/datasources/sample-file.yaml --workspace advanced-generic-workspace --cron "0 2 * * *" --as rita
  airlock schedule create -f datasource.yaml -f binding.yaml --cron "CRON_TZ=Europe/London 30 6 * * MON-FRI" --as rita --policy two-person-import --note "weekday refresh"
  airlock schedule create -f datasource.yaml --workspace ws --cron @weekly --as rita --id weekly-clinic-extract`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(as) == "" {
				return fmt.Errorf("--as: missing: say who asks for the imports (recorded as the requester of each)")
			}
			if strings.TrimSpace(cron) == "" {
				return fmt.Errorf("--cron: missing: say when to import, e.g. --cron \"0 2 * * *\" (02:00 UTC daily) or --cron @daily")
			}
			if id != "" && !model.ValidName(id) {
				return fmt.Errorf("--id %q: %s", id, model.NameRule)
			}
			if binding != "" && !model.ValidName(binding) {
				return fmt.Errorf("--binding %q: not a binding name: %s", binding, model.NameRule)
			}
			docs, err := readDocuments(files)
			if err != nil {
				if fe, ok := model.AsFieldErrors(err); ok {
					for _, e := range fe {
						fmt.Fprintln(a.errOut, e.Error())
					}
					fmt.Fprintf(a.errOut, "%d problem(s) found; no schedule was created\n", len(fe))
					return &exitError{err}
				}
				return err
			}
			if len(docs.DataSources) != 1 {
				return fmt.Errorf("-f: expected exactly one AnalyticsWorkspaceDataSource, found %d: schedule one data source at a time", len(docs.DataSources))
			}
			ds := docs.DataSources[0]
			if ds.Spec.Type != model.TypeImport {
				return fmt.Errorf("%s: spec.type is %s: only %s data sources are imported; %s ones arrive by upload", ds.Metadata.Name, ds.Spec.Type, model.TypeImport, model.TypeUploaded)
			}
			for _, b := range docs.Bindings {
				if b.Spec.DataSource != ds.Metadata.Name {
					continue
				}
				if workspace != "" && workspace != b.Spec.Workspace {
					return fmt.Errorf("--workspace %s contradicts binding %s, which binds %s to workspace %s: drop one of them", workspace, b.Metadata.Name, ds.Metadata.Name, b.Spec.Workspace)
				}
				if binding != "" && binding != b.Metadata.Name {
					return fmt.Errorf("--binding %s contradicts the binding document %s given with -f: drop one of them", binding, b.Metadata.Name)
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
			created, err := svc.CreateSchedule(ctx, requests.CreateSchedule{
				ID: id, Cron: cron, Note: note,
				Import: requests.StartImport{DataSource: ds, Workspace: workspace, Binding: binding, Requester: as, Policy: policy, Via: "cli"},
			})
			if err != nil {
				return explainSchedule(err, id, "--id")
			}
			if a.output == "json" {
				return a.printJSON(map[string]string{"id": created})
			}
			fmt.Fprintln(a.out, created)
			next := ""
			if sum, err := svc.Schedule(ctx, created); err == nil && len(sum.NextRuns) > 0 {
				next = "; next run " + sum.NextRuns[0].Local().Format("2006-01-02 15:04 MST")
			}
			fmt.Fprintf(a.errOut, "schedule %s imports %s into workspace %s for %s at %q%s\n", created, ds.Metadata.Name, workspace, as, cron, next)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "YAML file with the data source (and optionally its binding); repeatable")
	cmd.Flags().StringVar(&cron, "cron", "", "when to import: a cron expression, UTC unless prefixed CRON_TZ=<zone> (e.g. \"0 2 * * *\", @daily)")
	cmd.Flags().StringVar(&as, "as", "", "who asks for the imports (recorded as the requester of each; the requester never approves)")
	cmd.Flags().StringVar(&workspace, "workspace", "", "workspace the data is for (or give a binding with -f)")
	cmd.Flags().StringVar(&id, "id", "", "the schedule's id (default import-<data source>)")
	cmd.Flags().StringVar(&policy, "policy", "", "approval policy of each import, among those the project allows (default: the project's default)")
	cmd.Flags().StringVar(&binding, "binding", "", "name of the AnalyticsWorkspaceDataBinding recorded at release (default: the one given with -f, else dsb-<data source>)")
	cmd.Flags().StringVar(&note, "note", "", "why the schedule exists (shown by airlock schedule list)")
	cmd.Flags().StringVar(&taskQueue, "task-queue", taskQueue, "task queue of the Airlock workers (or AIRLOCK_TASK_QUEUE); must match the worker config's taskQueue")
	return cmd
}

func (a *app) scheduleListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List import schedules: timetable, state, next run and how many runs started or skipped imports",
		Long: `list shows every import schedule. A schedule just created or deleted shows (or
goes) a moment later; each schedule's state is current.`,
		Example: `  airlock schedule list
  airlock schedule list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.connect("")
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			ctx, cancel := a.ctx()
			defer cancel()
			all, err := svc.ListSchedules(ctx)
			if err != nil {
				return explainSchedule(err, "", "ID")
			}
			if a.output == "json" {
				return a.printJSON(all)
			}
			if len(all) == 0 {
				fmt.Fprintln(a.errOut, "no import schedules (create one with airlock schedule create)")
				return nil
			}
			tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCRON\tSTATE\tDATASOURCE\tWORKSPACE\tREQUESTER\tNEXT RUN\tSTARTED\tSKIPPED\tFAILED\tNOTE")
			for _, s := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", s.ID, s.Cron, scheduleState(s), s.DataSource, s.Workspace, s.Requester,
					nextRun(s), s.Started, s.Skipped, s.Failed, dash(oneLine(s.Note)))
			}
			return tw.Flush()
		},
	}
}

func (a *app) scheduleShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one import schedule and its recent runs",
		Example: `  airlock schedule show import-sample-clinic-extract
  airlock schedule show import-sample-clinic-extract -o json`,
		Args: exactArgs(1, "ID: give the schedule id (see airlock schedule list)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			svc, err := a.connect("")
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			ctx, cancel := a.ctx()
			defer cancel()
			s, err := svc.Schedule(ctx, id)
			if err != nil {
				return a.scheduleRefusal(err, id)
			}
			if a.output == "json" {
				return a.printJSON(s)
			}
			printSchedule(a.out, s)
			return nil
		},
	}
}

// printSchedule prints a schedule for a person.
func printSchedule(w io.Writer, s requests.ScheduleSummary) {
	fmt.Fprintf(w, "schedule   %s (%s)\n", s.ID, scheduleState(s))
	fmt.Fprintf(w, "cron       %s\n", s.Cron)
	fmt.Fprintf(w, "imports    %s (project %s) into workspace %s, requested by %s\n", s.DataSource, s.Project, s.Workspace, s.Requester)
	if s.Policy != "" {
		fmt.Fprintf(w, "policy     %s\n", s.Policy)
	}
	if s.Note != "" {
		fmt.Fprintf(w, "note       %s\n", s.Note)
	}
	fmt.Fprintf(w, "next run   %s\n", nextRun(s))
	fmt.Fprintf(w, "runs       %d started an import, %d skipped (an import was running), %d failed\n", s.Started, s.Skipped, s.Failed)
	for _, r := range s.RecentRuns {
		what := r.State
		switch r.State {
		case workflows.ScheduledStarted:
			what = "started " + r.Import
		case workflows.ScheduledSkipped:
			what = "skipped: an import of the data source was running"
		case "":
			what = "running"
		}
		fmt.Fprintf(w, "  %s  %s  (%s)\n", r.StartedAt.Local().Format("2006-01-02 15:04:05"), what, r.Run)
	}
}

func scheduleState(s requests.ScheduleSummary) string {
	if s.Paused {
		return "paused"
	}
	return "active"
}

func nextRun(s requests.ScheduleSummary) string {
	if len(s.NextRuns) == 0 {
		return "-"
	}
	return s.NextRuns[0].Local().Format("2006-01-02 15:04")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) schedulePauseCmd(pause bool) *cobra.Command {
	var as, note string
	cmd := &cobra.Command{
		Args: exactArgs(1, "ID: give the schedule id (see airlock schedule list)"),
	}
	verb := "paused"
	if pause {
		cmd.Use = "pause ID --as USER [--note N]"
		cmd.Short = "Stop a schedule from firing until it is unpaused (imports it started go on)"
		cmd.Example = `  airlock schedule pause import-sample-clinic-extract --as rita --note "source under maintenance"`
	} else {
		verb = "unpaused"
		cmd.Use = "unpause ID --as USER [--note N]"
		cmd.Short = "Let a paused schedule fire again"
		cmd.Example = `  airlock schedule unpause import-sample-clinic-extract --as rita --note "maintenance over"`
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id := args[0]
		if strings.TrimSpace(as) == "" {
			return fmt.Errorf("--as: missing: say who %s the schedule (recorded in its note)", verb)
		}
		svc, err := a.connect("")
		if err != nil {
			return err
		}
		defer svc.Client.Close()
		ctx, cancel := a.ctx()
		defer cancel()
		if pause {
			err = svc.PauseSchedule(ctx, id, as, note)
		} else {
			err = svc.UnpauseSchedule(ctx, id, as, note)
		}
		if err != nil {
			return a.scheduleRefusal(err, id)
		}
		if a.output == "json" {
			return a.printJSON(map[string]any{"id": id, "paused": pause})
		}
		fmt.Fprintf(a.out, "schedule %s %s\n", id, verb)
		return nil
	}
	cmd.Flags().StringVar(&as, "as", "", "who "+strings.TrimSuffix(verb, "d")+"s the schedule (recorded in its note)")
	cmd.Flags().StringVar(&note, "note", "", "why (recorded in the schedule's note)")
	return cmd
}

func (a *app) scheduleDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID",
		Short:   "Delete a schedule: it fires no more (imports it started go on)",
		Example: `  airlock schedule delete import-sample-clinic-extract`,
		Args:    exactArgs(1, "ID: give the schedule id (see airlock schedule list)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			svc, err := a.connect("")
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			ctx, cancel := a.ctx()
			defer cancel()
			if err := svc.DeleteSchedule(ctx, id); err != nil {
				return a.scheduleRefusal(err, id)
			}
			if a.output == "json" {
				return a.printJSON(map[string]any{"id": id, "deleted": true})
			}
			fmt.Fprintf(a.out, "schedule %s deleted; imports it started go on\n", id)
			return nil
		},
	}
}

// scheduleFlags names the flag that carries each field a schedule
// operation may refuse; the id is --id for create and the ID argument
// otherwise.
var scheduleFlags = map[string]string{
	"cron": "--cron", "note": "--note", "policy": "--policy", "binding": "--binding",
	"workspace": "--workspace", "requester": "--as",
}

// explainSchedule puts the requests package's errors about schedules in
// the CLI's words.
func explainSchedule(err error, id, idName string) error {
	if errors.Is(err, requests.ErrNotFound) {
		return fmt.Errorf("no import schedule %q in this namespace: check the id with `airlock schedule list`", id)
	}
	var fe *requests.FieldError
	if errors.As(err, &fe) {
		named := *fe
		if flag, ok := scheduleFlags[fe.Field]; ok {
			named.Field = flag
		} else if fe.Field == "id" {
			named.Field = idName
		}
		return &named
	}
	return err
}

// scheduleRefusal prints why a schedule operation was refused and exits
// 1; other errors go up as they are.
func (a *app) scheduleRefusal(err error, id string) error {
	var refused *requests.RefusedError
	if errors.As(err, &refused) || errors.Is(err, requests.ErrNotFound) {
		err = explainSchedule(err, id, "ID")
		fmt.Fprintf(a.errOut, "refused: %s\n", err)
		return &exitError{err}
	}
	return explainSchedule(err, id, "ID")
}
