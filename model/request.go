package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Kind is the direction of a request.
type Kind string

// Request kinds.
const (
	KindImport Kind = "import"
	KindUpload Kind = "upload"
	KindEgress Kind = "egress"
)

// State is where a request is in its life. States ending in ING are the ones
// in which data moves.
type State string

// Request states (DESIGN.md "States").
const (
	StateExtracting       State = "EXTRACTING"
	StateAwaitingUpload   State = "AWAITING_UPLOAD"
	StateChecking         State = "CHECKING"
	StateAwaitingApproval State = "AWAITING_APPROVAL"
	StateReleasing        State = "RELEASING"
	StateCompleted        State = "COMPLETED"
	StateReleased         State = "RELEASED"
	StateRejected         State = "REJECTED"
	StateFailed           State = "FAILED"
	StateCancelled        State = "CANCELLED"
	StateExpired          State = "EXPIRED"
)

// States lists every state, for flag validation.
var States = []State{StateExtracting, StateAwaitingUpload, StateChecking, StateAwaitingApproval, StateReturned, StateReleasing,
	StateCompleted, StateReleased, StateRejected, StateFailed, StateCancelled, StateExpired, StateWithdrawn, StateRevoked}

// Terminal reports whether a request in s will never change again.
func (s State) Terminal() bool {
	switch s {
	case StateCompleted, StateReleased, StateRejected, StateFailed, StateCancelled, StateExpired, StateWithdrawn, StateRevoked:
		return true
	}
	return false
}

// Stage states.
const (
	StagePending  = "pending"  // not reached yet
	StageWaiting  = "waiting"  // open for decisions now
	StageApproved = "approved" // reached its number of approvals
	StageRejected = "rejected" // a member rejected the request here
	StageExpired  = "expired"  // its deadline passed
	StageClosed   = "closed"   // the request ended (cancelled, failed) while it was open
)

// Decisions.
const (
	Approve = "approve"
	Reject  = "reject"
)

// FileRecord is one file of a request: where it sits in the crate, its size
// and its SHA-256, computed while it was copied.
type FileRecord struct {
	Path           string `json:"path"`
	Size           int64  `json:"size"`
	SHA256         string `json:"sha256"`
	EncodingFormat string `json:"encoding_format,omitempty"`
}

// ManifestDigest is the digest a decision approves: SHA-256 over the files
// sorted by path, one line each of path, size and SHA-256 separated by tabs
// ("path\tsize\tsha256\n"); paths cannot hold tabs or newlines. Anyone can
// recompute it from the crate's File entities.
func ManifestDigest(files []FileRecord) string {
	sorted := append([]FileRecord(nil), files...)
	// Ties (a path listed twice, which a manifest should never hold) are
	// broken on size and digest, so the digest never depends on input order.
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Size != b.Size {
			return a.Size < b.Size
		}
		return a.SHA256 < b.SHA256
	})
	h := sha256.New()
	for _, f := range sorted {
		h.Write([]byte(f.Path + "\t" + strconv.FormatInt(f.Size, 10) + "\t" + f.SHA256 + "\n"))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// DecisionRequest is what an approver sends: the payload of the decide Update
// and of the decide Signal alike.
type DecisionRequest struct {
	Stage          string `json:"stage"`
	By             string `json:"by"`
	Decision       string `json:"decision"`
	Comment        string `json:"comment,omitempty"`
	ManifestDigest string `json:"manifest_digest"`
	// Via names the entry point (cli, api, temporal-ui). The workflow
	// overwrites it for signals, which it records as "signal".
	Via string `json:"via,omitempty"`
	// Roles are the roles the entry point verified By holds (the API reads
	// them from the identity provider's claims). They count only where the
	// request's Directory has AttestedRoles set; a Signal's are ignored, as
	// no entry point vouches for them.
	Roles []string `json:"roles,omitempty"`
}

// DecisionRecord is an accepted decision.
type DecisionRecord struct {
	By             string    `json:"by"`
	Decision       string    `json:"decision"`
	Comment        string    `json:"comment"`
	At             time.Time `json:"at"`
	ManifestDigest string    `json:"manifest_digest"`
	Via            string    `json:"via"`
}

// RefusedDecision is a decision the workflow refused, kept so that every
// attempt is on record (refused Updates are answered to the caller instead).
type RefusedDecision struct {
	DecisionRequest
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// StageStatus is one approval stage of a request.
type StageStatus struct {
	Name       string           `json:"name"`
	Role       string           `json:"role"`
	Required   int              `json:"required"`
	State      string           `json:"state"`
	OpenedAt   *time.Time       `json:"opened_at,omitempty"`
	DeadlineAt *time.Time       `json:"deadline_at,omitempty"`
	Decisions  []DecisionRecord `json:"decisions"`
}

// Approvals counts the stage's approvals.
func (s StageStatus) Approvals() int {
	n := 0
	for _, d := range s.Decisions {
		if d.Decision == Approve {
			n++
		}
	}
	return n
}

// CancelRequest asks to stop a request.
type CancelRequest struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	Via    string `json:"via,omitempty"`
	// Roles are the roles the entry point verified By holds, as in
	// DecisionRequest.
	Roles []string `json:"roles,omitempty"`
}

// RequestStatus is the whole state of a request: what the state query
// returns, what `airlock status -o json` prints and what the API serves.
type RequestStatus struct {
	ID             string            `json:"id"`
	Kind           Kind              `json:"kind"`
	State          State             `json:"state"`
	DataSource     string            `json:"datasource"`
	DisplayName    string            `json:"display_name,omitempty"`
	Project        string            `json:"project"`
	Workspace      string            `json:"workspace"`
	Requester      string            `json:"requester"`
	Via            string            `json:"via,omitempty"` // the entry point that started it (cli, api)
	Policy         string            `json:"policy,omitempty"`
	ManifestDigest string            `json:"manifest_digest"`
	Stages         []StageStatus     `json:"stages"`
	Files          []FileRecord      `json:"files"`
	Progress       Progress          `json:"progress"`
	Location       string            `json:"location"`
	Error          string            `json:"error"`
	Refused        []RefusedDecision `json:"refused,omitempty"`
	CancelledBy    string            `json:"cancelled_by,omitempty"`
	CancelReason   string            `json:"cancel_reason,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
	ExtractedAt    *time.Time        `json:"extracted_at,omitempty"`
	FinishedAt     *time.Time        `json:"finished_at,omitempty"`
	// ExpiresAt is when an upload that its uploader has not confirmed (and
	// whose files have not passed their checks) expires; nil once they have.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Checks are the automatic checks of an upload's files, from its last
	// CHECKING step.
	Checks []CheckResult `json:"checks,omitempty"`
	// Egress is set for an egress: its destination, turns, per-file
	// verdicts, reviews, release and revocation.
	Egress *EgressStatus `json:"egress,omitempty"`
	// Deletions are the deletions its retention scheduled: each is
	// carried out (and recorded) by a RetentionWorkflow.
	Deletions []ScheduledDeletion `json:"deletions,omitempty"`
}

// Progress counts how much of the extraction is done. Objects in flight
// report their own bytes in their activities' heartbeats.
type Progress struct {
	ObjectsTotal int   `json:"objects_total"`
	ObjectsDone  int   `json:"objects_done"`
	FilesTotal   int   `json:"files_total"`
	BytesTotal   int64 `json:"bytes_total"`
	BytesDone    int64 `json:"bytes_done"` // of finished objects
}

// NewStages lays out a policy's stages, none of them open.
func NewStages(p Policy) []StageStatus {
	out := make([]StageStatus, len(p.Stages))
	for i, s := range p.Stages {
		out[i] = StageStatus{Name: s.Name, Role: s.Role, Required: s.Approvals, State: StagePending, Decisions: []DecisionRecord{}}
	}
	return out
}

// CurrentStage returns the index of the stage open for decisions, or -1.
func (r *RequestStatus) CurrentStage() int {
	for i, s := range r.Stages {
		if s.State == StageWaiting {
			return i
		}
	}
	return -1
}

// AwaitingRole is the role whose members the request waits on, or "".
func (r *RequestStatus) AwaitingRole() string {
	if i := r.CurrentStage(); i >= 0 && r.State == StateAwaitingApproval {
		return r.Stages[i].Role
	}
	return ""
}

// DecisionRefusal is a decision the rules of DESIGN.md's "Approval gates"
// refuse. Its message says what was wrong and what to do instead.
type DecisionRefusal struct{ Reason string }

func (e *DecisionRefusal) Error() string { return e.Reason }

func refuse(format string, args ...any) error {
	return &DecisionRefusal{Reason: fmt.Sprintf(format, args...)}
}

// CheckDecision applies every approval rule to d. It is the single place the
// rules live; the workflow calls it for Updates (in the validator, so a
// refusal leaves no history) and for Signals alike.
func (r *RequestStatus) CheckDecision(d DecisionRequest, dir Directory) error {
	if strings.TrimSpace(d.By) == "" {
		return refuse("by: missing: say who is deciding (--as USER)")
	}
	if d.Decision != Approve && d.Decision != Reject {
		return refuse("decision: %q is not a decision (expected %s or %s)", d.Decision, Approve, Reject)
	}
	if r.State != StateAwaitingApproval {
		return refuse("request %s is %s: decisions are accepted only while it is %s", r.ID, r.State, StateAwaitingApproval)
	}
	idx := -1
	var names []string
	for i, s := range r.Stages {
		names = append(names, s.Name)
		if s.Name == d.Stage {
			idx = i
		}
	}
	if idx < 0 {
		return refuse("stage: unknown stage %q (this request's stages: %s)", d.Stage, strings.Join(names, ", "))
	}
	cur := r.CurrentStage()
	stage := r.Stages[idx]
	if idx != cur {
		if cur < 0 {
			return refuse("stage %q is %s and no stage is open for decisions", d.Stage, stage.State)
		}
		return refuse("stage %q is %s: the request is waiting on stage %q (role %s)", d.Stage, stage.State, r.Stages[cur].Name, r.Stages[cur].Role)
	}
	if d.By == r.Requester {
		return refuse("%s requested this %s and cannot decide on it: the requester never approves their own request; ask a member of role %s", d.By, r.Kind, stage.Role)
	}
	if !dir.Admits(d.By, d.Roles, stage.Role) {
		return refuse("%s is not a member of role %s in the directory%s, so cannot decide stage %q; ask a member of %s", d.By, stage.Role, dir.attestedClause(), stage.Name, stage.Role)
	}
	for i, s := range r.Stages {
		for _, prev := range s.Decisions {
			if prev.By != d.By {
				continue
			}
			if i == idx {
				return refuse("%s has already decided stage %q; it needs %d distinct approvers", d.By, stage.Name, stage.Required)
			}
			if prev.Decision == Approve {
				return refuse("%s already approved stage %q; one person approves at most one stage of a request", d.By, s.Name)
			}
		}
	}
	if d.ManifestDigest == "" {
		return refuse("manifest_digest: missing: a decision names the manifest digest it approves (shown by airlock status %s)", r.ID)
	}
	if d.ManifestDigest != r.ManifestDigest {
		return refuse("manifest_digest %s does not match this request's files (%s): review the current files with airlock status %s and decide again", d.ManifestDigest, r.ManifestDigest, r.ID)
	}
	if d.Decision == Reject && strings.TrimSpace(d.Comment) == "" {
		return refuse("a rejection needs a comment saying why (--comment)")
	}
	return nil
}

// ApplyDecision records an accepted decision and moves the stage on. It
// returns true when the stage is settled (approved or rejected).
func (r *RequestStatus) ApplyDecision(d DecisionRequest, at time.Time) bool {
	idx := r.CurrentStage()
	s := &r.Stages[idx]
	s.Decisions = append(s.Decisions, DecisionRecord{
		By: d.By, Decision: d.Decision, Comment: d.Comment, At: at, ManifestDigest: d.ManifestDigest, Via: d.Via,
	})
	switch {
	case d.Decision == Reject:
		s.State = StageRejected
		return true
	case s.Approvals() >= s.Required:
		s.State = StageApproved
		return true
	}
	return false
}

// CheckCancel applies the rules for stopping a request: the requester, or a
// member of any of its stages' roles, may cancel until its data starts to be
// released.
func (r *RequestStatus) CheckCancel(c CancelRequest, dir Directory) error {
	if strings.TrimSpace(c.By) == "" {
		return refuse("by: missing: say who is cancelling (--as USER)")
	}
	if r.State.Terminal() {
		return refuse("request %s has already ended %s", r.ID, r.State)
	}
	if r.State == StateReleasing {
		return refuse("request %s is %s: its approved data is being copied to the workspace and can no longer be cancelled", r.ID, r.State)
	}
	if c.By == r.Requester {
		return nil
	}
	var roles []string
	for _, s := range r.Stages {
		if dir.Admits(c.By, c.Roles, s.Role) {
			return nil
		}
		if !contains(roles, s.Role) {
			roles = append(roles, s.Role)
		}
	}
	if len(roles) == 0 {
		return refuse("%s may not cancel request %s: only the requester (%s) or a member of its approval roles may", c.By, r.ID, r.Requester)
	}
	return refuse("%s may not cancel request %s: only the requester (%s) or a member of its approval roles (%s) may, and %s is not one in the directory%s", c.By, r.ID, r.Requester, strings.Join(roles, ", "), c.By, dir.attestedClause())
}

// FormatBytes renders a size for people: 512 B, 52.6 KiB, 1.0 GiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
