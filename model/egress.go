package model

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

// Egress: outputs leave a workspace only to a destination the platform has
// agreed in advance, after automatic checks and output checking. The
// request's files are snapshotted from the workspace into its staging area
// at each turn; checkers review the staged copies, and release copies
// exactly the staged bytes they approved.

// Egress states beyond the shared ones.
const (
	// StateReturned: a checker asked for changes; the requester replaces
	// files and resubmits (a new turn), or withdraws.
	StateReturned State = "RETURNED"
	// StateWithdrawn: the requester withdrew the request before release.
	StateWithdrawn State = "WITHDRAWN"
	// StateRevoked: a released egress was revoked; its released copies were
	// removed where the destination allows.
	StateRevoked State = "REVOKED"
)

// Per-file verdicts of an output checker.
const (
	VerdictApprove        = "approve"
	VerdictRequestChanges = "request-changes"
	VerdictReject         = "reject"
	// VerdictPending is a file's standing before enough checkers have
	// reviewed it in the current turn.
	VerdictPending = "pending"
)

// Verdicts lists the verdicts a checker may give a file.
var Verdicts = []string{VerdictApprove, VerdictRequestChanges, VerdictReject}

// Check outcomes when an automatic check fails.
const (
	OnFailBlock = "block" // the request goes back to its requester (RETURNED)
	OnFailFlag  = "flag"  // the reviewers see the finding beside the file
)

// EgressRequestInput is what a requester asks for: files of a workspace
// (paths relative to the workspace's root) to go to a destination named in
// the configuration, and why.
type EgressRequestInput struct {
	Workspace     string   `json:"workspace"`
	Project       string   `json:"project"`
	Destination   string   `json:"destination"`
	Files         []string `json:"files"`
	Justification string   `json:"justification"`
}

// FileReview is a checker's verdict on one file.
type FileReview struct {
	Path    string `json:"path"`
	Verdict string `json:"verdict"`
	Comment string `json:"comment,omitempty"`
}

// EgressReview is an output checker's review of one turn: a verdict on
// every file still open in that turn. It is the payload of the review
// Update and Signal.
type EgressReview struct {
	Stage string `json:"stage"`
	By    string `json:"by"`
	// Turn is the turn reviewed: a review of an earlier turn is refused.
	Turn  int          `json:"turn"`
	Files []FileReview `json:"files"`
	// Comment is an overall note for the requester and the record.
	Comment string `json:"comment,omitempty"`
	// ManifestDigest names the turn's files (model.ManifestDigest of the
	// request's current files), as a decision does.
	ManifestDigest string `json:"manifest_digest"`
	Via            string `json:"via,omitempty"`
	// Roles are the roles the entry point verified By holds (see
	// DecisionRequest.Roles); a Signal's are ignored.
	Roles []string `json:"roles,omitempty"`
}

// EgressReviewRecord is an accepted review.
type EgressReviewRecord struct {
	Stage          string       `json:"stage"`
	By             string       `json:"by"`
	Turn           int          `json:"turn"`
	At             time.Time    `json:"at"`
	Files          []FileReview `json:"files"`
	Comment        string       `json:"comment,omitempty"`
	ManifestDigest string       `json:"manifest_digest"`
	Via            string       `json:"via"`
}

// Resubmission is the requester's answer to RETURNED: the files the request
// now holds (replaced in the workspace, or unchanged with a comment saying
// why), for a new turn. It is the payload of the resubmit Update.
type Resubmission struct {
	By string `json:"by"`
	// Files is the full list of workspace paths for the new turn; empty
	// means the same paths as before (their bytes are snapshotted again).
	Files   []string `json:"files,omitempty"`
	Comment string   `json:"comment,omitempty"`
	Via     string   `json:"via,omitempty"`
}

// Withdrawal is the requester's withdrawal of an egress before release.
type Withdrawal struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	Via    string `json:"via,omitempty"`
}

// Revocation asks to revoke a released egress: the payload of the revoke
// Update.
type Revocation struct {
	By     string   `json:"by"`
	Reason string   `json:"reason"`
	Via    string   `json:"via,omitempty"`
	Roles  []string `json:"roles,omitempty"`
}

// RevocationRecord is an accepted revocation and what it removed.
type RevocationRecord struct {
	By      string    `json:"by"`
	Reason  string    `json:"reason"`
	Via     string    `json:"via"`
	At      time.Time `json:"at"`
	Removed int       `json:"removed"`
	// Note says what could not be removed and why (a destination that
	// does not allow deletion), or is empty.
	Note string `json:"note,omitempty"`
}

// EgressFile is one file of an egress and where it stands in the current
// turn.
type EgressFile struct {
	FileRecord
	// Turn is the turn whose snapshot these bytes came from: a file
	// unchanged since an earlier turn keeps that turn's number.
	Turn int `json:"turn"`
	// Verdict is pending until the turn's reviews are all in (or, for a
	// file unchanged since an earlier turn, that turn's settled verdict).
	Verdict string `json:"verdict"`
	// Flags names the automatic checks that flagged the file.
	Flags []string `json:"flags,omitempty"`
}

// EgressTurn is one submission of the request's files.
type EgressTurn struct {
	Turn           int       `json:"turn"`
	By             string    `json:"by"`
	At             time.Time `json:"at"`
	Comment        string    `json:"comment,omitempty"`
	ManifestDigest string    `json:"manifest_digest"`
	// Changed lists the files new or changed since the previous turn
	// (every file in the first).
	Changed []string `json:"changed"`
}

// EgressRelease is where a release put the files and its signed manifest.
type EgressRelease struct {
	Location       string    `json:"location"`
	Prefix         string    `json:"prefix"`
	ManifestURL    string    `json:"manifest_url"`
	ManifestSHA256 string    `json:"manifest_sha256"`
	SignatureURL   string    `json:"signature_url"`
	KeyID          string    `json:"key_id"`
	Files          int       `json:"files"`
	Bytes          int64     `json:"bytes"`
	At             time.Time `json:"at"`
}

// EgressStatus is what an egress adds to a RequestStatus.
type EgressStatus struct {
	Destination   string `json:"destination"`
	Justification string `json:"justification"`
	// Paths are the workspace paths the current turn snapshotted.
	Paths []string     `json:"paths"`
	Turn  int          `json:"turn"`
	Files []EgressFile `json:"files"`
	Turns []EgressTurn `json:"turns"`
	// Reviews are the reviews revealed so far. While a turn's reviews are
	// independent and not all in, they are held back from everyone: the
	// status then shows only ReviewsIn.
	Reviews []EgressReviewRecord `json:"reviews"`
	// ReviewsIn counts the reviews given in the current turn, and
	// ReviewsNeeded how many it needs.
	ReviewsIn     int               `json:"reviews_in"`
	ReviewsNeeded int               `json:"reviews_needed"`
	Withdrawn     *Withdrawal       `json:"withdrawn,omitempty"`
	Release       *EgressRelease    `json:"release,omitempty"`
	Revocation    *RevocationRecord `json:"revocation,omitempty"`
}

// OutputChecks are an egress policy's automatic checks (spec.checks).
// Each has its own onFail: block returns the request to its requester,
// flag shows the finding to the checkers beside the file.
type OutputChecks struct {
	Limits *OutputLimits `yaml:"limits,omitempty" json:"limits,omitempty"`
	Types  *OutputTypes  `yaml:"types,omitempty" json:"types,omitempty"`
	Rules  []OutputRule  `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// OutputLimits bound an egress: zero means no limit.
type OutputLimits struct {
	MaxFiles     int    `yaml:"maxFiles,omitempty" json:"max_files,omitempty"`
	MaxFileSize  int64  `yaml:"maxFileSize,omitempty" json:"max_file_size,omitempty"`
	MaxTotalSize int64  `yaml:"maxTotalSize,omitempty" json:"max_total_size,omitempty"`
	OnFail       string `yaml:"onFail" json:"on_fail"`
}

// OutputTypes lists the file types an egress may hold, by extension
// (".csv", ".png"; matched case-insensitively).
type OutputTypes struct {
	Allowed []string `yaml:"allowed" json:"allowed"`
	OnFail  string   `yaml:"onFail" json:"on_fail"`
}

// Output rule kinds.
const (
	// RuleDenyPath: no file may match any of Paths (globs).
	RuleDenyPath = "deny-path"
	// RuleDenyContent: no text file (of those Paths match, default all)
	// may contain a match of Pattern (a Go regular expression).
	RuleDenyContent = "deny-content"
	// RuleMinCellCount: in CSV/TSV files (of those Paths match), no
	// number in a column whose header matches Columns (a regular
	// expression; default every column) may lie between 1 and
	// Threshold-1: small counts can identify people.
	RuleMinCellCount = "min-cell-count"
)

// OutputRuleKinds lists the rule kinds.
var OutputRuleKinds = []string{RuleDenyPath, RuleDenyContent, RuleMinCellCount}

// OutputRule is one rule of an egress policy's rule set.
type OutputRule struct {
	Name        string   `yaml:"name" json:"name"`
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`
	Kind        string   `yaml:"kind" json:"kind"`
	Paths       []string `yaml:"paths,omitempty" json:"paths,omitempty"`
	Pattern     string   `yaml:"pattern,omitempty" json:"pattern,omitempty"`
	Columns     string   `yaml:"columns,omitempty" json:"columns,omitempty"`
	Threshold   int      `yaml:"threshold,omitempty" json:"threshold,omitempty"`
	OnFail      string   `yaml:"onFail" json:"on_fail"`
}

// Retention says how long a request's data is kept (policy spec.retention;
// a data source may set Released per use case with the
// airlock.xlscsde.nhs.uk/retention annotation).
type Retention struct {
	// StagingGrace is how long the staging area of a request that ended
	// REJECTED, EXPIRED, CANCELLED, WITHDRAWN or FAILED is kept before it
	// is deleted (0: at once).
	StagingGrace Duration `yaml:"stagingGrace,omitempty" json:"staging_grace,omitempty"`
	// Released is how long released data (a workspace's copy of an
	// import or upload, an egress destination's copy) is kept before it
	// is deleted (0: kept until removed by hand or revoked).
	Released Duration `yaml:"released,omitempty" json:"released,omitempty"`
}

// RetentionAnnotation on a data source sets Retention.Released for the
// data it brings in (a Go duration, such as 2160h).
const RetentionAnnotation = "airlock.xlscsde.nhs.uk/retention"

// ScheduledDeletion is a deletion a request's retention set up.
type ScheduledDeletion struct {
	// Zone is staging, workspace or destination; Destination names the
	// destination for the last.
	Zone        string    `json:"zone"`
	Destination string    `json:"destination,omitempty"`
	Prefix      string    `json:"prefix"`
	Location    string    `json:"location,omitempty"`
	DueAt       time.Time `json:"due_at"`
	Reason      string    `json:"reason"`
	// WorkflowID is the RetentionWorkflow that carries it out.
	WorkflowID string `json:"workflow_id"`
}

// CheckOnFail checks an onFail value.
func CheckOnFail(v string) bool { return v == OnFailBlock || v == OnFailFlag }

// Validate checks an egress policy's checks, naming the field.
func (c *OutputChecks) Validate(field string) FieldErrors {
	var errs FieldErrors
	if c == nil {
		return nil
	}
	onFail := func(f, v string) {
		if !CheckOnFail(v) {
			errs.add(0, f+".onFail", "%q: say %s (the request goes back to its requester) or %s (the checkers see the finding)", v, OnFailBlock, OnFailFlag)
		}
	}
	if l := c.Limits; l != nil {
		if l.MaxFiles < 0 || l.MaxFileSize < 0 || l.MaxTotalSize < 0 {
			errs.add(0, field+".limits", "maxFiles, maxFileSize and maxTotalSize cannot be negative (0 means no limit)")
		}
		onFail(field+".limits", l.OnFail)
	}
	if t := c.Types; t != nil {
		if len(t.Allowed) == 0 {
			errs.add(0, field+".types.allowed", "missing: list the allowed extensions, such as .csv and .png")
		}
		for i, ext := range t.Allowed {
			if !strings.HasPrefix(ext, ".") || strings.Contains(ext, "/") || len(ext) < 2 {
				errs.add(0, fmt.Sprintf("%s.types.allowed[%d]", field, i), "%q is not an extension: write it with its dot, such as .csv", ext)
			}
		}
		onFail(field+".types", t.OnFail)
	}
	seen := map[string]int{}
	for i, r := range c.Rules {
		f := fmt.Sprintf("%s.rules[%d]", field, i)
		if !ValidName(r.Name) {
			errs.add(0, f+".name", "missing or invalid rule name %q: %s", r.Name, NameRule)
		} else if r.Name == "limits" || r.Name == "types" {
			errs.add(0, f+".name", "%q is the name of a built-in check (spec.checks.%s): name the rule for what it looks for", r.Name, r.Name)
		} else if j, dup := seen[r.Name]; dup {
			errs.add(0, f+".name", "duplicate rule name %q (also %s.rules[%d])", r.Name, field, j)
		}
		seen[r.Name] = i
		for j, g := range r.Paths {
			if _, err := path.Match(g, ""); err != nil {
				errs.add(0, fmt.Sprintf("%s.paths[%d]", f, j), "%q is not a valid glob: %v", g, err)
			}
		}
		switch r.Kind {
		case RuleDenyPath:
			if len(r.Paths) == 0 {
				errs.add(0, f+".paths", "missing: a %s rule lists the globs no file may match", RuleDenyPath)
			}
		case RuleDenyContent:
			if r.Pattern == "" {
				errs.add(0, f+".pattern", "missing: a %s rule gives the regular expression no file may contain", RuleDenyContent)
			} else if err := checkRegexp(r.Pattern); err != nil {
				errs.add(0, f+".pattern", "%v", err)
			}
		case RuleMinCellCount:
			if r.Threshold < 2 {
				errs.add(0, f+".threshold", "must be at least 2 (found %d): counts from 1 to threshold-1 are refused", r.Threshold)
			}
			if r.Columns != "" {
				if err := checkRegexp(r.Columns); err != nil {
					errs.add(0, f+".columns", "%v", err)
				}
			}
		default:
			errs.add(0, f+".kind", "unknown rule kind %q (expected one of %s)", r.Kind, strings.Join(OutputRuleKinds, ", "))
		}
		onFail(f, r.OnFail)
	}
	return errs
}

func checkRegexp(expr string) error {
	if _, err := regexp.Compile(expr); err != nil {
		return fmt.Errorf("%q is not a valid regular expression (Go RE2 syntax): %v", expr, err)
	}
	return nil
}
