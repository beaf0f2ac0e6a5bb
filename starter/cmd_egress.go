package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/workflows"
)

func (a *app) egressCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "egress",
		Short: "Take checked outputs out of a workspace to an agreed destination",
		Long: `egress moves outputs out of a workspace, to a destination the platform has agreed
in advance (named in Airlock's configuration, never typed as a URL). A request
names files of the workspace and says why; Airlock snapshots them into
quarantine, runs the policy's automatic checks, and output checkers give each
file a verdict: approve, request-changes or reject. Changes requested send the
request back to its requester, who fixes the files in the workspace and
resubmits (a new turn). The approved files are copied to the destination with
a signed release manifest, which anyone holding the public key can verify.`,
		Example: `  ID=$(airlock egress request --workspace advanced-generic-workspace --project d4e6 --destination outbox \
      --file results/table1.csv --file results/figure1.png --justification "Tables for the paper" --as rita)
  airlock egress review $ID --as carol --approve-all
  airlock egress review $ID --as chris --approve results/figure1.png --request-changes "results/table1.csv=suppress counts under 10"
  airlock egress resubmit $ID --as rita --comment "small counts suppressed"
  airlock egress verify .airlock/outbox/$ID --public-key .airlock/egress-signing-key.pub.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return fmt.Errorf("name a subcommand: request, review, resubmit, withdraw or verify (airlock egress --help)")
		},
	}
	cmd.AddCommand(a.egressRequestCmd(), a.egressReviewCmd(), a.egressResubmitCmd(), a.egressWithdrawCmd(), a.egressVerifyCmd())
	return cmd
}

// egressFlags names the flag that carries each field the requests package
// may refuse in an egress command (files[i] goes to --file).
var egressFlags = map[string]string{
	"workspace": "--workspace", "project": "--project", "destination": "--destination", "files": "--file",
	"justification": "--justification", "requester": "--as", "by": "--as", "policy": "--policy", "id": "--id",
	"stage": "--stage", "reason": "--reason", "manifest_digest": "--digest",
}

// explainEgress puts an egress command's errors in the CLI's words.
func explainEgress(err error, id string) error {
	var fe *requests.FieldError
	if errors.As(err, &fe) {
		named := *fe
		base, _, _ := strings.Cut(fe.Field, "[")
		if flag, ok := egressFlags[base]; ok && !strings.Contains(fe.Field, "].") {
			named.Field = flag
		}
		return &named
	}
	return explain(err, id)
}

// egressRefusal is refusal for egress commands: a refused field names its flag.
func (a *app) egressRefusal(err error, id string) error {
	var fe *requests.FieldError
	if errors.As(err, &fe) {
		return explainEgress(err, id)
	}
	return a.refusal(err, id)
}

func taskQueueDefault() string {
	if q := os.Getenv("AIRLOCK_TASK_QUEUE"); q != "" {
		return q
	}
	return workflows.TaskQueue
}

func (a *app) egressRequestCmd() *cobra.Command {
	var in model.EgressRequestInput
	var as, policy, id string
	var wait bool
	taskQueue := taskQueueDefault()
	cmd := &cobra.Command{
		Use:   "request --workspace W --project P --destination D --file PATH... --justification TEXT --as USER [--wait]",
		Short: "Ask for files of a workspace to leave it for an agreed destination",
		Long: `request starts an egress request and prints its id. Files are named by their path
relative to the workspace's root; each --file names one file (list every file
of a folder you want). The destination is one the configuration names
(GET /api/v1/egress/destinations lists them). The justification is what the
output checkers read: say what the files are and why they may leave.
With --wait it waits until the files are snapshotted and checked, and exits 1
if the checks sent the request back (RETURNED) or it failed.`,
		Example: `  airlock egress request --workspace advanced-generic-workspace --project d4e6 --destination outbox \
      --file results/table1.csv --justification "Aggregate tables for the paper" --as rita
  airlock egress request --workspace ws1 --project d4e6 --destination outbox --file out/a.csv --file out/b.png \
      --justification "Figures for the steering group" --as rita --policy egress-two-checkers --wait -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			start := requests.EgressStart{ID: id, Input: in, Requester: as, Via: "cli", Policy: policy}
			if err := requests.CheckEgressStart(start); err != nil {
				return explainEgress(err, "")
			}
			svc, err := a.connect(taskQueue)
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			ctx, cancel := a.ctx()
			defer cancel()
			id, err := svc.StartEgress(ctx, start)
			if err != nil {
				return a.egressRefusal(err, "")
			}
			if !wait {
				if a.output == "json" {
					return a.printJSON(map[string]string{"id": id, "state": string(model.StateChecking)})
				}
				fmt.Fprintln(a.out, id)
				return nil
			}
			if a.output == "text" {
				fmt.Fprintln(a.out, id)
			}
			st, err := a.followChecking(svc, id)
			if err != nil {
				return err
			}
			if a.output == "json" {
				if err := a.printJSON(st); err != nil {
					return err
				}
			} else {
				printStatusLine(a.errOut, st)
				printFailedChecks(a.errOut, st)
			}
			if st.State != model.StateAwaitingApproval {
				return &exitError{fmt.Errorf("egress is %s", st.State)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Workspace, "workspace", "", "workspace the files are in")
	f.StringVar(&in.Project, "project", "", "project the workspace belongs to")
	f.StringVar(&in.Destination, "destination", "", "destination to release to, by the name the configuration gives it")
	f.StringArrayVar(&in.Files, "file", nil, "a file to take out, relative to the workspace's root; repeat for each file")
	f.StringVar(&in.Justification, "justification", "", "what the files are and why they may leave (the output checkers read it)")
	f.StringVar(&as, "as", "", "who is asking (recorded as the requester; the requester never reviews)")
	f.StringVar(&policy, "policy", "", "egress policy to use, among those the project allows (default: the project's default)")
	f.StringVar(&id, "id", "", "request id to use (default: a fresh egress-<workspace>-<random> id)")
	f.BoolVar(&wait, "wait", false, "wait until the files are snapshotted and checked")
	f.StringVar(&taskQueue, "task-queue", taskQueue, "task queue of the Airlock workers (or AIRLOCK_TASK_QUEUE); must match the worker config's taskQueue")
	return cmd
}

// followChecking waits until an egress leaves CHECKING.
func (a *app) followChecking(svc *requests.Service, id string) (model.RequestStatus, error) {
	start := time.Now()
	lastPrint := time.Time{}
	for {
		st, err := a.status(svc, id)
		if err != nil {
			return st, err
		}
		if st.State != model.StateChecking {
			fmt.Fprintf(a.errOut, "\r%-80s\r", "")
			return st, nil
		}
		if time.Since(lastPrint) >= time.Second {
			lastPrint = time.Now()
			turn := 0
			if st.Egress != nil {
				turn = st.Egress.Turn
			}
			fmt.Fprintf(a.errOut, "\r%-80s", fmt.Sprintf("CHECKING  turn %d  %s elapsed", turn, time.Since(start).Round(time.Second)))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// reviewFlags are the verdicts a checker gives on the command line.
type reviewFlags struct {
	approve    []string // PATH
	changes    []string // PATH=COMMENT
	reject     []string // PATH=COMMENT
	approveAll bool
	// overallComment: the review has an overall --comment, which stands
	// for the files changes or rejections give none.
	overallComment bool
}

// empty reports whether no verdict was given.
func (r reviewFlags) empty() bool {
	return len(r.approve) == 0 && len(r.changes) == 0 && len(r.reject) == 0 && !r.approveAll
}

// verdicts turns the flags into a verdict per file, checked against the
// request's files: every path must be one of them and named once, and
// every file open in the turn must get a verdict (--approve-all approves
// the open files no other flag names).
func (r reviewFlags) verdicts(st model.RequestStatus) ([]model.FileReview, error) {
	eg := st.Egress
	known := map[string]model.EgressFile{}
	var names []string
	for _, f := range eg.Files {
		known[f.Path] = f
		names = append(names, f.Path)
	}
	var out []model.FileReview
	given := map[string]string{}
	add := func(flag, path, verdict, comment string) error {
		if path == "" {
			return fmt.Errorf("%s: missing path: name one of the request's files (%s)", flag, strings.Join(names, ", "))
		}
		if _, ok := known[path]; !ok {
			return fmt.Errorf("%s %q: not one of request %s's files (%s)", flag, path, st.ID, strings.Join(names, ", "))
		}
		if prev, dup := given[path]; dup {
			return fmt.Errorf("%s %q: %s already names it: give each file one verdict", flag, path, prev)
		}
		given[path] = flag
		out = append(out, model.FileReview{Path: path, Verdict: verdict, Comment: comment})
		return nil
	}
	for _, p := range r.approve {
		if err := add("--approve", p, model.VerdictApprove, ""); err != nil {
			return nil, err
		}
	}
	for _, v := range []struct {
		flag, verdict string
		values        []string
	}{{"--request-changes", model.VerdictRequestChanges, r.changes}, {"--reject", model.VerdictReject, r.reject}} {
		for _, pc := range v.values {
			path, comment, _ := strings.Cut(pc, "=")
			if strings.TrimSpace(comment) == "" && !r.overallComment {
				return nil, fmt.Errorf("%s %q: give PATH=COMMENT (or an overall --comment): the comment says why and what to change (quote it: %s \"out/t1.csv=suppress counts under 10\")", v.flag, pc, v.flag)
			}
			if err := add(v.flag, path, v.verdict, strings.TrimSpace(comment)); err != nil {
				return nil, err
			}
		}
	}
	var missing []string
	for _, p := range eg.OpenFiles() {
		if _, ok := given[p]; ok {
			continue
		}
		if r.approveAll {
			out = append(out, model.FileReview{Path: p, Verdict: model.VerdictApprove})
			continue
		}
		missing = append(missing, p)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no verdict on %s: give each file still open in turn %d a verdict with --approve, --request-changes or --reject, or approve the rest with --approve-all", strings.Join(missing, ", "), eg.Turn)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("request %s has no file open for review in turn %d", st.ID, eg.Turn)
	}
	return out, nil
}

func (a *app) egressReviewCmd() *cobra.Command {
	var as, stage, comment, digest string
	var rf reviewFlags
	cmd := &cobra.Command{
		Use:   "review ID --as USER [--stage S] (--approve PATH | --request-changes PATH=COMMENT | --reject PATH=COMMENT | --approve-all)... [--comment C]",
		Short: "Give an output checker's verdict on each file of an egress",
		Long: `review records an output checker's review of the request's current turn: a verdict
on every file still open in it. --approve, --request-changes and --reject each
name one file and may be repeated; --approve-all approves every open file that
no other flag names. request-changes and reject take PATH=COMMENT: the comment
tells the requester why and what to change (a path cannot hold '=').
The stage defaults to the open one; the turn and the manifest digest the
review names are read from the request's status (pin the digest you reviewed
with --digest). With independent checkers, no one sees another's verdicts
until every review of the turn is in. The workflow refuses reviews that
break the policy (the requester, a non-member of the stage's role, a second
review of the turn by the same person, a stale digest) and airlock exits 1.`,
		Example: `  airlock egress review egress-ws1-x7k2m9 --as carol --approve-all --comment "aggregates only"
  airlock egress review egress-ws1-x7k2m9 --as chris --approve results/figure1.png \
      --request-changes "results/table1.csv=counts under 10 in column n: suppress them"
  airlock egress review egress-ws1-x7k2m9 --as chris --reject "raw/extract.csv=row-level data cannot leave" --approve-all`,
		Args: exactArgs(1, "ID: give the egress request id (see airlock list --kind egress --state AWAITING_APPROVAL)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if strings.TrimSpace(as) == "" {
				return fmt.Errorf("--as: missing: say who is reviewing")
			}
			if rf.empty() {
				return fmt.Errorf("no verdict given: name files with --approve PATH, --request-changes PATH=COMMENT or --reject PATH=COMMENT, or use --approve-all")
			}
			svc, err := a.connect("")
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			st, err := a.status(svc, id)
			if err != nil {
				return err
			}
			if st.Kind != model.KindEgress || st.Egress == nil {
				return fmt.Errorf("request %s is an %s, not an egress: decide it with airlock approve or airlock reject", id, st.Kind)
			}
			i := st.CurrentStage()
			if i < 0 || st.State != model.StateAwaitingApproval {
				return &exitError{refusedf(a, "request %s is %s: reviews are accepted only while it is %s (airlock status %s)", id, st.State, model.StateAwaitingApproval, id)}
			}
			if stage == "" {
				stage = st.Stages[i].Name
			}
			rf.overallComment = strings.TrimSpace(comment) != ""
			files, err := rf.verdicts(st)
			if err != nil {
				return err
			}
			if digest == "" {
				digest = st.ManifestDigest
			}
			ctx, cancel := a.ctx()
			defer cancel()
			res, err := svc.Review(ctx, id, model.EgressReview{
				Stage: stage, By: as, Turn: st.Egress.Turn, Files: files, Comment: comment, ManifestDigest: digest, Via: "cli",
			})
			if err != nil {
				return a.egressRefusal(err, id)
			}
			if a.output == "json" {
				return a.printJSON(res)
			}
			printReviewResult(a, id, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&as, "as", "", "who is reviewing (must hold the stage's role; never the requester)")
	f.StringVar(&stage, "stage", "", "the output-checking stage you review (default: the open one)")
	f.StringArrayVar(&rf.approve, "approve", nil, "approve this file (PATH); repeatable")
	f.StringArrayVar(&rf.changes, "request-changes", nil, "ask for changes to a file (PATH=COMMENT); repeatable")
	f.StringArrayVar(&rf.reject, "reject", nil, "reject a file (PATH=COMMENT); repeatable")
	f.BoolVar(&rf.approveAll, "approve-all", false, "approve every open file no other flag names")
	f.StringVar(&comment, "comment", "", "an overall note for the requester and the record")
	f.StringVar(&digest, "digest", "", "manifest digest you reviewed (default: the request's current one)")
	return cmd
}

// refusedf prints a refusal the CLI found itself, as a refused update is
// printed, and returns it.
func refusedf(a *app, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	fmt.Fprintf(a.errOut, "refused: %s\n", err)
	return err
}

func printReviewResult(a *app, id string, res workflows.ReviewResult) {
	fmt.Fprintf(a.out, "%s: review recorded for turn %d (%d of %d reviews)", id, res.Turn, res.ReviewsIn, res.ReviewsNeeded)
	if len(res.Files) == 0 {
		fmt.Fprintf(a.out, "; verdicts are shown once every review of the turn is in\n")
		return
	}
	fmt.Fprintf(a.out, "; the request is %s\n", res.State)
	for _, f := range res.Files {
		fmt.Fprintf(a.out, "  %-15s %s\n", f.Verdict, f.Path)
	}
}

func (a *app) egressResubmitCmd() *cobra.Command {
	var as, comment string
	var files []string
	cmd := &cobra.Command{
		Use:   "resubmit ID --as USER [--file PATH...] [--comment C]",
		Short: "Resubmit a returned egress: a new turn with the files as they are now",
		Long: `resubmit answers an egress the checks or a checker sent back (RETURNED): fix the
files in the workspace, then resubmit. Every file is snapshotted again; files
whose bytes changed are reviewed again in the new turn. --file replaces the
list of files (name every file the request should hold; a file left out is
dropped); without it the request keeps its files. Only the requester resubmits.`,
		Example: `  airlock egress resubmit egress-ws1-x7k2m9 --as rita --comment "counts under 10 suppressed in table1.csv"
  airlock egress resubmit egress-ws1-x7k2m9 --as rita --file results/table1.csv --comment "dropped the raw extract"`,
		Args: exactArgs(1, "ID: give the egress request id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if strings.TrimSpace(as) == "" {
				return fmt.Errorf("--as: missing: say who is resubmitting (the requester)")
			}
			r := model.Resubmission{By: as, Files: files, Comment: comment, Via: "cli"}
			svc, err := a.connect("")
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			ctx, cancel := a.ctx()
			defer cancel()
			res, err := svc.Resubmit(ctx, id, r)
			if err != nil {
				return a.egressRefusal(err, id)
			}
			if a.output == "json" {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.out, "%s: turn %d is %s\n", id, res.Turn, res.State)
			return nil
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "who is resubmitting (the requester)")
	cmd.Flags().StringArrayVar(&files, "file", nil, "a file the request now holds, relative to the workspace's root; repeat for each (default: the same files)")
	cmd.Flags().StringVar(&comment, "comment", "", "what changed, or why a file did not, for the checkers")
	return cmd
}

func (a *app) egressWithdrawCmd() *cobra.Command {
	var as, reason string
	cmd := &cobra.Command{
		Use:     "withdraw ID --as USER [--reason R]",
		Short:   "Withdraw an egress before its release; its staged copies are removed",
		Example: `  airlock egress withdraw egress-ws1-x7k2m9 --as rita --reason "wrong version of the tables"`,
		Args:    exactArgs(1, "ID: give the egress request id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if strings.TrimSpace(as) == "" {
				return fmt.Errorf("--as: missing: say who is withdrawing the request")
			}
			svc, err := a.connect("")
			if err != nil {
				return err
			}
			defer svc.Client.Close()
			ctx, cancel := a.ctx()
			defer cancel()
			res, err := svc.Withdraw(ctx, id, model.Withdrawal{By: as, Reason: reason, Via: "cli"})
			if err != nil {
				return a.egressRefusal(err, id)
			}
			if a.output == "json" {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.out, "%s is %s\n", id, res.State)
			return nil
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "who is withdrawing (the requester or a member of an output-checking role)")
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the record")
	return cmd
}

// verifyResult is what `airlock egress verify -o json` prints.
type verifyResult struct {
	// Valid: the signature and every file match.
	Valid bool `json:"valid"`
	// SignatureValid: the manifest is signed by the key given (its files
	// may still not match: see Problems).
	SignatureValid bool                      `json:"signature_valid"`
	Dir            string                    `json:"dir"`
	Error          string                    `json:"error,omitempty"`
	Problems       []releasemanifest.Problem `json:"problems,omitempty"`
	Manifest       *releasemanifest.Manifest `json:"manifest,omitempty"`
}

func (a *app) egressVerifyCmd() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "verify DIR --public-key FILE",
		Short: "Verify a released egress: the manifest's signature and every file's size and SHA-256",
		Long: `verify checks a local copy of a release: the folder that holds
` + releasemanifest.FileName + `, its signature ` + releasemanifest.SignatureFileName + ` and the
released files. It checks the signature against the public key and the key id
the manifest names, then the size and SHA-256 of every file the manifest lists,
and reports any file in the folder the manifest does not list. It needs no
Airlock server: the key is the PEM the platform publishes (GET
/api/v1/egress/public-key, or .airlock/egress-signing-key.pub.pem under make
dev). It exits 1 when anything does not match, saying what.`,
		Example: `  airlock egress verify .airlock/outbox/egress-ws1-x7k2m9 --public-key .airlock/egress-signing-key.pub.pem
  airlock egress verify ./received --public-key airlock-egress.pub.pem -o json | jq .manifest.files`,
		Args: exactArgs(1, "DIR: give the folder that holds "+releasemanifest.FileName+" and the released files"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if keyFile == "" {
				return fmt.Errorf("--public-key: missing: give the release signing key's public key (PEM; GET /api/v1/egress/public-key serves it)")
			}
			pemBytes, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("--public-key %s: %w", keyFile, err)
			}
			pub, err := releasemanifest.ParsePublicKey(pemBytes)
			if err != nil {
				return fmt.Errorf("--public-key %s: %w", keyFile, err)
			}
			if info, err := os.Stat(dir); err != nil || !info.IsDir() {
				return fmt.Errorf("DIR %s: not a folder: give the folder that holds %s and the released files", dir, releasemanifest.FileName)
			}
			m, verr := releasemanifest.VerifyDir(dir, pub)
			var filesErr *releasemanifest.FilesError
			res := verifyResult{Valid: verr == nil, SignatureValid: verr == nil || errors.As(verr, &filesErr), Dir: dir}
			if verr != nil {
				res.Error = verr.Error()
			}
			if filesErr != nil {
				res.Problems = filesErr.Problems
			}
			if res.SignatureValid {
				res.Manifest = &m
			}
			if a.output == "json" {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else {
				printVerification(a, res)
			}
			if verr != nil {
				return &exitError{verr}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "public-key", "", "the release signing key's public key (PEM)")
	return cmd
}

// printVerification prints what verify found, for people.
func printVerification(a *app, res verifyResult) {
	if !res.SignatureValid {
		fmt.Fprintf(a.errOut, "NOT VERIFIED: %s\n", res.Error)
		return
	}
	m := res.Manifest
	var total int64
	for _, f := range m.Files {
		total += f.Size
	}
	w := a.out
	if res.Valid {
		fmt.Fprintf(w, "verified: the signature (key %s) and all %d file(s), %s\n", m.KeyID, len(m.Files), model.FormatBytes(total))
	} else {
		w = a.errOut
		fmt.Fprintf(w, "NOT VERIFIED: the manifest is signed (key %s), but %d file(s) do not match it:\n", m.KeyID, len(res.Problems))
		for _, p := range res.Problems {
			fmt.Fprintf(w, "  - %s\n", p.Message)
		}
	}
	fmt.Fprintf(w, "  request      %s (project %s, workspace %s, requested by %s)\n", m.Request, m.Project, m.Workspace, m.Requester)
	fmt.Fprintf(w, "  destination  %s\n", m.Destination)
	fmt.Fprintf(w, "  released     %s\n", m.ReleasedAt.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "  manifest     %s\n", m.ManifestDigest)
	if len(m.Withheld) > 0 {
		fmt.Fprintf(w, "  withheld     %d file(s) the checkers did not approve\n", len(m.Withheld))
	}
}
