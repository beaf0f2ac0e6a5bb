package requests

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// testUploadSource is an Uploaded data source: a pvc connection, no objects.
func testUploadSource(name, project string) model.DataSource {
	ds := testDataSource(name, project)
	ds.Spec.Type = model.TypeUploaded
	ds.Spec.Connections = []model.Connection{{Type: model.ConnPVC, Name: "pvc-" + name}}
	ds.Spec.Objects = nil
	return ds
}

// put writes a file into a request's staging area, as an upload does.
func (a *airlock) put(t *testing.T, id, path, content string) {
	t.Helper()
	w, err := a.staging.Create(ctx(t), activities.StagingPrefix(id)+"/"+path, nil)
	must(t, err)
	_, err = w.Write([]byte(content))
	must(t, err)
	must(t, w.Commit())
}

// TestUploadLifecycle starts an upload through the service, has a
// confirmation refused, sees a confirmation of a missing file sent back by
// the checks, then confirms the uploaded file and reaches approval.
func TestUploadLifecycle(t *testing.T) {
	a := newAirlock(t)
	project := unique("proj-up")
	ds := testUploadSource("upload-source", project)
	id, err := a.svc.StartUpload(ctx(t), StartUpload{DataSource: ds, Workspace: "ws-up", Requester: "rita", Via: "api",
		Limits: model.UploadLimits{MaxFiles: 2, MaxFileSize: 1 << 20}, ExpireAfter: time.Hour})
	must(t, err)
	if !strings.HasPrefix(id, "upload-upload-source-") {
		t.Errorf("id %q does not start upload-upload-source-", id)
	}
	st := a.waitState(t, id, model.StateAwaitingUpload)
	if st.Kind != model.KindUpload || st.ExpiresAt == nil || st.ExpiresAt.Sub(st.CreatedAt) != time.Hour {
		t.Errorf("status kind %s, expires %v (created %v); want an upload expiring in an hour", st.Kind, st.ExpiresAt, st.CreatedAt)
	}
	desc, err := a.client.DescribeWorkflowExecution(ctx(t), id, "")
	must(t, err)
	var details string
	must(t, converter.GetDefaultDataConverter().FromPayload(desc.GetExecutionConfig().GetUserMetadata().GetDetails(), &details))
	if !strings.Contains(details, "largest file: 1.0 MiB") || !strings.Contains(details, "most files: 2") {
		t.Errorf("static details lack the limits:\n%s", details)
	}
	a.waitList(t, Filter{Kind: "upload", State: "awaiting_upload", Project: project}, id, func(p Page) bool {
		return len(p.Requests) == 1 && p.Requests[0].ID == id && p.Requests[0].Kind == "upload"
	})

	files := []model.ExpectedFile{{Path: "visits.csv", Size: 8}}
	_, err = a.svc.ConfirmUpload(ctx(t), id, model.UploadConfirmation{By: "dana", Files: files, Via: "api"})
	var refused *RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "only its requester (rita)") {
		t.Fatalf("a stranger's confirmation: %v, want a refusal", err)
	}

	// Confirmed before the file is there: the checks send it back.
	res, err := a.svc.ConfirmUpload(ctx(t), id, model.UploadConfirmation{By: "rita", Files: files, Via: "api"})
	must(t, err)
	if res.State != model.StateChecking {
		t.Errorf("confirmation result %+v, want CHECKING", res)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err = a.svc.Status(ctx(t), id)
		must(t, err)
		if st.State == model.StateAwaitingUpload && st.Error != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s is %s (error %q), want it back in AWAITING_UPLOAD saying what failed", id, st.State, st.Error)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(st.Error, "visits.csv") {
		t.Errorf("failed check %q does not name the missing file", st.Error)
	}

	a.put(t, id, "visits.csv", "a,b\n1,2\n")
	_, err = a.svc.ConfirmUpload(ctx(t), id, model.UploadConfirmation{By: "rita", Files: files, Via: "api"})
	must(t, err)
	st = a.waitState(t, id, model.StateAwaitingApproval)
	if len(st.Files) != 1 || st.Files[0].Path != "visits.csv" || st.ManifestDigest == "" {
		t.Errorf("after the checks: files %+v, digest %q", st.Files, st.ManifestDigest)
	}
	_, err = a.svc.ConfirmUpload(ctx(t), id, model.UploadConfirmation{By: "rita", Files: files, Via: "api"})
	if !errors.As(err, &refused) || !strings.Contains(refused.Reason, "AWAITING_APPROVAL") {
		t.Errorf("confirming again while awaiting approval: %v, want a refusal", err)
	}
	cres, err := a.svc.Cancel(ctx(t), id, model.CancelRequest{By: "rita", Via: "api"})
	must(t, err)
	if cres.State != model.StateCancelled {
		t.Errorf("cancel result %+v", cres)
	}
	// The staging area goes as the workflow closes.
	must(t, a.client.GetWorkflow(ctx(t), id, "").Get(ctx(t), nil))
	if left, err := a.staging.List(ctx(t), activities.StagingPrefix(id)); err != nil || len(left) != 0 {
		t.Errorf("staging of a cancelled upload holds %v (%v)", left, err)
	}
}

func TestStartUploadRefusals(t *testing.T) {
	svc := &Service{} // nothing reaches a server
	good := testUploadSource("refused-upload", "proj-up")
	for _, tc := range []struct {
		name string
		in   StartUpload
		want string
	}{
		{"import source", StartUpload{DataSource: testDataSource("imp", "p"), Workspace: "ws", Requester: "rita"}, `spec.type "Import": only Uploaded data sources arrive by upload`},
		{"negative file limit", StartUpload{DataSource: good, Workspace: "ws", Requester: "rita", Limits: model.UploadLimits{MaxFileSize: -1}}, "limits.max_file_size"},
		{"negative request limit", StartUpload{DataSource: good, Workspace: "ws", Requester: "rita", Limits: model.UploadLimits{MaxRequestSize: -1}}, "limits.max_request_size"},
		{"negative file count", StartUpload{DataSource: good, Workspace: "ws", Requester: "rita", Limits: model.UploadLimits{MaxFiles: -1}}, "limits.max_files"},
		{"negative expiry", StartUpload{DataSource: good, Workspace: "ws", Requester: "rita", ExpireAfter: -time.Second}, "expire_after"},
		{"no requester", StartUpload{DataSource: good, Workspace: "ws"}, "requester: missing"},
	} {
		_, err := svc.StartUpload(ctx(t), tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}
