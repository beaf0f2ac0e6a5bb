package model

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
}
