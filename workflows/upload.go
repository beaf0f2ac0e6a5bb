package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// UploadInput starts an upload: a request whose files a person uploads
// (through the API's resumable tus uploads) straight into its staging area.
type UploadInput struct {
	// DataSource describes the dataset: spec.type Uploaded, a connection
	// (pvc) and no objects.
	DataSource model.DataSource `json:"datasource"`
	Workspace  string           `json:"workspace"`
	Requester  string           `json:"requester"`
	// Policy names the approval policy to use; empty means the project's default.
	Policy string `json:"policy,omitempty"`
	// Binding names the AnalyticsWorkspaceDataBinding recorded at release.
	Binding string `json:"binding,omitempty"`
	// Via names the entry point that started the upload (api, cli).
	Via string `json:"via,omitempty"`
	// Limits bound the files the request may hold (checked in CHECKING).
	Limits model.UploadLimits `json:"limits"`
	// ExpireAfter is how long the request waits for its files to be
	// confirmed and pass their checks; 0 means DefaultUploadExpiry.
	ExpireAfter time.Duration `json:"expire_after"`
}

// UploadResult is how an upload ended.
type UploadResult struct {
	State          model.State `json:"state"`
	Location       string      `json:"location,omitempty"`
	ManifestDigest string      `json:"manifest_digest,omitempty"`
	Files          int         `json:"files"`
	Bytes          int64       `json:"bytes"`
	Error          string      `json:"error,omitempty"`
}

// ConfirmUploadResult answers an accepted confirm-upload Update: the
// request is CHECKING its files.
type ConfirmUploadResult struct {
	State model.State `json:"state"`
}

// DefaultUploadExpiry is how long an upload waits for its confirmed,
// checked files when UploadInput.ExpireAfter is 0.
const DefaultUploadExpiry = 24 * time.Hour

// ErrTypeUploadFailed marks an upload that ended FAILED.
const ErrTypeUploadFailed = "UploadFailed"

// uploadRun is a request whose files a person uploads.
type uploadRun struct {
	*requestRun
	in UploadInput
	// confirmed is the confirmation being checked, nil while the request
	// waits for one.
	confirmed   *model.UploadConfirmation
	confirmedAt time.Time
	upload      activities.CrateUpload
}

// UploadWorkflow moves one upload through the airlock: AWAITING_UPLOAD ->
// CHECKING -> AWAITING_APPROVAL -> RELEASING -> COMPLETED. While it is
// AWAITING_UPLOAD its requester uploads the files into its staging area and
// confirms them with the confirm-upload Update; CHECKING compares what is
// there with what was confirmed, applies the limits and fingerprints each
// file. A failed check sends the request back to AWAITING_UPLOAD, saying what
// to fix. Not confirmed (with files that pass) by ExpiresAt, it ends
// EXPIRED and its files are removed. From then on it is an import's
// approval gates and release: REJECTED, CANCELLED, EXPIRED and FAILED end
// it the same way.
func UploadWorkflow(ctx workflow.Context, in UploadInput) (UploadResult, error) {
	r := &uploadRun{in: in, requestRun: newRequestRun(ctx, model.KindUpload, model.StateAwaitingUpload,
		in.DataSource, in.Workspace, in.Requester, in.Via, in.Binding, ErrTypeUploadFailed)}
	expiry := in.ExpireAfter
	if expiry <= 0 {
		expiry = DefaultUploadExpiry
	}
	expires := r.status.CreatedAt.Add(expiry)
	r.status.ExpiresAt = &expires
	res, err := r.run(ctx)
	return UploadResult(res), err
}

func (r *uploadRun) run(ctx workflow.Context) (requestResult, error) {
	if err := r.registerHandlers(ctx); err != nil {
		return requestResult{}, err
	}
	if err := r.transition(ctx, model.StateAwaitingUpload); err != nil {
		return requestResult{}, err
	}
	// Registered once the state is recorded: a confirmation moves it on.
	if err := r.registerConfirm(ctx); err != nil {
		return requestResult{}, err
	}
	if msg := validateUploadInput(r.status.ID, r.in); msg != "" {
		return r.finish(ctx, model.StateFailed, msg)
	}
	// The policy is chosen now, so that a policy the project may not use
	// fails the request before anyone uploads, and so that its approvers
	// may cancel it from the start.
	if err := r.resolvePolicy(ctx, r.in.Policy); err != nil {
		return r.ended(ctx, err, "choosing the approval policy")
	}
	for {
		received := func() bool { return r.confirmed != nil || r.cancelReq != nil }
		ok := received()
		// One deadline for the whole wait: a failed check does not move it.
		if remaining := r.status.ExpiresAt.Sub(workflow.Now(ctx)); !ok && remaining > 0 {
			var err error
			if ok, err = workflow.AwaitWithTimeout(ctx, remaining, received); err != nil {
				return r.ended(ctx, err, "awaiting the upload")
			}
		}
		switch {
		case r.cancelReq != nil:
			return r.finish(ctx, model.StateCancelled, "")
		case !ok:
			return r.finish(ctx, model.StateExpired, r.expiredReason())
		}
		passed, err := r.check(ctx)
		if r.cancelReq != nil {
			return r.finish(ctx, model.StateCancelled, "")
		}
		if err != nil {
			return r.ended(ctx, err, "checking the upload")
		}
		if passed {
			break
		}
	}
	if ended, res, err := r.awaitApprovals(ctx); ended {
		return res, err
	}
	return r.release(ctx, func() activities.CrateInput { return r.crate(true) })
}

// validateUploadInput re-checks the input inside the workflow, as
// validateInput does for imports.
func validateUploadInput(id string, in UploadInput) string {
	problems := validateRequest(id, model.KindUpload, model.TypeUploaded, in.DataSource, in.Workspace, in.Requester, in.Binding)
	if n := len(in.DataSource.Spec.Objects); n > 0 {
		problems = append(problems, fmt.Sprintf("spec.objects: an %s data source lists no objects (found %d): its files arrive by upload; remove spec.objects, or import the data with type %s", model.TypeUploaded, n, model.TypeImport))
	}
	l := in.Limits
	for _, lim := range []struct {
		field string
		value int64
	}{{"limits.max_file_size", l.MaxFileSize}, {"limits.max_request_size", l.MaxRequestSize}, {"limits.max_files", int64(l.MaxFiles)}} {
		if lim.value < 0 {
			problems = append(problems, fmt.Sprintf("%s: %d is negative: give a limit, or 0 for none (config uploads)", lim.field, lim.value))
		}
	}
	if in.ExpireAfter < 0 {
		problems = append(problems, fmt.Sprintf("expire_after: %s is negative: give how long the upload may wait for its files, or 0 for the default %s (config uploads.expireAfter)", in.ExpireAfter, DefaultUploadExpiry))
	}
	return strings.Join(problems, "; ")
}

// registerConfirm serves the confirm-upload Update: the requester says
// every file is uploaded, and the request starts CHECKING them.
func (r *uploadRun) registerConfirm(ctx workflow.Context) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateConfirmUpload,
		func(ctx workflow.Context, c model.UploadConfirmation) (ConfirmUploadResult, error) {
			if err := r.status.CheckConfirmation(c); err != nil {
				return ConfirmUploadResult{}, err
			}
			if c.Via == "" {
				c.Via = "update"
			}
			r.confirmed, r.confirmedAt = &c, workflow.Now(ctx)
			// The last check's findings are superseded by this confirmation's.
			r.status.Error, r.status.Checks = "", nil
			if err := r.transition(ctx, model.StateChecking); err != nil {
				return ConfirmUploadResult{}, err
			}
			return ConfirmUploadResult{State: model.StateChecking}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, c model.UploadConfirmation) error {
			err := r.status.CheckConfirmation(c)
			if err != nil {
				workflow.GetLogger(ctx).Warn("confirm-upload update refused", "by", c.By, "files", len(c.Files), "via", c.Via, "reason", err.Error())
			}
			return err
		}})
}

// check runs CheckUpload on the confirmed files. When they pass it records
// them and writes the staged crate; when they fail the request goes back to
// AWAITING_UPLOAD with what failed. It returns whether they passed; a cancel
// accepted meanwhile stops it.
func (r *uploadRun) check(ctx workflow.Context) (bool, error) {
	c := *r.confirmed
	cctx, stop := workflow.WithCancel(ctx)
	r.interrupt = stop
	defer func() { r.interrupt = nil }()
	var res activities.CheckUploadResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(cctx, copyOptions()), a.CheckUpload,
		activities.CheckUploadInput{RequestID: r.status.ID, Expected: c.Files, Limits: r.in.Limits}).Get(ctx, &res)
	if err != nil || r.cancelReq != nil {
		return false, err
	}
	r.status.Checks = res.Checks
	if !res.Passed {
		r.confirmed = nil
		r.status.Error = failedChecks(res.Checks)
		return false, r.transition(ctx, model.StateAwaitingUpload)
	}
	r.status.Files = res.Files
	r.status.ManifestDigest = model.ManifestDigest(res.Files)
	// Confirmed and checked: the request no longer expires unconfirmed.
	r.status.ExpiresAt = nil
	r.upload = activities.CrateUpload{StartedAt: r.status.CreatedAt, ConfirmedAt: r.confirmedAt, CheckedAt: workflow.Now(ctx), Via: c.Via}
	r.refreshDetails(ctx)
	var crate activities.WriteCrateResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, shortOptions()), a.WriteCrate,
		activities.WriteCrateInput{Crate: r.crate(false)}).Get(ctx, &crate); err != nil {
		return false, err
	}
	r.status.Location = strings.TrimSuffix(crate.URL, "/"+activities.CrateFile)
	return true, nil
}

// failedChecks says, for the uploader, what failed and what to do.
func failedChecks(checks []model.CheckResult) string {
	var failed []string
	for _, c := range checks {
		if !c.Passed {
			failed = append(failed, fmt.Sprintf("check %s failed: %s", c.Name, c.Message))
		}
	}
	return strings.Join(failed, "; ")
}

// expiredReason explains an expiry, with the last check's findings if the
// files had failed them.
func (r *uploadRun) expiredReason() string {
	msg := fmt.Sprintf("the upload was not confirmed with files that pass their checks by %s (%s after the request opened): its files were removed; start a new upload, and confirm its files within that time",
		r.status.ExpiresAt.UTC().Format(time.RFC3339), r.status.ExpiresAt.Sub(r.status.CreatedAt))
	if r.status.Error != "" {
		msg += "; the last confirmation's " + r.status.Error
	}
	return msg
}

func (r *uploadRun) crate(release bool) activities.CrateInput {
	u := r.upload
	in := activities.CrateInput{Request: r.status, DataSource: r.in.DataSource, Upload: &u}
	if release {
		in.Release = r.crateRelease()
	}
	return in
}
