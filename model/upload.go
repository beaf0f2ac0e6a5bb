package model

import (
	"fmt"
	"strings"
)

// UploadStateFolder is the folder of an upload request's staging area that
// holds the upload bookkeeping (offsets, checkpoints); it is never part of
// the request's files.
const UploadStateFolder = ".uploads"

// UploadLimits bound what one upload request may hold (config `uploads:`).
// Zero means no limit.
type UploadLimits struct {
	MaxFileSize    int64 `json:"max_file_size" yaml:"maxFileSize"`
	MaxRequestSize int64 `json:"max_request_size" yaml:"maxRequestSize"`
	MaxFiles       int   `json:"max_files" yaml:"maxFiles"`
}

// ExpectedFile is a file the uploader says is there.
type ExpectedFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// UploadConfirmation is the payload of the confirm-upload Update: the
// uploader says every file is there.
type UploadConfirmation struct {
	By    string         `json:"by"`
	Files []ExpectedFile `json:"files"`
	Via   string         `json:"via,omitempty"`
}

// CheckResult is one automatic check of a request's files, kept in its
// status and its crate.
type CheckResult struct {
	Name    string `json:"name"`
	Passed  bool   `json:"passed"`
	Message string `json:"message"`
	// OnFail says what a failed check does (an egress's checks): block
	// or flag. Empty for an upload's checks, which always block.
	OnFail string `json:"on_fail,omitempty"`
	// Files lists the files a failed check found fault with, when it
	// concerns particular files.
	Files []string `json:"files,omitempty"`
}

// Names Airlock writes at the top of a request's folder: the RO-Crate
// metadata (staging and workspace) and the release's binding (workspace).
// No file of a request may take either.
const (
	CrateFileName   = "ro-crate-metadata.json"
	BindingFileName = "airlock-binding.yaml"
	// An egress's release manifest and its signature (releasemanifest).
	ReleaseManifestFileName  = "release-manifest.json"
	ReleaseSignatureFileName = "release-manifest.json.sig"
)

// ReservedPath explains why p (clean) cannot be one of a request's files
// because Airlock keeps something of its own there, or returns "".
func ReservedPath(p string) string {
	switch {
	case p == CrateFileName || p == BindingFileName || p == ReleaseManifestFileName || p == ReleaseSignatureFileName:
		return fmt.Sprintf("%s is where Airlock writes its own %s at the top of the request: rename the file or put it in a folder", p, p)
	case p == UploadStateFolder || strings.HasPrefix(p, UploadStateFolder+"/"):
		return fmt.Sprintf("%s is under %s/, the folder that holds the upload bookkeeping: rename the folder", p, UploadStateFolder)
	}
	return ""
}

// CheckConfirmation applies the rules for confirming an upload: the request
// is waiting for its files, the requester confirms, and the list names at
// least one file, each once, by a clean relative path that Airlock does not
// keep for itself, with a size that is not negative. Like CheckDecision it
// is the single place the rules live; the workflow runs it in the Update's
// validator, so a refusal leaves no history.
func (r *RequestStatus) CheckConfirmation(c UploadConfirmation) error {
	if strings.TrimSpace(c.By) == "" {
		return refuse("by: missing: say who confirms the upload (the requester, %s)", r.Requester)
	}
	if r.State != StateAwaitingUpload {
		switch r.State {
		case StateChecking:
			return refuse("request %s is %s: its files are being checked after an earlier confirmation; wait for the checks (airlock status %s)", r.ID, r.State, r.ID)
		default:
			return refuse("request %s is %s: an upload is confirmed only while it is %s", r.ID, r.State, StateAwaitingUpload)
		}
	}
	if c.By != r.Requester {
		return refuse("%s may not confirm request %s: only its requester (%s), who uploads the files, confirms them", c.By, r.ID, r.Requester)
	}
	if len(c.Files) == 0 {
		return refuse("files: empty: list every uploaded file (path and size) that the request should hold; upload at least one file first")
	}
	seen := map[string]int{}
	for i, f := range c.Files {
		field := fmt.Sprintf("files[%d]", i)
		clean, err := CleanRelPath(f.Path)
		if err != nil {
			return refuse("%s.path: %v", field, err)
		}
		if clean != f.Path {
			return refuse("%s.path: %q is not in clean form: send it as %q", field, f.Path, clean)
		}
		if why := ReservedPath(clean); why != "" {
			return refuse("%s.path: %s", field, why)
		}
		if j, dup := seen[clean]; dup {
			return refuse("%s.path: %s is listed twice (also files[%d]): list each file once", field, clean, j)
		}
		seen[clean] = i
		if f.Size < 0 {
			return refuse("%s.size: %d is negative: give the file's size in bytes", field, f.Size)
		}
	}
	return nil
}
