package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/model"
)

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status ID",
		Short: "Show a request: its state, stages, decisions and files",
		Long: `status shows a request as its workflow sees it. With -o json it prints the
same document as the workflow's state query and the API.`,
		Example: `  airlock status import-sample-clinic-extract-x7k2m9
  airlock status import-sample-clinic-extract-x7k2m9 -o json | jq -r .manifest_digest`,
		Args: exactArgs(1, "ID: give the request id printed by airlock import (or see airlock list)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.connect("")
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			st, err := a.status(svc, args[0])
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(st)
			}
			printStatus(a.out, st)
			return nil
		},
	}
}

func exactArgs(n int, help string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("expected %d argument(s), got %d: %s", n, len(args), help)
		}
		return nil
	}
}

// printStatusLine prints a one-line summary of where a request is.
func printStatusLine(w io.Writer, st model.RequestStatus) {
	fmt.Fprintf(w, "%s is %s%s\n", st.ID, st.State, waitingOn(st))
	if st.Error != "" {
		fmt.Fprintf(w, "reason: %s\n", st.Error)
	}
}

func waitingOn(st model.RequestStatus) string {
	i := st.CurrentStage()
	if i < 0 || st.State != model.StateAwaitingApproval {
		return ""
	}
	s := st.Stages[i]
	out := fmt.Sprintf(": waiting on stage %s (role %s, %d of %d approvals", s.Name, s.Role, s.Approvals(), s.Required)
	if s.DeadlineAt != nil {
		out += ", deadline " + s.DeadlineAt.Local().Format(time.RFC3339)
	}
	return out + ")"
}

func printStatus(w io.Writer, st model.RequestStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("Request", st.ID)
	row("Kind", string(st.Kind))
	row("State", string(st.State)+waitingOn(st))
	if st.Error != "" {
		row("Reason", oneLine(st.Error))
	}
	ds := st.DataSource
	if st.DisplayName != "" {
		ds += " (" + st.DisplayName + ")"
	}
	row("Data source", ds)
	row("Project", st.Project)
	row("Workspace", st.Workspace)
	row("Requester", st.Requester)
	row("Policy", st.Policy)
	row("Manifest", st.ManifestDigest)
	row("Location", st.Location)
	row("Started", st.CreatedAt.Local().Format(time.RFC3339))
	if st.FinishedAt != nil {
		row("Finished", st.FinishedAt.Local().Format(time.RFC3339)+" (took "+st.FinishedAt.Sub(st.CreatedAt).Round(time.Millisecond).String()+")")
	}
	if st.CancelledBy != "" {
		row("Cancelled by", st.CancelledBy)
	}
	if st.State == model.StateExtracting {
		row("Progress", fmt.Sprintf("%d of %d objects, %s of %s", st.Progress.ObjectsDone, st.Progress.ObjectsTotal, model.FormatBytes(st.Progress.BytesDone), model.FormatBytes(st.Progress.BytesTotal)))
	}
	tw.Flush()

	if len(st.Stages) > 0 {
		fmt.Fprintln(w, "\nStages")
		for i, s := range st.Stages {
			fmt.Fprintf(w, "  %d. %s (role %s, needs %d): %s\n", i+1, s.Name, s.Role, s.Required, s.State)
			for _, d := range s.Decisions {
				c := ""
				if d.Comment != "" {
					c = fmt.Sprintf(": %q", d.Comment)
				}
				fmt.Fprintf(w, "     - %s by %s at %s via %s%s\n", pastTense(d.Decision), d.By, d.At.Local().Format(time.RFC3339), d.Via, c)
			}
		}
	}
	if len(st.Refused) > 0 {
		fmt.Fprintln(w, "\nRefused decisions")
		for _, r := range st.Refused {
			fmt.Fprintf(w, "  - %s %s stage %s at %s: %s\n", r.By, r.Decision, r.Stage, r.At.Local().Format(time.RFC3339), r.Reason)
		}
	}
	if len(st.Files) > 0 {
		var total int64
		for _, f := range st.Files {
			total += f.Size
		}
		fmt.Fprintf(w, "\nFiles (%d, %s)\n", len(st.Files), model.FormatBytes(total))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PATH\tSIZE\tSHA256")
		for _, f := range st.Files {
			fmt.Fprintf(tw, "  %s\t%d\t%s\n", f.Path, f.Size, f.SHA256)
		}
		tw.Flush()
	}
}

func pastTense(d string) string {
	switch d {
	case model.Approve:
		return "approved"
	case model.Reject:
		return "rejected"
	}
	return d
}
