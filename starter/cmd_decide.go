package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/model"
)

func (a *app) decideCmd(decision string) *cobra.Command {
	var stage, as, comment, digest string
	cmd := &cobra.Command{
		Args: exactArgs(1, "ID: give the request id (see airlock list --state AWAITING_APPROVAL)"),
	}
	if decision == model.Approve {
		cmd.Use = "approve ID --stage S --as USER [--comment C]"
		cmd.Short = "Approve a stage of a request"
		cmd.Long = `approve records an approval of the request's open stage. The approval names the
manifest digest (the files with their sizes and SHA-256) it approves: by
default the one the request shows now; pin the one you reviewed with --digest.
The workflow refuses approvals that break the policy (the requester, a
non-member of the stage's role, someone who approved another stage, a stale
digest) and airlock exits 1 with the reason.`
		cmd.Example = `  airlock approve import-sample-clinic-extract-x7k2m9 --stage data-engineering --as dana --comment "schema and row counts checked"
  airlock approve $ID --stage information-governance --as ian --digest sha256:3f1c...`
	} else {
		cmd.Use = "reject ID --stage S --as USER --comment C"
		cmd.Short = "Reject a request at its open stage (ends it REJECTED)"
		cmd.Long = `reject ends the request REJECTED and removes its staged data. A rejection needs a
comment saying why.`
		cmd.Example = `  airlock reject import-sample-clinic-extract-x7k2m9 --stage information-governance --as ian --comment "contains direct identifiers"`
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id := args[0]
		if stage == "" {
			return fmt.Errorf("--stage: missing: name the stage you decide (airlock status %s shows the open one)", id)
		}
		if strings.TrimSpace(as) == "" {
			return fmt.Errorf("--as: missing: say who is deciding")
		}
		if decision == model.Reject && strings.TrimSpace(comment) == "" {
			return fmt.Errorf("--comment: missing: a rejection needs a comment saying why")
		}
		svc, err := a.connect("")
		if err != nil {
			return err
		}
		defer svc.Client.Close()
		if digest == "" {
			st, err := a.status(svc, id)
			if err != nil {
				return err
			}
			digest = st.ManifestDigest
		}
		ctx, cancel := a.ctx()
		defer cancel()
		res, err := svc.Decide(ctx, id, model.DecisionRequest{
			Stage: stage, By: as, Decision: decision, Comment: comment, ManifestDigest: digest, Via: "cli",
		})
		if err != nil {
			return a.refusal(err, id)
		}
		if a.output == "json" {
			return a.printJSON(res)
		}
		switch res.StageState {
		case model.StageApproved:
			fmt.Fprintf(a.out, "%s: stage %s approved (%d of %d); the request moves on\n", id, res.Stage, res.Approvals, res.Required)
		case model.StageRejected:
			fmt.Fprintf(a.out, "%s: rejected at stage %s; the request ends REJECTED and its staged data is removed\n", id, res.Stage)
		default:
			fmt.Fprintf(a.out, "%s: approval recorded for stage %s (%d of %d)\n", id, res.Stage, res.Approvals, res.Required)
		}
		return nil
	}
	cmd.Flags().StringVar(&stage, "stage", "", "the stage you decide (must be the open one)")
	cmd.Flags().StringVar(&as, "as", "", "who is deciding (must hold the stage's role)")
	cmd.Flags().StringVar(&comment, "comment", "", "why (required to reject)")
	cmd.Flags().StringVar(&digest, "digest", "", "manifest digest you reviewed (default: the request's current one)")
	return cmd
}

func (a *app) cancelCmd() *cobra.Command {
	var as, why string
	cmd := &cobra.Command{
		Use:     "cancel ID --as USER [--reason R]",
		Short:   "Cancel a request before its release; its staged data is removed",
		Example: `  airlock cancel import-sample-clinic-extract-x7k2m9 --as rita --reason "wrong extract date"`,
		Args:    exactArgs(1, "ID: give the request id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if strings.TrimSpace(as) == "" {
				return fmt.Errorf("--as: missing: say who is cancelling")
			}
			svc, err := a.connect("")
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			ctx, cancel := a.ctx()
			defer cancel()
			res, err := svc.Cancel(ctx, id, model.CancelRequest{By: as, Reason: why, Via: "cli"})
			if err != nil {
				return a.refusal(err, id)
			}
			if a.output == "json" {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.out, "%s is %s\n", id, res.State)
			return nil
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "who is cancelling (the requester or a member of an approval role)")
	cmd.Flags().StringVar(&why, "reason", "", "why, for the record")
	return cmd
}
