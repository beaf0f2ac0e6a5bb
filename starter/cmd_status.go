package main

import (
	"fmt"
	"io"
	"strings"
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
	if st.Egress != nil {
		out = fmt.Sprintf(": waiting on stage %s (role %s, %d of %d reviews of turn %d", s.Name, s.Role, st.Egress.ReviewsIn, st.Egress.ReviewsNeeded, st.Egress.Turn)
	}
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
	if st.Egress != nil {
		printEgress(w, st)
	} else if len(st.Files) > 0 {
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

// printEgress prints what an egress adds: where it goes and why, each
// file's verdict in the current turn, the automatic checks, the turns, the
// reviews revealed so far, and a withdrawal, release or revocation.
func printEgress(w io.Writer, st model.RequestStatus) {
	eg := st.Egress
	fmt.Fprintln(w, "\nEgress")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  Destination\t%s\n", eg.Destination)
	fmt.Fprintf(tw, "  Justification\t%s\n", oneLine(eg.Justification))
	if eg.Turn > 0 {
		fmt.Fprintf(tw, "  Turn\t%d (%d of %d reviews in)\n", eg.Turn, eg.ReviewsIn, eg.ReviewsNeeded)
	}
	tw.Flush()

	if len(eg.Files) > 0 {
		var total int64
		for _, f := range eg.Files {
			total += f.Size
		}
		fmt.Fprintf(w, "\nFiles (%d, %s)\n", len(eg.Files), model.FormatBytes(total))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PATH\tSIZE\tTURN\tVERDICT\tFLAGGED BY\tSHA256")
		for _, f := range eg.Files {
			flags := "-"
			if len(f.Flags) > 0 {
				flags = strings.Join(f.Flags, ",")
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t%s\n", f.Path, f.Size, f.Turn, f.Verdict, flags, f.SHA256)
		}
		tw.Flush()
	} else if len(eg.Paths) > 0 {
		fmt.Fprintf(w, "\nFiles asked for (%d, not snapshotted yet)\n", len(eg.Paths))
		for _, p := range eg.Paths {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}

	if len(st.Checks) > 0 {
		fmt.Fprintln(w, "\nChecks")
		for _, c := range st.Checks {
			fmt.Fprintf(w, "  - %s: %s: %s\n", c.Name, checkOutcome(c), oneLine(c.Message))
		}
	}
	if len(eg.Turns) > 0 {
		fmt.Fprintln(w, "\nTurns")
		for _, t := range eg.Turns {
			c := ""
			if t.Comment != "" {
				c = fmt.Sprintf(": %q", t.Comment)
			}
			fmt.Fprintf(w, "  %d. by %s at %s, %d file(s) new or changed%s\n", t.Turn, t.By, t.At.Local().Format(time.RFC3339), len(t.Changed), c)
		}
	}
	if len(eg.Reviews) > 0 || eg.ReviewsIn > 0 {
		fmt.Fprintln(w, "\nReviews")
		for _, r := range eg.Reviews {
			c := ""
			if r.Comment != "" {
				c = fmt.Sprintf(": %q", r.Comment)
			}
			fmt.Fprintf(w, "  - turn %d, stage %s, by %s at %s via %s%s\n", r.Turn, r.Stage, r.By, r.At.Local().Format(time.RFC3339), r.Via, c)
			for _, f := range r.Files {
				fc := ""
				if f.Comment != "" {
					fc = fmt.Sprintf(": %q", f.Comment)
				}
				fmt.Fprintf(w, "     %s %s%s\n", f.Verdict, f.Path, fc)
			}
		}
		if shown := countTurn(eg.Reviews, eg.Turn); eg.ReviewsIn > shown {
			fmt.Fprintf(w, "  (%d review(s) of turn %d held back until all %d are in: the checkers review independently)\n", eg.ReviewsIn-shown, eg.Turn, eg.ReviewsNeeded)
		}
	}
	if wd := eg.Withdrawn; wd != nil {
		fmt.Fprintf(w, "\nWithdrawn by %s", wd.By)
		if wd.Reason != "" {
			fmt.Fprintf(w, ": %q", wd.Reason)
		}
		fmt.Fprintln(w)
	}
	if rel := eg.Release; rel != nil {
		fmt.Fprintln(w, "\nRelease")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  Location\t%s\n", rel.Location)
		fmt.Fprintf(tw, "  Files\t%d, %s\n", rel.Files, model.FormatBytes(rel.Bytes))
		fmt.Fprintf(tw, "  Manifest\t%s (sha256 %s)\n", rel.ManifestURL, rel.ManifestSHA256)
		fmt.Fprintf(tw, "  Signature\t%s (key %s)\n", rel.SignatureURL, rel.KeyID)
		fmt.Fprintf(tw, "  Released\t%s\n", rel.At.Local().Format(time.RFC3339))
		tw.Flush()
	}
	if rv := eg.Revocation; rv != nil {
		fmt.Fprintf(w, "\nRevoked by %s at %s via %s: %q; %d removed\n", rv.By, rv.At.Local().Format(time.RFC3339), rv.Via, rv.Reason, rv.Removed)
		if rv.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", oneLine(rv.Note))
		}
	}
}

// checkOutcome says how a check came out, and for a failed egress check
// what its failure does.
func checkOutcome(c model.CheckResult) string {
	switch {
	case c.Passed:
		return "passed"
	case c.OnFail == model.OnFailFlag:
		return "FLAGGED for the checkers"
	case c.OnFail == model.OnFailBlock:
		return "FAILED (blocks: back to the requester)"
	}
	return "FAILED"
}

// printFailedChecks lists the checks a request failed, with the files
// they found fault with.
func printFailedChecks(w io.Writer, st model.RequestStatus) {
	for _, c := range st.Checks {
		if c.Passed {
			continue
		}
		fmt.Fprintf(w, "check %s %s: %s\n", c.Name, checkOutcome(c), oneLine(c.Message))
	}
}

// countTurn counts the reviews of turn.
func countTurn(reviews []model.EgressReviewRecord, turn int) int {
	n := 0
	for _, r := range reviews {
		if r.Turn == turn {
			n++
		}
	}
	return n
}
