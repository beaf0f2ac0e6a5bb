package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/outputchecks"
)

// ---- StageEgress ----

// StageEgressInput names the workspace files an egress turn snapshots.
type StageEgressInput struct {
	RequestID string `json:"request_id"`
	Workspace string `json:"workspace"`
	// Paths are relative to the workspace's root, in clean form.
	Paths []string `json:"paths"`
}

// StageEgressResult is the snapshot: every file with its size, SHA-256
// and media type, sorted by path.
type StageEgressResult struct {
	Files []model.FileRecord `json:"files"`
}

// StageEgressProgress is what StageEgress heartbeats: the files already
// staged and the checkpoint of the one in flight. A retried attempt
// resumes from it.
type StageEgressProgress struct {
	Done         []model.FileRecord `json:"done"`
	Current      *FileCheckpoint    `json:"current,omitempty"`
	BytesDone    int64              `json:"bytes_done"`
	BytesTotal   int64              `json:"bytes_total"`
	FilesTotal   int                `json:"files_total"`
	ResumedBytes int64              `json:"resumed_bytes"`
}

// StageEgress snapshots an egress turn's files: each workspace file
// <workspace>/<path> is copied to the request's staging area
// <requestID>/<path>, its SHA-256 computed while it streams, so that the
// checks, the checkers and the release all see these bytes whatever
// happens in the workspace afterwards. Staged files of an earlier turn
// that this one no longer lists are deleted first. Every path is checked
// before anything is copied: a path that is not clean, that Airlock keeps
// for itself, that is listed twice, that names a folder or no file at all
// is bad input, not retried, naming the path and the workspace. The copy
// heartbeats a checkpoint; a retry skips the files done and resumes the
// one in flight.
func (a *Activities) StageEgress(ctx context.Context, in StageEgressInput) (res StageEgressResult, err error) {
	defer func() { err = a.failure(err) }()
	paths, err := checkEgressPaths(in)
	if err != nil {
		return res, err
	}
	sizes := map[string]int64{}
	for i, p := range in.Paths {
		if sizes[p], err = a.workspaceFileSize(ctx, fmt.Sprintf("files[%d]", i), in.Workspace, p); err != nil {
			return res, err
		}
	}
	if err := a.dropStaleStaged(ctx, in.RequestID, sizes); err != nil {
		return res, err
	}

	logger := activity.GetLogger(ctx)
	var progress StageEgressProgress
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &progress); err != nil {
			logger.Warn("ignoring unreadable checkpoint; staging the files again", "error", err)
			progress = StageEgressProgress{}
		}
	}
	done := map[string]model.FileRecord{}
	for _, f := range progress.Done {
		// Trust a staged file only if it is still listed and staging
		// still holds it at its size.
		if size, listed := sizes[f.Path]; !listed || size != f.Size {
			continue
		}
		if st, err := a.Staging.Stat(ctx, stagingKey(in.RequestID, f.Path)); err == nil && st.Size == f.Size {
			done[f.Path] = f
		}
	}
	progress.Done, progress.BytesDone, progress.BytesTotal, progress.FilesTotal = nil, 0, 0, len(paths)
	for _, p := range paths {
		progress.BytesTotal += sizes[p]
		if f, ok := done[p]; ok {
			progress.Done = append(progress.Done, f)
			progress.BytesDone += f.Size
			progress.ResumedBytes += f.Size
		}
	}
	if len(done) > 0 || progress.Current != nil {
		logger.Info("resuming the egress snapshot", "request", in.RequestID, "files_done", len(done), "attempt", activity.GetInfo(ctx).Attempt)
	}
	activity.RecordHeartbeat(ctx, progress)

	for _, p := range paths {
		if _, ok := done[p]; ok {
			continue
		}
		key := stagingKey(in.RequestID, p)
		src := path.Join(in.Workspace, p)
		var resume *FileCheckpoint
		if progress.Current != nil && progress.Current.Key == key {
			resume = progress.Current
		}
		base := progress.BytesDone
		c, err := a.copyFile(ctx, a.Staging, copyJob{
			key:  key,
			size: sizes[p],
			open: func(ctx context.Context, offset int64) (io.ReadCloser, error) {
				return openAt(ctx, a.Workspaces, src, offset)
			},
		}, resume, func(cp FileCheckpoint, offset int64) {
			progress.Current = &cp
			progress.BytesDone = base + offset
			activity.RecordHeartbeat(ctx, progress)
		})
		if err != nil {
			return res, fmt.Errorf("staging %s of workspace %s: %w", p, in.Workspace, err)
		}
		progress.Done = append(progress.Done, model.FileRecord{Path: p, Size: c.Size, SHA256: c.SHA256, EncodingFormat: file.MediaType(p)})
		progress.Current = nil
		progress.BytesDone = base + c.Size
		progress.ResumedBytes += c.Resumed
		activity.RecordHeartbeat(ctx, progress)
	}
	res.Files = sortedFiles(progress.Done)
	logger.Info("egress files staged", "request", in.RequestID, "workspace", in.Workspace, "files", len(res.Files), "bytes", progress.BytesDone, "resumed_bytes", progress.ResumedBytes)
	return res, nil
}

// checkEgressPaths checks the request id, the workspace and the paths of
// an egress turn, and returns the paths sorted.
func checkEgressPaths(in StageEgressInput) ([]string, error) {
	if _, err := model.CleanRelPath(in.RequestID); err != nil || strings.Contains(in.RequestID, "/") {
		return nil, connectors.BadInput("request_id: %q cannot name a request's folder: use the request's id (letters, digits and '-')", in.RequestID)
	}
	if !model.ValidName(in.Workspace) {
		return nil, connectors.BadInput("workspace: invalid workspace %q: %s", in.Workspace, model.NameRule)
	}
	if len(in.Paths) == 0 {
		return nil, connectors.BadInput("files: empty: name at least one file of workspace %s to send out, by its path from the workspace's root", in.Workspace)
	}
	seen := map[string]int{}
	for i, p := range in.Paths {
		field := fmt.Sprintf("files[%d]", i)
		clean, err := model.CleanRelPath(p)
		if err != nil {
			return nil, connectors.BadInput("%s: %v (a path in workspace %s)", field, err, in.Workspace)
		}
		if clean != p {
			return nil, connectors.BadInput("%s: %q is not in clean form: name it as %q (a path in workspace %s)", field, p, clean, in.Workspace)
		}
		if why := model.ReservedPath(clean); why != "" {
			return nil, connectors.BadInput("%s: %s (a path in workspace %s)", field, why, in.Workspace)
		}
		if j, dup := seen[clean]; dup {
			return nil, connectors.BadInput("%s: %s is listed twice (also files[%d]): list each file once", field, clean, j)
		}
		seen[clean] = i
	}
	// A path cannot be a file and hold another: "a" and "a/b".
	for i, p := range in.Paths {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if j, listed := seen[dir]; listed {
				return nil, connectors.BadInput("files[%d]: %s is inside %s, also listed (files[%d]): a path names a file, so list the files of %s you want instead of %s itself", i, p, dir, j, dir, dir)
			}
		}
	}
	sorted := append([]string(nil), in.Paths...)
	sort.Strings(sorted)
	return sorted, nil
}

// workspaceFileSize is the size of file p of a workspace, or bad input
// when p names a folder or nothing.
func (a *Activities) workspaceFileSize(ctx context.Context, field, workspace, p string) (int64, error) {
	key := path.Join(workspace, p)
	st, err := a.Workspaces.Stat(ctx, key)
	if err == nil {
		return st.Size, nil
	}
	if !errors.Is(err, connectors.ErrNotFound) {
		return 0, fmt.Errorf("looking for %s in workspace %s: %w", p, workspace, err)
	}
	under, lerr := a.Workspaces.List(ctx, key)
	if lerr != nil {
		return 0, fmt.Errorf("looking for %s in workspace %s: %w", p, workspace, lerr)
	}
	if len(under) > 0 {
		var names []string
		for _, o := range under {
			if rel, ok := strings.CutPrefix(o.Key, workspace+"/"); ok {
				names = append(names, rel)
			}
		}
		list := strings.Join(names, ", ")
		if len(names) > 5 {
			list = fmt.Sprintf("%s and %d more", strings.Join(names[:5], ", "), len(names)-5)
		}
		return 0, connectors.BadInput("%s: %s is a folder of workspace %s, not a file: an egress names each file it sends, so list the files you want from it (it holds %s)", field, p, workspace, list)
	}
	return 0, connectors.BadInput("%s: %s: no such file in workspace %s (%s): check the path, relative to the workspace's root, and that the file is saved there", field, p, workspace, a.Workspaces.URL(key))
}

// dropStaleStaged deletes the files an earlier turn staged that this turn
// does not list (a resubmission may drop files), leaving what Airlock keeps
// there of its own.
func (a *Activities) dropStaleStaged(ctx context.Context, requestID string, listed map[string]int64) error {
	prefix := StagingPrefix(requestID)
	staged, err := a.Staging.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("listing the staged files of %s: %w", requestID, err)
	}
	for _, o := range staged {
		rel, ok := strings.CutPrefix(o.Key, prefix+"/")
		if !ok || model.ReservedPath(rel) != "" {
			continue
		}
		if _, keep := listed[rel]; keep {
			continue
		}
		if err := a.Staging.DeletePrefix(ctx, o.Key); err != nil {
			return fmt.Errorf("removing %s, staged by an earlier turn of %s and no longer listed: %w", rel, requestID, err)
		}
		activity.GetLogger(ctx).Info("dropped a file of an earlier turn", "request", requestID, "path", rel)
	}
	return nil
}

// ---- CheckEgress ----

// CheckEgressInput names the staged files of an egress turn and the
// policy's automatic checks.
type CheckEgressInput struct {
	RequestID string              `json:"request_id"`
	Files     []model.FileRecord  `json:"files"`
	Checks    *model.OutputChecks `json:"checks,omitempty"`
}

// CheckEgressResult is every check's outcome.
type CheckEgressResult struct {
	Checks []model.CheckResult `json:"checks"`
	// Blocked: some failed check has onFail block, so the request goes
	// back to its requester.
	Blocked bool `json:"blocked"`
}

// CheckEgressProgress is what CheckEgress heartbeats while it reads.
type CheckEgressProgress struct {
	// File is the file being read.
	File string `json:"file"`
	// BytesRead counts the bytes read so far, over every check (a file
	// may be read by several).
	BytesRead int64 `json:"bytes_read"`
}

// CheckEgress runs the policy's automatic checks (package outputchecks)
// on the staged copies of an egress turn's files, heartbeating the bytes
// read. A failed check is a result, not an error; Blocked says whether
// one that blocks failed. Errors are the staging store's (retried), or
// bad input, not retried: checks that do not validate, a file list that is
// not clean, a staged copy that is missing.
func (a *Activities) CheckEgress(ctx context.Context, in CheckEgressInput) (res CheckEgressResult, err error) {
	defer func() { err = a.failure(err) }()
	if _, cerr := model.CleanRelPath(in.RequestID); cerr != nil || strings.Contains(in.RequestID, "/") {
		return res, connectors.BadInput("request_id: %q cannot name a request's folder: use the request's id (letters, digits and '-')", in.RequestID)
	}
	seen := map[string]int{}
	for i, f := range in.Files {
		if clean, cerr := model.CleanRelPath(f.Path); cerr != nil || clean != f.Path {
			return res, connectors.BadInput("files[%d].path: %q is not a clean relative path", i, f.Path)
		}
		if j, dup := seen[f.Path]; dup {
			return res, connectors.BadInput("files[%d].path: %s is listed twice (also files[%d])", i, f.Path, j)
		}
		seen[f.Path] = i
	}
	cfg := a.Transfer.withDefaults()
	progress := CheckEgressProgress{}
	last := time.Now()
	beat := func(force bool) {
		if force || time.Since(last) >= cfg.CheckpointEvery {
			last = time.Now()
			activity.RecordHeartbeat(ctx, progress)
		}
	}
	open := func(ctx context.Context, p string) (io.ReadCloser, error) {
		key := stagingKey(in.RequestID, p)
		rc, err := a.Staging.Open(ctx, key)
		if errors.Is(err, connectors.ErrNotFound) {
			return nil, connectors.BadInput("the staged copy of %s (%s) is missing: the staging area of %s changed after the files were staged; stage them again (resubmit)", p, a.Staging.URL(key), in.RequestID)
		}
		if err != nil {
			return nil, err
		}
		progress.File = p
		beat(true)
		return &countingReader{ReadCloser: rc, ctx: ctx, onRead: func(n int) {
			progress.BytesRead += int64(n)
			beat(false)
		}}, nil
	}
	beat(true)
	checks, err := outputchecks.Run(ctx, in.Checks, in.Files, open)
	if err != nil {
		if _, ok := model.AsFieldErrors(err); ok {
			return res, connectors.BadInput("the policy's checks are not valid: %v", err)
		}
		return res, fmt.Errorf("checking the files of %s: %w", in.RequestID, err)
	}
	res.Checks = checks
	var failed []string
	for _, c := range checks {
		if c.Passed {
			continue
		}
		failed = append(failed, c.Name+" ("+c.OnFail+")")
		if c.OnFail == model.OnFailBlock {
			res.Blocked = true
		}
	}
	activity.GetLogger(ctx).Info("egress files checked", "request", in.RequestID, "files", len(in.Files), "checks", len(checks), "failed", strings.Join(failed, ", "), "blocked", res.Blocked, "bytes_read", progress.BytesRead)
	return res, nil
}

// countingReader reports every read and stops when ctx is done.
type countingReader struct {
	io.ReadCloser
	ctx    context.Context
	onRead func(int)
}

func (r *countingReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.onRead(n)
	}
	return n, err
}
