package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/model"
)

func (a *app) revokeCmd() *cobra.Command {
	var as, reason string
	cmd := &cobra.Command{
		Use:   "revoke ID --as USER --reason R",
		Short: "Revoke a released egress: remove its released copies where the destination allows",
		Long: `revoke revokes a RELEASED egress: its released copies (files, manifest and crate)
are removed from the destination where the configuration allows deletion there
(egress.destinations[].revocable), the revocation is recorded with its reason,
and the request ends REVOKED. Where the destination keeps what it receives, the
revocation is recorded and says that nothing could be removed. The requester or
a member of one of its checking roles may revoke. airlock waits until the
copies are removed.`,
		Example: `  airlock revoke egress-ws1-x7k2m9 --as rita --reason "table 2 was released with the wrong suppression"
  airlock revoke egress-ws1-x7k2m9 --as carol --reason "partner agreement ended" -o json`,
		Args: exactArgs(1, "ID: give the id of the released egress (see airlock list --kind egress --state RELEASED)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if strings.TrimSpace(as) == "" {
				return fmt.Errorf("--as: missing: say who is revoking the release")
			}
			if strings.TrimSpace(reason) == "" {
				return fmt.Errorf("--reason: missing: say why the release is revoked; it is recorded with the revocation")
			}
			svc, err := a.connect("")
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			ctx, cancel := a.ctx()
			defer cancel()
			res, err := svc.Revoke(ctx, id, model.Revocation{By: as, Reason: reason, Via: "cli"})
			if err != nil {
				return a.egressRefusal(err, id)
			}
			if a.output == "json" {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.out, "%s is %s: %d file(s) removed from the destination\n", id, res.State, res.Revocation.Removed)
			if res.Revocation.Note != "" {
				fmt.Fprintf(a.out, "note: %s\n", res.Revocation.Note)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "who is revoking (the requester or a member of a checking role)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the release is revoked (required; recorded)")
	return cmd
}
