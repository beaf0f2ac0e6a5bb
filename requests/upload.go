package requests

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// StartUpload asks for an upload request: a person uploads the files of an
// Uploaded data source into quarantine, then confirms them.
type StartUpload struct {
	DataSource model.DataSource
	Workspace  string // the workspace the data is for
	Requester  string // who uploads; never approves
	Policy     string // approval policy; empty: the project's default
	Via        string // the entry point: cli, api
	Limits     model.UploadLimits
	// ExpireAfter is how long the request waits for its files to be
	// confirmed before it expires (0: the workflow's default).
	ExpireAfter time.Duration
}

// StartUpload starts an upload request and returns its id. The request
// starts AWAITING_UPLOAD.
func (s *Service) StartUpload(ctx context.Context, in StartUpload) (string, error) {
	if err := checkStart(in.DataSource, model.TypeUploaded, in.Workspace, in.Requester); err != nil {
		return "", err
	}
	switch {
	case in.Limits.MaxFileSize < 0:
		return "", &FieldError{Field: "limits.max_file_size", Value: fmt.Sprint(in.Limits.MaxFileSize), Problem: "must be 0 (no limit) or more"}
	case in.Limits.MaxRequestSize < 0:
		return "", &FieldError{Field: "limits.max_request_size", Value: fmt.Sprint(in.Limits.MaxRequestSize), Problem: "must be 0 (no limit) or more"}
	case in.Limits.MaxFiles < 0:
		return "", &FieldError{Field: "limits.max_files", Value: fmt.Sprint(in.Limits.MaxFiles), Problem: "must be 0 (no limit) or more"}
	case in.ExpireAfter < 0:
		return "", &FieldError{Field: "expire_after", Value: in.ExpireAfter.String(), Problem: "must be 0 (the default) or more"}
	}
	ds := in.DataSource
	return s.start(ctx, started{
		kind:      model.KindUpload,
		state:     model.StateAwaitingUpload,
		workflow:  workflows.UploadWorkflowName,
		ds:        ds,
		workspace: in.Workspace,
		requester: in.Requester,
		summary:   fmt.Sprintf("Upload of %s into workspace %s (project %s), by %s", ds.Metadata.Name, in.Workspace, ds.Spec.Project.ID, in.Requester),
		details:   uploadDetails(in),
		input: workflows.UploadInput{
			DataSource: ds, Workspace: in.Workspace, Requester: in.Requester, Policy: in.Policy,
			Via: in.Via, Limits: in.Limits, ExpireAfter: in.ExpireAfter,
		},
	})
}

// ConfirmUpload tells an upload request that every file is there (c.Files
// lists them with their sizes) and waits for the workflow's answer: CHECKING
// when it accepted. A confirmation it refuses is a *RefusedError saying why.
func (s *Service) ConfirmUpload(ctx context.Context, id string, c model.UploadConfirmation) (workflows.ConfirmUploadResult, error) {
	var res workflows.ConfirmUploadResult
	err := s.update(ctx, id, workflows.UpdateConfirmUpload, c, &res, "upload confirmations")
	return res, err
}

// uploadDetails is the Markdown the Temporal UI shows for an upload.
func uploadDetails(in StartUpload) string {
	var b strings.Builder
	writeDataSource(&b, in.DataSource, in.Workspace, in.Requester, in.Policy)
	limit := func(name string, v int64, format func(int64) string) {
		if v > 0 {
			fmt.Fprintf(&b, "- %s: %s\n", name, format(v))
		}
	}
	b.WriteString("\nLimits:\n")
	limit("largest file", in.Limits.MaxFileSize, model.FormatBytes)
	limit("largest request", in.Limits.MaxRequestSize, model.FormatBytes)
	limit("most files", int64(in.Limits.MaxFiles), func(n int64) string { return fmt.Sprint(n) })
	if in.Limits == (model.UploadLimits{}) {
		b.WriteString("- none\n")
	}
	return b.String()
}
