package model

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// StageReturned is a stage whose reviews asked for changes: the request
// went back to its requester.
const StageReturned = "returned"

// CheckEgressRequest checks what a requester asks for, naming the field.
// Where the destination is known is the worker's configuration: the
// workflow checks the name against it when it releases.
func CheckEgressRequest(in EgressRequestInput) []string {
	var problems []string
	if !ValidName(in.Workspace) {
		problems = append(problems, fmt.Sprintf("workspace: invalid workspace %q: %s", in.Workspace, NameRule))
	}
	if !ValidName(in.Project) {
		problems = append(problems, fmt.Sprintf("project: invalid project id %q: %s (the project whose egress policy applies)", in.Project, NameRule))
	}
	if !ValidName(in.Destination) {
		problems = append(problems, fmt.Sprintf("destination: invalid destination name %q: name one of the destinations in the configuration (egress.destinations)", in.Destination))
	}
	if strings.TrimSpace(in.Justification) == "" {
		problems = append(problems, "justification: missing: say why these outputs need to leave the workspace (--justification)")
	}
	if msg := CheckEgressPaths(in.Files, "files"); msg != "" {
		problems = append(problems, msg)
	}
	return problems
}

// CheckEgressPaths checks a list of workspace paths: at least one, each
// clean, relative, not one Airlock keeps for itself, and listed once.
func CheckEgressPaths(paths []string, field string) string {
	if len(paths) == 0 {
		return field + ": empty: list at least one workspace file (--file PATH)"
	}
	seen := map[string]int{}
	for i, p := range paths {
		f := fmt.Sprintf("%s[%d]", field, i)
		clean, err := CleanRelPath(p)
		if err != nil {
			return fmt.Sprintf("%s: %v", f, err)
		}
		if clean != p {
			return fmt.Sprintf("%s: %q is not in clean form: send it as %q", f, p, clean)
		}
		if why := ReservedPath(clean); why != "" {
			return f + ": " + why
		}
		if j, dup := seen[clean]; dup {
			return fmt.Sprintf("%s: %s is listed twice (also %s[%d]): list each file once", f, clean, field, j)
		}
		seen[clean] = i
	}
	return ""
}

// OpenFiles lists the paths of the files still awaiting a verdict in the
// current turn, sorted.
func (e *EgressStatus) OpenFiles() []string {
	var out []string
	for _, f := range e.Files {
		if f.Verdict == VerdictPending {
			out = append(out, f.Path)
		}
	}
	sort.Strings(out)
	return out
}

// File returns the file at path.
func (e *EgressStatus) File(path string) (*EgressFile, bool) {
	for i := range e.Files {
		if e.Files[i].Path == path {
			return &e.Files[i], true
		}
	}
	return nil, false
}

// FileRecords lists the turn's files as plain records (for the manifest
// digest).
func (e *EgressStatus) FileRecords() []FileRecord {
	out := make([]FileRecord, len(e.Files))
	for i, f := range e.Files {
		out[i] = f.FileRecord
	}
	return out
}

// CheckReview applies the output-checking rules to a review: the request
// is waiting on the review's stage, in the review's turn; the reviewer is
// not the requester, holds the stage's role, has not reviewed this turn of
// the stage, and has not reviewed another stage of the request; the review
// names the turn's manifest digest and gives one verdict to every file
// open in the turn, and no other; changes and rejections say why.
// inRound are the reviews this stage already holds in this turn (held back
// from the status while the stage is independent). Like CheckDecision it
// is the single place the rules live.
func (r *RequestStatus) CheckReview(rv EgressReview, dir Directory, inRound []EgressReviewRecord) error {
	if r.Egress == nil {
		return refuse("request %s is a %s, not an egress: decide it with the decide Update (airlock approve)", r.ID, r.Kind)
	}
	e := r.Egress
	if strings.TrimSpace(rv.By) == "" {
		return refuse("by: missing: say who is reviewing (--as USER)")
	}
	if r.State != StateAwaitingApproval {
		return refuse("request %s is %s: reviews are accepted only while it is %s", r.ID, r.State, StateAwaitingApproval)
	}
	cur := r.CurrentStage()
	if cur < 0 {
		return refuse("request %s has no stage open for reviews", r.ID)
	}
	stage := r.Stages[cur]
	if rv.Stage == "" {
		rv.Stage = stage.Name
	}
	if rv.Stage != stage.Name {
		return refuse("stage %q is not open: the request is waiting on stage %q (role %s)", rv.Stage, stage.Name, stage.Role)
	}
	if rv.Turn != e.Turn {
		return refuse("turn: this review is of turn %d but the request is in turn %d (its files were resubmitted): review the current files (airlock status %s) and send turn %d", rv.Turn, e.Turn, r.ID, e.Turn)
	}
	if rv.By == r.Requester {
		return refuse("%s requested this egress and cannot check its outputs: checkers may not be the requester; ask a member of role %s", rv.By, stage.Role)
	}
	if !dir.Admits(rv.By, rv.Roles, stage.Role) {
		return refuse("%s is not a member of role %s in the directory%s, so cannot review stage %q; ask a member of %s", rv.By, stage.Role, dir.attestedClause(), stage.Name, stage.Role)
	}
	for _, prev := range inRound {
		if prev.By == rv.By {
			return refuse("%s has already reviewed turn %d of stage %q; it needs %d distinct checkers", rv.By, e.Turn, stage.Name, stage.Required)
		}
	}
	for _, prev := range e.Reviews {
		if prev.By == rv.By && prev.Stage != stage.Name {
			return refuse("%s already reviewed stage %q; one person reviews at most one stage of a request", rv.By, prev.Stage)
		}
	}
	if rv.ManifestDigest == "" {
		return refuse("manifest_digest: missing: a review names the manifest digest of the files it checked (shown by airlock status %s)", r.ID)
	}
	if rv.ManifestDigest != r.ManifestDigest {
		return refuse("manifest_digest %s does not match this request's files (%s): review the current files with airlock status %s and send the review again", rv.ManifestDigest, r.ManifestDigest, r.ID)
	}
	open := e.OpenFiles()
	given := map[string]bool{}
	for i, f := range rv.Files {
		field := fmt.Sprintf("files[%d]", i)
		ef, ok := e.File(f.Path)
		switch {
		case !ok:
			return refuse("%s.path: %q is not a file of this request (its files: %s)", field, f.Path, strings.Join(r.egressPaths(), ", "))
		case ef.Verdict != VerdictPending:
			return refuse("%s.path: %s is not open in turn %d: its bytes are unchanged since turn %d, where it was settled (%s); leave it out", field, f.Path, e.Turn, ef.Turn, ef.Verdict)
		case given[f.Path]:
			return refuse("%s.path: %s has two verdicts in this review: give each file one", field, f.Path)
		}
		given[f.Path] = true
		switch f.Verdict {
		case VerdictApprove:
		case VerdictRequestChanges, VerdictReject:
			if strings.TrimSpace(f.Comment) == "" && strings.TrimSpace(rv.Comment) == "" {
				return refuse("%s.comment: missing: say why %s gets %s, so the requester knows what to change", field, f.Path, f.Verdict)
			}
		default:
			return refuse("%s.verdict: %q is not a verdict (expected %s)", field, f.Verdict, strings.Join(Verdicts, ", "))
		}
	}
	var missing []string
	for _, p := range open {
		if !given[p] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return refuse("files: no verdict for %s: a review gives a verdict (%s) to every file open in turn %d", strings.Join(missing, ", "), strings.Join(Verdicts, ", "), e.Turn)
	}
	return nil
}

func (r *RequestStatus) egressPaths() []string {
	var out []string
	for _, f := range r.Egress.Files {
		out = append(out, f.Path)
	}
	return out
}

// CombineVerdicts is a stage's verdict on one file from its reviews: reject
// if any checker rejected it, else request-changes if any asked for
// changes, else approve.
func CombineVerdicts(reviews []EgressReviewRecord, path string) string {
	out := VerdictApprove
	for _, rv := range reviews {
		for _, f := range rv.Files {
			if f.Path != path {
				continue
			}
			switch f.Verdict {
			case VerdictReject:
				return VerdictReject
			case VerdictRequestChanges:
				out = VerdictRequestChanges
			}
		}
	}
	return out
}

// CheckResubmission applies the rules for a new turn: the request is
// RETURNED, the requester sends it, and any new list of files is valid.
func (r *RequestStatus) CheckResubmission(s Resubmission) error {
	if r.Egress == nil {
		return refuse("request %s is a %s, not an egress: only an egress is resubmitted", r.ID, r.Kind)
	}
	if strings.TrimSpace(s.By) == "" {
		return refuse("by: missing: say who resubmits (the requester, %s)", r.Requester)
	}
	if r.State != StateReturned {
		return refuse("request %s is %s: it can be resubmitted only while it is %s (after a checker asked for changes or a check blocked it)", r.ID, r.State, StateReturned)
	}
	if s.By != r.Requester {
		return refuse("%s may not resubmit request %s: only its requester (%s) may", s.By, r.ID, r.Requester)
	}
	if len(s.Files) > 0 {
		if msg := CheckEgressPaths(s.Files, "files"); msg != "" {
			return refuse("%s", msg)
		}
	}
	return nil
}

// CheckWithdrawal: the requester may withdraw an egress until its release
// starts.
func (r *RequestStatus) CheckWithdrawal(w Withdrawal) error {
	if r.Egress == nil {
		return refuse("request %s is a %s, not an egress: stop it with cancel (airlock cancel)", r.ID, r.Kind)
	}
	if strings.TrimSpace(w.By) == "" {
		return refuse("by: missing: say who withdraws (the requester, %s)", r.Requester)
	}
	if w.By != r.Requester {
		return refuse("%s may not withdraw request %s: only its requester (%s) may; a checker who wants to stop it cancels it (airlock cancel)", w.By, r.ID, r.Requester)
	}
	switch r.State {
	case StateChecking, StateAwaitingApproval, StateReturned:
		return nil
	case StateReleasing:
		return refuse("request %s is %s: its outputs are being copied to %s; once RELEASED it can be revoked (airlock revoke)", r.ID, r.State, r.Egress.Destination)
	case StateReleased:
		return refuse("request %s is already %s: revoke it instead (airlock revoke %s --reason ...)", r.ID, r.State, r.ID)
	}
	return refuse("request %s has already ended %s", r.ID, r.State)
}

// CheckRevocation: a released egress may be revoked, with a reason, by its
// requester or a member of one of its stages' roles.
func (r *RequestStatus) CheckRevocation(v Revocation, dir Directory) error {
	if r.Egress == nil {
		return refuse("request %s is a %s, not an egress: only a released egress is revoked", r.ID, r.Kind)
	}
	if strings.TrimSpace(v.By) == "" {
		return refuse("by: missing: say who revokes (--as USER)")
	}
	if strings.TrimSpace(v.Reason) == "" {
		return refuse("reason: missing: a revocation says why (--reason)")
	}
	if r.State != StateReleased {
		return refuse("request %s is %s: only a %s egress can be revoked", r.ID, r.State, StateReleased)
	}
	if v.By == r.Requester {
		return nil
	}
	var roles []string
	for _, s := range r.Stages {
		if dir.Admits(v.By, v.Roles, s.Role) {
			return nil
		}
		if !contains(roles, s.Role) {
			roles = append(roles, s.Role)
		}
	}
	return refuse("%s may not revoke request %s: only its requester (%s) or a member of its checking roles (%s) may, and %s is not one in the directory%s", v.By, r.ID, r.Requester, strings.Join(roles, ", "), v.By, dir.attestedClause())
}

// NextTurn lays out a new turn's files from what was snapshotted: a file
// whose path and bytes are unchanged since the last turn keeps that turn's
// settled verdict (approve or reject) and turn number; every other file is
// pending in the new turn. It returns the files and the paths new or
// changed.
func (e *EgressStatus) NextTurn(turn int, staged []FileRecord) ([]EgressFile, []string) {
	var files []EgressFile
	var changed []string
	for _, f := range staged {
		nf := EgressFile{FileRecord: f, Turn: turn, Verdict: VerdictPending}
		if old, ok := e.File(f.Path); ok && old.SHA256 == f.SHA256 && old.Size == f.Size {
			if old.Verdict == VerdictApprove || old.Verdict == VerdictReject {
				nf.Turn, nf.Verdict = old.Turn, old.Verdict
			}
		} else {
			changed = append(changed, f.Path)
		}
		files = append(files, nf)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	sort.Strings(changed)
	return files, changed
}

// ApprovedFiles lists the files every stage approved.
func (e *EgressStatus) ApprovedFiles() []FileRecord {
	var out []FileRecord
	for _, f := range e.Files {
		if f.Verdict == VerdictApprove {
			out = append(out, f.FileRecord)
		}
	}
	return out
}

// RetentionFor is how long released data of a request is kept: the data
// source's annotation when it has one, else the policy's.
func RetentionFor(p Policy, ds *DataSource) (time.Duration, error) {
	if ds != nil {
		if v, ok := ds.Metadata.Annotations[RetentionAnnotation]; ok {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return 0, fmt.Errorf("metadata.annotations[%s]: %q is not a retention period: give a Go duration such as 2160h (90 days)", RetentionAnnotation, v)
			}
			return d, nil
		}
	}
	return time.Duration(p.Retention.Released), nil
}
