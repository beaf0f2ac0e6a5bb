package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/requests"
)

func (a *app) listCmd() *cobra.Command {
	var state, role, kind, project string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List requests, newest first, filtered by state or the role they wait on",
		Long: `list reads Temporal's visibility store (Airlock's search attributes), so a request
shows its new state there a moment after it changes.`,
		Example: `  airlock list
  airlock list --state AWAITING_APPROVAL --awaiting-role information-governance
  airlock list --project d4e6 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 {
				return fmt.Errorf("--limit %d: must be at least 1", limit)
			}
			f := requests.Filter{State: state, Kind: kind, Project: project, AwaitingRole: role, PageSize: min(limit, requests.MaxPageSize)}
			if _, err := f.Query(); err != nil {
				return explain(err, "")
			}
			svc, err := a.connect("")
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			rows := []requests.Summary{}
			for len(rows) < limit {
				ctx, cancel := a.ctx()
				page, err := svc.List(ctx, f)
				cancel()
				if err != nil {
					return explain(err, "")
				}
				rows = append(rows, page.Requests...)
				if page.NextPageToken == "" {
					break
				}
				f.PageToken = page.NextPageToken
			}
			if len(rows) > limit {
				rows = rows[:limit]
			}
			if a.output == "json" {
				return a.printJSON(rows)
			}
			if len(rows) == 0 {
				fmt.Fprintln(a.errOut, "no requests match")
				return nil
			}
			tw := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tAWAITING\tDATASOURCE\tWORKSPACE\tREQUESTER\tSTARTED")
			for _, r := range rows {
				aw := r.AwaitingRole
				if aw == "" {
					aw = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, aw, r.DataSource, r.Workspace, r.Requester, r.StartedAt.Local().Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only requests in this state (e.g. AWAITING_APPROVAL)")
	cmd.Flags().StringVar(&role, "awaiting-role", "", "only requests waiting on a decision by this role")
	cmd.Flags().StringVar(&kind, "kind", "", "only requests of this kind (import, upload or egress)")
	cmd.Flags().StringVar(&project, "project", "", "only requests for this project")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many requests")
	return cmd
}
