package main

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/workflows"
)

// fakeRequests is an in-memory requestService for handler tests. It keeps
// each request's state document and applies the model's own rules
// (CheckDecision, CheckCancel, CheckConfirmation) as the workflows do, so
// refusals carry the workflow's reasons. Integration tests run the real
// requests.Service against Temporal.
type fakeRequests struct {
	mu   sync.Mutex
	reqs map[string]*model.RequestStatus
	dir  model.Directory
	// What was asked, for assertions.
	imports   []requests.StartImport
	uploads   []requests.StartUpload
	decisions []model.DecisionRequest
	cancels   []model.CancelRequest
	confirms  []model.UploadConfirmation
	lists     []requests.Filter
	now       time.Time
}

func newFakeRequests(roster map[string][]string) *fakeRequests {
	dir := model.Directory{Members: map[string][]string{}}
	for user, roles := range roster {
		for _, r := range roles {
			dir.Members[r] = append(dir.Members[r], user)
		}
	}
	return &fakeRequests{reqs: map[string]*model.RequestStatus{}, dir: dir, now: time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)}
}

func (f *fakeRequests) tick() time.Time {
	f.now = f.now.Add(time.Minute)
	return f.now
}

// put stores a request as it stands.
func (f *fakeRequests) put(st model.RequestStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.CreatedAt.IsZero() {
		st.CreatedAt = f.tick()
	}
	st.UpdatedAt = st.CreatedAt
	f.reqs[st.ID] = &st
}

func (f *fakeRequests) get(id string) model.RequestStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return *f.reqs[id]
}

func (f *fakeRequests) StartImport(ctx context.Context, in requests.StartImport) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if errs := in.DataSource.Validate(); len(errs) > 0 {
		return "", errs
	}
	f.imports = append(f.imports, in)
	id := requests.NewRequestID(model.KindImport, in.DataSource.Metadata.Name)
	f.reqs[id] = &model.RequestStatus{
		ID: id, Kind: model.KindImport, State: model.StateExtracting, DataSource: in.DataSource.Metadata.Name,
		DisplayName: in.DataSource.Spec.DisplayName, Project: in.DataSource.Spec.Project.ID, Workspace: in.Workspace,
		Requester: in.Requester, Via: in.Via, Stages: []model.StageStatus{}, Files: []model.FileRecord{}, CreatedAt: f.tick(),
	}
	return id, nil
}

func (f *fakeRequests) StartUpload(ctx context.Context, in requests.StartUpload) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if errs := in.DataSource.Validate(); len(errs) > 0 {
		return "", errs
	}
	f.uploads = append(f.uploads, in)
	id := requests.NewRequestID(model.KindUpload, in.DataSource.Metadata.Name)
	exp := f.tick().Add(in.ExpireAfter)
	f.reqs[id] = &model.RequestStatus{
		ID: id, Kind: model.KindUpload, State: model.StateAwaitingUpload, DataSource: in.DataSource.Metadata.Name,
		DisplayName: in.DataSource.Spec.DisplayName, Project: in.DataSource.Spec.Project.ID, Workspace: in.Workspace,
		Requester: in.Requester, Via: in.Via, Stages: []model.StageStatus{}, Files: []model.FileRecord{},
		CreatedAt: f.now, ExpiresAt: &exp,
	}
	return id, nil
}

func (f *fakeRequests) Status(ctx context.Context, id string) (model.RequestStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.reqs[id]
	if !ok {
		return model.RequestStatus{}, requests.ErrNotFound
	}
	return *st, nil
}

func (f *fakeRequests) Summary(ctx context.Context, id string) (requests.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.reqs[id]
	if !ok {
		return requests.Summary{}, requests.ErrNotFound
	}
	return summaryOf(st), nil
}

func summaryOf(st *model.RequestStatus) requests.Summary {
	return requests.Summary{
		ID: st.ID, Kind: string(st.Kind), State: string(st.State), AwaitingRole: st.AwaitingRole(),
		DataSource: st.DataSource, Project: st.Project, Workspace: st.Workspace, Requester: st.Requester, StartedAt: st.CreatedAt,
	}
}

func (f *fakeRequests) List(ctx context.Context, flt requests.Filter) (requests.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := flt.Query(); err != nil {
		return requests.Page{}, err
	}
	f.lists = append(f.lists, flt)
	var rows []requests.Summary
	for _, st := range f.reqs {
		switch {
		case flt.State != "" && !strings.EqualFold(flt.State, string(st.State)),
			flt.Kind != "" && !strings.EqualFold(flt.Kind, string(st.Kind)),
			flt.Project != "" && flt.Project != st.Project,
			flt.AwaitingRole != "" && flt.AwaitingRole != st.AwaitingRole(),
			flt.Requester != "" && flt.Requester != st.Requester:
			continue
		}
		rows = append(rows, summaryOf(st))
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].StartedAt.After(rows[j].StartedAt) })
	if rows == nil {
		rows = []requests.Summary{}
	}
	return requests.Page{Requests: rows}, nil
}

func (f *fakeRequests) Decide(ctx context.Context, id string, d model.DecisionRequest) (workflows.DecisionResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.reqs[id]
	if !ok {
		return workflows.DecisionResult{}, requests.ErrNotFound
	}
	f.decisions = append(f.decisions, d)
	if err := st.CheckDecision(d, f.dir); err != nil {
		return workflows.DecisionResult{}, &requests.RefusedError{Reason: err.Error()}
	}
	idx := st.CurrentStage()
	settled := st.ApplyDecision(d, f.tick())
	stage := st.Stages[idx]
	if settled {
		switch {
		case stage.State == model.StageRejected:
			st.State = model.StateRejected
		case idx+1 < len(st.Stages):
			st.Stages[idx+1].State = model.StageWaiting
		default:
			st.State = model.StateCompleted
		}
	}
	return workflows.DecisionResult{Stage: stage.Name, StageState: stage.State, Approvals: stage.Approvals(), Required: stage.Required, State: st.State}, nil
}

func (f *fakeRequests) Cancel(ctx context.Context, id string, c model.CancelRequest) (workflows.CancelResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.reqs[id]
	if !ok {
		return workflows.CancelResult{}, requests.ErrNotFound
	}
	f.cancels = append(f.cancels, c)
	if err := st.CheckCancel(c, f.dir); err != nil {
		return workflows.CancelResult{}, &requests.RefusedError{Reason: err.Error()}
	}
	st.State, st.CancelledBy, st.CancelReason = model.StateCancelled, c.By, c.Reason
	return workflows.CancelResult{State: st.State}, nil
}

func (f *fakeRequests) ConfirmUpload(ctx context.Context, id string, c model.UploadConfirmation) (workflows.ConfirmUploadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.reqs[id]
	if !ok {
		return workflows.ConfirmUploadResult{}, requests.ErrNotFound
	}
	f.confirms = append(f.confirms, c)
	if err := st.CheckConfirmation(c); err != nil {
		return workflows.ConfirmUploadResult{}, &requests.RefusedError{Reason: err.Error()}
	}
	st.State = model.StateChecking
	return workflows.ConfirmUploadResult{State: st.State}, nil
}

// lastDecision is the decision last sent.
func (f *fakeRequests) lastDecision() model.DecisionRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.decisions[len(f.decisions)-1]
}

func (f *fakeRequests) counts() (decisions, cancels, confirms int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.decisions), len(f.cancels), len(f.confirms)
}
