package workflows

import (
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// ImportInput starts an import. It carries the data source document (secret
// key names only, never values) and who asked.
type ImportInput struct {
	DataSource model.DataSource `json:"datasource"`
	Workspace  string           `json:"workspace"`
	Requester  string           `json:"requester"`
	// Policy names the approval policy to use; empty means the project's default.
	Policy string `json:"policy,omitempty"`
	// Binding names the AnalyticsWorkspaceDataBinding recorded at release.
	Binding string `json:"binding"`
	// Via names the entry point that started the import (cli, api).
	Via string `json:"via,omitempty"`
	// Parallelism bounds how many objects are extracted at once (default 4).
	Parallelism int `json:"parallelism,omitempty"`
}

// ImportResult is how an import ended.
type ImportResult struct {
	State          model.State `json:"state"`
	Location       string      `json:"location,omitempty"`
	ManifestDigest string      `json:"manifest_digest,omitempty"`
	Files          int         `json:"files"`
	Bytes          int64       `json:"bytes"`
	Error          string      `json:"error,omitempty"`
}

// DefaultParallelism bounds concurrent object extractions.
const DefaultParallelism = 4

// ErrTypeImportFailed marks an import that ended FAILED.
const ErrTypeImportFailed = "ImportFailed"

// Activity timeouts. A copy heartbeats every few seconds, so a worker that
// dies is noticed within ExtractHeartbeatTimeout and its copy resumes on
// another worker from the last checkpoint.
const (
	ExtractHeartbeatTimeout = 15 * time.Second
	ExtractStartToClose     = 24 * time.Hour
)

// importRun is a request whose files an extraction brings in.
type importRun struct {
	*requestRun
	in          ImportInput
	extractions []activities.Extraction
}

// ImportWorkflow moves one data source through the airlock:
// EXTRACTING -> AWAITING_APPROVAL -> RELEASING -> COMPLETED, or REJECTED,
// FAILED, CANCELLED, EXPIRED. See docs/architecture.md.
func ImportWorkflow(ctx workflow.Context, in ImportInput) (ImportResult, error) {
	r := &importRun{in: in, requestRun: newRequestRun(ctx, model.KindImport, model.StateExtracting,
		in.DataSource, in.Workspace, in.Requester, in.Via, in.Binding, ErrTypeImportFailed)}
	res, err := r.run(ctx)
	return ImportResult(res), err
}

func (r *importRun) run(ctx workflow.Context) (requestResult, error) {
	if err := r.registerHandlers(ctx); err != nil {
		return requestResult{}, err
	}
	if err := r.transition(ctx, model.StateExtracting); err != nil {
		return requestResult{}, err
	}
	if msg := validateInput(r.status.ID, r.in); msg != "" {
		return r.finish(ctx, model.StateFailed, msg)
	}
	if err := r.resolvePolicy(ctx, r.in.Policy); err != nil {
		return r.ended(ctx, err, "choosing the approval policy")
	}
	if err := r.extract(ctx); err != nil {
		return r.ended(ctx, err, "extracting")
	}
	if r.cancelReq != nil {
		return r.finish(ctx, model.StateCancelled, "")
	}
	if ended, res, err := r.awaitApprovals(ctx); ended {
		return res, err
	}
	// Release exactly what was approved.
	return r.release(ctx, func() activities.CrateInput { return r.crate(true) })
}

// validateInput re-checks the document inside the workflow, so a run started
// by hand (from the Temporal UI, say) obeys the same rules as the CLI.
func validateInput(id string, in ImportInput) string {
	return strings.Join(validateRequest(id, model.KindImport, model.TypeImport, in.DataSource, in.Workspace, in.Requester, in.Binding), "; ")
}

// extract plans the import, copies every object in parallel (bounded), and
// writes the staged crate.
func (r *importRun) extract(ctx workflow.Context) error {
	var plan activities.PlanImportResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, planOptions()), a.PlanImport,
		activities.PlanImportInput{DataSource: r.in.DataSource}).Get(ctx, &plan); err != nil {
		return err
	}
	r.status.Progress = model.Progress{ObjectsTotal: len(plan.Objects), FilesTotal: plan.Files, BytesTotal: plan.TotalBytes}
	r.refreshDetails(ctx)

	ectx, stop := workflow.WithCancel(ctx)
	r.interrupt = stop
	defer func() { r.interrupt = nil }()
	actx := workflow.WithActivityOptions(ectx, copyOptions())
	bound := r.in.Parallelism
	if bound <= 0 {
		bound = DefaultParallelism
	}
	results := make([]activities.ExtractObjectResult, len(plan.Objects))
	var firstErr error
	sel := workflow.NewSelector(ctx)
	next, inflight := 0, 0
	for next < len(plan.Objects) || inflight > 0 {
		for inflight < bound && next < len(plan.Objects) && firstErr == nil && r.cancelReq == nil {
			i := next
			obj := plan.Objects[i]
			o := r.in.DataSource.Spec.Objects[obj.Object]
			conn, _ := r.in.DataSource.Connection(o.ConnectionName())
			f := workflow.ExecuteActivity(actx, a.ExtractObject, activities.ExtractObjectInput{
				RequestID: r.status.ID, Connection: conn, Object: o, Index: obj.Object, Items: obj.Items,
			})
			next++
			inflight++
			sel.AddFuture(f, func(f workflow.Future) {
				inflight--
				if err := f.Get(ctx, &results[i]); err != nil {
					if firstErr == nil {
						firstErr = err
						stop()
					}
					return
				}
				r.status.Progress.ObjectsDone++
				r.status.Progress.BytesDone += results[i].Bytes
				r.refreshDetails(ctx)
			})
		}
		if inflight == 0 {
			break
		}
		sel.Select(ctx)
	}
	if r.cancelReq != nil {
		return nil
	}
	if firstErr != nil {
		return firstErr
	}
	for _, res := range results {
		r.status.Files = append(r.status.Files, res.Files...)
		r.extractions = append(r.extractions, res.Extraction)
	}
	r.status.ManifestDigest = model.ManifestDigest(r.status.Files)
	now := workflow.Now(ctx)
	r.status.ExtractedAt = &now
	var crate activities.WriteCrateResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, shortOptions()), a.WriteCrate,
		activities.WriteCrateInput{Crate: r.crate(false)}).Get(ctx, &crate); err != nil {
		return err
	}
	r.status.Location = strings.TrimSuffix(crate.URL, "/"+activities.CrateFile)
	return nil
}

func (r *importRun) crate(release bool) activities.CrateInput {
	in := activities.CrateInput{Request: r.status, DataSource: r.in.DataSource, Extractions: r.extractions}
	if release {
		in.Release = r.crateRelease()
	}
	return in
}
