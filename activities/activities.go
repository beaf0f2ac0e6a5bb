// Package activities holds every side effect of Airlock's workflows: reading
// sources, writing the staging and workspace stores, writing RO-Crates,
// resolving policies. Each activity is a method on Activities, which holds the
// dependencies; each takes one input struct and returns one result struct
// carrying references, sizes and digests, never file bytes or secrets.
package activities

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

// Activities holds what the activities need. The worker builds one from its
// config and registers its methods.
type Activities struct {
	Staging    connectors.Store    // the quarantine
	Workspaces connectors.Store    // approved data, one folder per workspace
	Sources    connectors.Registry // connection type -> source factory
	Policies   *model.PolicyBook   // approval policies, their selection and the directory
	Transfer   TransferConfig
	// Secrets resolves the connections' secret references; the activities
	// use it to scrub any value it handed out from the errors they return.
	Secrets *secrets.Provider
	// WorkDir is a local folder where producers (SQL tables, dlt pipelines)
	// make an object's files before they are copied into staging; default
	// a folder in the system's temporary directory.
	WorkDir string
	// Destinations are the egress destinations, by name (config
	// egress.destinations): the only places an egress can release to.
	Destinations map[string]EgressDestination
	// SigningKey names the secret that holds the Ed25519 private key
	// (PKCS#8 PEM) release manifests are signed with (config
	// egress.signingKey); it is resolved through Secrets when used.
	SigningKey string
	// Temporal is the worker's client, for visibility queries (a
	// scheduled import looks for a running import of its data source).
	Temporal client.Client
}

// EgressDestination is a place egress may release to.
type EgressDestination struct {
	Store       connectors.Store
	Description string
	// Revocable says whether released copies may be deleted there (a
	// revocation or the end of retention); false for write-once stores.
	Revocable bool
}

// TransferConfig tunes copying.
type TransferConfig struct {
	// BufferSize is the copy buffer, in bytes (default 1 MiB).
	BufferSize int
	// CheckpointEvery is how often a copy makes its progress durable and
	// heartbeats it (default 2s).
	CheckpointEvery time.Duration
	// MaxBytesPerSecond limits each copy's rate, to spare a source; 0 means no limit.
	MaxBytesPerSecond int64
}

func (t TransferConfig) withDefaults() TransferConfig {
	if t.BufferSize <= 0 {
		t.BufferSize = 1 << 20
	}
	if t.CheckpointEvery <= 0 {
		t.CheckpointEvery = 2 * time.Second
	}
	return t
}

// Error types that the workflow recognises in an ApplicationError.
const (
	ErrTypeBadInput = "BadInput"
)

// nonRetryable turns a bad-input error into a non-retryable Temporal error,
// so a problem retrying cannot fix fails the request at once with its reason.
func nonRetryable(err error) error {
	if err == nil {
		return nil
	}
	if connectors.IsBadInput(err) {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, nil)
	}
	// The SDK reads only the outermost error's type, so an ApplicationError
	// wrapped with context would lose its type and non-retryability.
	var app *temporal.ApplicationError
	if errors.As(err, &app) && app.NonRetryable() {
		return temporal.NewNonRetryableApplicationError(err.Error(), app.Type(), nil)
	}
	// A FieldError alone (as PolicyBook.Select returns) is bad input too.
	if _, ok := model.AsFieldErrors(err); ok {
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, nil)
	}
	return err
}

// failure is how every activity error leaves the worker: bad input made
// non-retryable, and any secret value the worker resolved replaced, so that
// no secret reaches the workflow history, whatever a library put in its
// error text.
func (a *Activities) failure(err error) error {
	if err == nil {
		return nil
	}
	err = nonRetryable(err)
	msg := err.Error()
	clean := a.Secrets.Scrub(msg)
	if clean == msg {
		return err
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		if app.NonRetryable() {
			return temporal.NewNonRetryableApplicationError(clean, app.Type(), nil)
		}
		return temporal.NewApplicationError(clean, app.Type())
	}
	return errors.New(clean)
}

// isNonRetryable reports whether err is an ApplicationError marked non-retryable.
func isNonRetryable(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.NonRetryable()
}

// StagingPrefix is where a request's crate sits in the staging store.
func StagingPrefix(requestID string) string { return requestID }

// WorkspacePrefix is where a released request's crate sits in the workspace store.
func WorkspacePrefix(workspace, dataSource, requestID string) string {
	return path.Join(workspace, dataSource, requestID)
}

// CrateFile is the RO-Crate metadata file's name within a crate.
const CrateFile = model.CrateFileName

// BindingFile is where a release records its AnalyticsWorkspaceDataBinding.
const BindingFile = model.BindingFileName

// ---- ResolvePolicy ----

// ResolvePolicyInput asks which policy governs a request.
type ResolvePolicyInput struct {
	Project   string     `json:"project"`
	Kind      model.Kind `json:"kind"`
	Requested string     `json:"requested,omitempty"` // --policy, when given
}

// ResolvePolicyResult is the policy snapshot and the directory of its roles.
type ResolvePolicyResult struct {
	Policy    model.Policy    `json:"policy"`
	Directory model.Directory `json:"directory"`
}

// ResolvePolicy picks the policy for a request and snapshots the directory
// members of its roles. A policy that is not allowed for the project is bad
// input: the request fails at once, naming the policies it may use.
func (a *Activities) ResolvePolicy(ctx context.Context, in ResolvePolicyInput) (ResolvePolicyResult, error) {
	p, err := a.Policies.Select(in.Project, in.Kind, in.Requested)
	if err != nil {
		return ResolvePolicyResult{}, nonRetryable(err)
	}
	return ResolvePolicyResult{Policy: p, Directory: a.Policies.Directory(p)}, nil
}

// ---- PlanImport ----

// PlanImportInput names the data source whose objects to list.
type PlanImportInput struct {
	DataSource model.DataSource `json:"datasource"`
}

// PlannedObject is one object's files.
type PlannedObject struct {
	Object int               `json:"object"` // index in spec.objects
	Source string            `json:"source"` // human-readable location
	Items  []connectors.Item `json:"items"`
}

// PlanImportResult lists every file the import will copy.
type PlanImportResult struct {
	Objects    []PlannedObject `json:"objects"`
	Files      int             `json:"files"`
	TotalBytes int64           `json:"total_bytes"` // of files whose size is known
}

// PlanImport lists the files of every object, so the workflow knows the
// whole import before copying anything and can refuse two objects that would
// write the same file.
func (a *Activities) PlanImport(ctx context.Context, in PlanImportInput) (out PlanImportResult, err error) {
	defer func() { err = a.failure(err) }()
	owner := map[string]int{}
	for i, obj := range in.DataSource.Spec.Objects {
		activity.RecordHeartbeat(ctx, i)
		src, err := a.source(ctx, in.DataSource, obj)
		if err != nil {
			return out, nonRetryable(err)
		}
		items, err := src.List(ctx, obj)
		if err != nil {
			return out, nonRetryable(fmt.Errorf("spec.objects[%d] (%s): %w", i, obj.Describe(), err))
		}
		for _, it := range items {
			if it.Path == CrateFile || it.Path == BindingFile {
				return out, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("spec.objects[%d] (%s) yields a file named %s at the top of the crate, where Airlock writes its own %s: move the file into a folder or leave it out", i, obj.Describe(), it.Path, it.Path),
					ErrTypeBadInput, nil)
			}
			if other, j, clash := overlap(owner, it.Path); clash {
				return out, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("spec.objects[%d] (%s) and spec.objects[%d] both yield %q (as %q): make the objects' paths (or table names) not overlap", i, obj.Describe(), j, it.Path, other),
					ErrTypeBadInput, nil)
			}
			owner[it.Path] = i
			out.Files++
			if it.Size > 0 {
				out.TotalBytes += it.Size
			}
		}
		out.Objects = append(out.Objects, PlannedObject{Object: i, Source: src.Describe(), Items: items})
	}
	return out, nil
}

// overlap finds a path already planned that p would clash with: the same
// file, or a folder (a producer's planned output, ending in "/") that holds
// the other.
func overlap(owner map[string]int, p string) (string, int, bool) {
	if j, dup := owner[p]; dup {
		return p, j, true
	}
	for q, j := range owner {
		if (strings.HasSuffix(q, "/") && strings.HasPrefix(p, q)) || (strings.HasSuffix(p, "/") && strings.HasPrefix(q, p)) {
			return q, j, true
		}
	}
	return "", 0, false
}

func (a *Activities) source(ctx context.Context, ds model.DataSource, obj model.Object) (connectors.Source, error) {
	name := obj.ConnectionName()
	conn, ok := ds.Connection(name)
	if !ok {
		return nil, connectors.BadInput("no connection named %q in spec.connections", name)
	}
	return a.Sources.Source(ctx, conn)
}

// ---- DeleteArea ----

// Zones a DeleteArea can remove from.
const (
	ZoneStaging   = "staging"
	ZoneWorkspace = "workspace"
	// ZoneDestination is an egress destination's store; Destination names
	// which one.
	ZoneDestination = "destination"
)

// DeleteAreaInput names an area (a request's folder) of a zone to remove.
type DeleteAreaInput struct {
	Zone   string `json:"zone"`
	Prefix string `json:"prefix"`
	// Destination names the egress destination (config
	// egress.destinations) when Zone is destination.
	Destination string `json:"destination,omitempty"`
}

// DeleteAreaResult says what was removed.
type DeleteAreaResult struct {
	Removed int `json:"removed"` // committed files removed (partial files go too)
	// Note says what was left in place and why (a destination that does
	// not allow deletion), or is empty.
	Note string `json:"note,omitempty"`
}

// DeleteArea removes a request's area from staging (after it ends), from
// a workspace (after a release that failed part-way) or from an egress
// destination (a revocation, the end of retention, a failed release),
// partial files included. A destination configured with revocable: false
// is left untouched: that is not an error, and the result's Note says so.
func (a *Activities) DeleteArea(ctx context.Context, in DeleteAreaInput) (DeleteAreaResult, error) {
	// An empty prefix would be the whole store, every request's files.
	if p := strings.Trim(in.Prefix, "/"); p == "" || p == "." {
		return DeleteAreaResult{}, nonRetryable(connectors.BadInput("prefix: missing: name the request's folder to remove from the %s zone (an empty prefix would remove the whole store)", in.Zone))
	}
	var store connectors.Store
	switch in.Zone {
	case ZoneStaging:
		store = a.Staging
	case ZoneWorkspace:
		store = a.Workspaces
	case ZoneDestination:
		d, err := a.destination(in.Destination)
		if err != nil {
			return DeleteAreaResult{}, nonRetryable(err)
		}
		if !d.Revocable {
			note := fmt.Sprintf("destination %s does not allow deletion (its egress.destinations entry has revocable: false), so the released copies at %s were left in place; remove them there by hand if they must go", in.Destination, d.Store.URL(in.Prefix))
			activity.GetLogger(ctx).Warn("area not removed", "zone", in.Zone, "destination", in.Destination, "prefix", in.Prefix, "reason", "destination not revocable")
			return DeleteAreaResult{Note: note}, nil
		}
		store = d.Store
	default:
		return DeleteAreaResult{}, nonRetryable(connectors.BadInput("zone: unknown zone %q (expected %s, %s or %s)", in.Zone, ZoneStaging, ZoneWorkspace, ZoneDestination))
	}
	files, err := store.List(ctx, in.Prefix)
	if err != nil {
		return DeleteAreaResult{}, nonRetryable(err)
	}
	if err := store.DeletePrefix(ctx, in.Prefix); err != nil {
		return DeleteAreaResult{}, nonRetryable(err)
	}
	activity.GetLogger(ctx).Info("area removed", "zone", in.Zone, "destination", in.Destination, "prefix", in.Prefix, "files", len(files))
	return DeleteAreaResult{Removed: len(files)}, nil
}

func sortedFiles(files []model.FileRecord) []model.FileRecord {
	out := append([]model.FileRecord(nil), files...)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
