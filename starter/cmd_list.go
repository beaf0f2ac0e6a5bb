package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// listedRequest is one row of airlock list, read from search attributes.
type listedRequest struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	State        string    `json:"state"`
	AwaitingRole string    `json:"awaiting_role,omitempty"`
	DataSource   string    `json:"datasource"`
	Project      string    `json:"project"`
	Workspace    string    `json:"workspace"`
	Requester    string    `json:"requester"`
	StartedAt    time.Time `json:"started_at"`
}

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
			var conds []string
			if state != "" {
				ok := false
				for _, s := range model.States {
					if string(s) == strings.ToUpper(state) {
						ok = true
					}
				}
				if !ok {
					var all []string
					for _, s := range model.States {
						all = append(all, string(s))
					}
					return fmt.Errorf("--state %q: unknown state (expected one of: %s)", state, strings.Join(all, ", "))
				}
				conds = append(conds, fmt.Sprintf("%s = '%s'", workflows.SearchAttrState, strings.ToUpper(state)))
			}
			for _, f := range []struct{ attr, val, flag string }{
				{workflows.SearchAttrAwaitingRole, role, "--awaiting-role"},
				{workflows.SearchAttrKind, kind, "--kind"},
				{workflows.SearchAttrProject, project, "--project"},
			} {
				if f.val == "" {
					continue
				}
				if strings.ContainsAny(f.val, "'\"\\") {
					return fmt.Errorf("%s %q: quotes and backslashes are not allowed", f.flag, f.val)
				}
				conds = append(conds, fmt.Sprintf("%s = '%s'", f.attr, f.val))
			}
			if kind == "" {
				conds = append(conds, fmt.Sprintf("%s IN ('import', 'upload', 'egress')", workflows.SearchAttrKind))
			}
			query := strings.Join(conds, " AND ")
			c, err := a.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			var rows []listedRequest
			var token []byte
			for len(rows) < limit {
				ctx, cancel := a.ctx()
				resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token, PageSize: int32(min(limit, 1000))})
				cancel()
				if err != nil {
					return fmt.Errorf("listing requests (%s): %w", query, err)
				}
				dc := converter.GetDefaultDataConverter()
				for _, e := range resp.Executions {
					r := listedRequest{ID: e.GetExecution().GetWorkflowId(), StartedAt: e.GetStartTime().AsTime()}
					fields := e.GetSearchAttributes().GetIndexedFields()
					get := func(name string) string {
						var s string
						if p, ok := fields[name]; ok {
							_ = dc.FromPayload(p, &s)
						}
						return s
					}
					r.Kind, r.State, r.AwaitingRole = get(workflows.SearchAttrKind), get(workflows.SearchAttrState), get(workflows.SearchAttrAwaitingRole)
					r.DataSource, r.Project = get(workflows.SearchAttrDataSource), get(workflows.SearchAttrProject)
					r.Workspace, r.Requester = get(workflows.SearchAttrWorkspace), get(workflows.SearchAttrRequester)
					rows = append(rows, r)
				}
				token = resp.NextPageToken
				if len(token) == 0 {
					break
				}
			}
			if len(rows) > limit {
				rows = rows[:limit]
			}
			if a.output == "json" {
				if rows == nil {
					rows = []listedRequest{}
				}
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
	cmd.Flags().StringVar(&kind, "kind", "", "only requests of this kind (import)")
	cmd.Flags().StringVar(&project, "project", "", "only requests for this project")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many requests")
	return cmd
}
