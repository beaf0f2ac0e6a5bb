package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/file"
	"github.com/airlockhq/airlock/model"
)

// Names of the checks CheckUpload runs, in the order it runs them.
const (
	// CheckFiles: the staging area holds exactly the files the uploader
	// confirmed, at the sizes they gave.
	CheckFiles = "files"
	// CheckLimits: the files keep within the worker's upload limits.
	CheckLimits = "limits"
	// CheckSHA256: every file was read whole and fingerprinted.
	CheckSHA256 = "sha256"
)

// CheckUploadInput names an upload request, the files its uploader
// confirmed and the limits that bound it.
type CheckUploadInput struct {
	RequestID string               `json:"request_id"`
	Expected  []model.ExpectedFile `json:"expected"`
	Limits    model.UploadLimits   `json:"limits"`
}

// CheckUploadResult is the outcome of every check that ran and, when all
// passed, the files with their sizes, SHA-256 and media types.
type CheckUploadResult struct {
	Files  []model.FileRecord  `json:"files"`
	Checks []model.CheckResult `json:"checks"`
	Passed bool                `json:"passed"`
}

// CheckUploadProgress is what CheckUpload heartbeats while it fingerprints.
type CheckUploadProgress struct {
	File       string `json:"file"`
	FilesDone  int    `json:"files_done"`
	FilesTotal int    `json:"files_total"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
}

// CheckUpload checks what an uploader put in a request's staging area
// against what they confirmed: the committed files under the request's
// folder (leaving out the upload bookkeeping under .uploads/ and the crate)
// must be exactly the confirmed ones at their sizes, and keep within the
// limits; then each is read whole through SHA-256, heartbeating the bytes
// done (a retried attempt simply starts again). A failed check is a result
// (Passed false, each check saying what is wrong and how to fix it), not an
// error; errors are the store's, retried, or bad input, not retried.
func (a *Activities) CheckUpload(ctx context.Context, in CheckUploadInput) (res CheckUploadResult, err error) {
	defer func() { err = a.failure(err) }()
	if _, cerr := model.CleanRelPath(in.RequestID); cerr != nil || strings.Contains(in.RequestID, "/") {
		return res, connectors.BadInput("request_id: %q cannot name a request's folder: use the request's id (letters, digits and '-')", in.RequestID)
	}
	if in.Limits.MaxFileSize < 0 || in.Limits.MaxRequestSize < 0 || in.Limits.MaxFiles < 0 {
		return res, connectors.BadInput("limits: maxFileSize, maxRequestSize and maxFiles cannot be negative (0 means no limit)")
	}
	expected := map[string]int64{}
	for i, f := range in.Expected {
		clean, cerr := model.CleanRelPath(f.Path)
		if cerr != nil || clean != f.Path {
			return res, connectors.BadInput("expected[%d].path: %q is not a clean relative path", i, f.Path)
		}
		if why := model.ReservedPath(clean); why != "" {
			return res, connectors.BadInput("expected[%d].path: %s", i, why)
		}
		if _, dup := expected[clean]; dup {
			return res, connectors.BadInput("expected[%d].path: %s is listed twice", i, clean)
		}
		expected[clean] = f.Size
	}

	prefix := StagingPrefix(in.RequestID)
	listed, err := a.Staging.List(ctx, prefix)
	if err != nil {
		return res, fmt.Errorf("listing the uploaded files of %s: %w", in.RequestID, err)
	}
	found := map[string]int64{}
	for _, o := range listed {
		rel, ok := strings.CutPrefix(o.Key, prefix+"/")
		if !ok || rel == CrateFile || rel == model.UploadStateFolder || strings.HasPrefix(rel, model.UploadStateFolder+"/") {
			continue
		}
		found[rel] = o.Size
	}

	files := checkFileSet(expected, found)
	limits := checkLimits(in.Limits, found)
	res.Checks = []model.CheckResult{files, limits}
	if !files.Passed || !limits.Passed {
		return res, nil
	}

	fingerprint, records, err := a.fingerprint(ctx, in.RequestID, found)
	if err != nil {
		return res, err
	}
	res.Checks = append(res.Checks, fingerprint)
	if !fingerprint.Passed {
		return res, nil
	}
	res.Files, res.Passed = records, true
	activity.GetLogger(ctx).Info("upload checked", "request", in.RequestID, "files", len(records))
	return res, nil
}

// checkFileSet compares the files found with the ones confirmed.
func checkFileSet(expected, found map[string]int64) model.CheckResult {
	var missing, unexpected, wrongSize []string
	for _, p := range sortedKeys(expected) {
		size, ok := found[p]
		switch {
		case !ok:
			missing = append(missing, p)
		case size != expected[p]:
			wrongSize = append(wrongSize, fmt.Sprintf("%s (%d bytes uploaded, %d confirmed)", p, size, expected[p]))
		}
	}
	var reserved []string
	for _, p := range sortedKeys(found) {
		if _, ok := expected[p]; ok {
			continue
		}
		if why := model.ReservedPath(p); why != "" {
			reserved = append(reserved, why)
		} else {
			unexpected = append(unexpected, p)
		}
	}
	if len(missing)+len(unexpected)+len(wrongSize)+len(reserved) == 0 {
		return model.CheckResult{Name: CheckFiles, Passed: true, Message: fmt.Sprintf("the %d confirmed files are uploaded, at the sizes confirmed", len(expected))}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("missing: %s (upload them, or leave them out of the confirmation)", strings.Join(missing, ", ")))
	}
	if len(wrongSize) > 0 {
		problems = append(problems, fmt.Sprintf("wrong size: %s (delete each and upload it again, or confirm its real size)", strings.Join(wrongSize, ", ")))
	}
	if len(unexpected) > 0 {
		problems = append(problems, fmt.Sprintf("not confirmed: %s (delete them, or list them in the confirmation)", strings.Join(unexpected, ", ")))
	}
	problems = append(problems, reserved...)
	return model.CheckResult{Name: CheckFiles, Message: "the uploaded files are not the ones confirmed: " + strings.Join(problems, "; ") + "; then confirm again"}
}

// checkLimits applies the upload limits to the files found.
func checkLimits(l model.UploadLimits, found map[string]int64) model.CheckResult {
	var problems []string
	if l.MaxFiles > 0 && len(found) > l.MaxFiles {
		problems = append(problems, fmt.Sprintf("%d files are uploaded but a request may hold at most %d (uploads.maxFiles): delete %d, or split them across requests", len(found), l.MaxFiles, len(found)-l.MaxFiles))
	}
	var total int64
	var big []string
	for _, p := range sortedKeys(found) {
		total += found[p]
		if l.MaxFileSize > 0 && found[p] > l.MaxFileSize {
			big = append(big, fmt.Sprintf("%s (%s)", p, model.FormatBytes(found[p])))
		}
	}
	if len(big) > 0 {
		problems = append(problems, fmt.Sprintf("larger than the %s a file may be (uploads.maxFileSize): %s: split or compress them", model.FormatBytes(l.MaxFileSize), strings.Join(big, ", ")))
	}
	if l.MaxRequestSize > 0 && total > l.MaxRequestSize {
		problems = append(problems, fmt.Sprintf("the files total %s but a request may hold at most %s (uploads.maxRequestSize): delete some, or split them across requests", model.FormatBytes(total), model.FormatBytes(l.MaxRequestSize)))
	}
	if len(problems) > 0 {
		return model.CheckResult{Name: CheckLimits, Message: strings.Join(problems, "; ")}
	}
	return model.CheckResult{Name: CheckLimits, Passed: true, Message: fmt.Sprintf("%d files, %s in all, within the upload limits (%s)", len(found), model.FormatBytes(total), describeLimits(l))}
}

func describeLimits(l model.UploadLimits) string {
	var parts []string
	if l.MaxFiles > 0 {
		parts = append(parts, fmt.Sprintf("at most %d files", l.MaxFiles))
	}
	if l.MaxFileSize > 0 {
		parts = append(parts, "at most "+model.FormatBytes(l.MaxFileSize)+" a file")
	}
	if l.MaxRequestSize > 0 {
		parts = append(parts, "at most "+model.FormatBytes(l.MaxRequestSize)+" in all")
	}
	if len(parts) == 0 {
		return "none set"
	}
	return strings.Join(parts, ", ")
}

// fingerprint reads every file found through SHA-256. A file that vanished
// or changed size since it was listed fails the check (someone is still
// changing the upload); a store error is returned, to be retried.
func (a *Activities) fingerprint(ctx context.Context, requestID string, found map[string]int64) (model.CheckResult, []model.FileRecord, error) {
	cfg := a.Transfer.withDefaults()
	progress := CheckUploadProgress{FilesTotal: len(found)}
	for _, size := range found {
		progress.BytesTotal += size
	}
	buf := make([]byte, cfg.BufferSize)
	last := time.Now()
	activity.RecordHeartbeat(ctx, progress)
	var records []model.FileRecord
	var changed []string
	for _, p := range sortedKeys(found) {
		progress.File = p
		base := progress.BytesDone
		size, sum, err := a.hashStaged(ctx, stagingKey(requestID, p), buf, func(n int64) {
			progress.BytesDone = base + n
			if time.Since(last) >= cfg.CheckpointEvery {
				last = time.Now()
				activity.RecordHeartbeat(ctx, progress)
			}
		})
		switch {
		case errors.Is(err, connectors.ErrNotFound):
			changed = append(changed, p+" (deleted while it was checked)")
			continue
		case err != nil:
			return model.CheckResult{}, nil, fmt.Errorf("fingerprinting %s: %w", p, err)
		case size != found[p]:
			changed = append(changed, fmt.Sprintf("%s (%d bytes when listed, %d when read)", p, found[p], size))
			continue
		}
		records = append(records, model.FileRecord{Path: p, Size: size, SHA256: sum, EncodingFormat: file.MediaType(p)})
		progress.FilesDone++
		progress.BytesDone = base + size
		activity.RecordHeartbeat(ctx, progress)
	}
	if len(changed) > 0 {
		return model.CheckResult{Name: CheckSHA256, Message: "files changed while they were fingerprinted: " + strings.Join(changed, ", ") + "; finish changing the upload, then confirm again"}, nil, nil
	}
	sort.Slice(records, func(i, j int) bool { return records[i].Path < records[j].Path })
	return model.CheckResult{Name: CheckSHA256, Passed: true, Message: fmt.Sprintf("%d files (%s) read whole and fingerprinted with SHA-256", len(records), model.FormatBytes(progress.BytesTotal))}, records, nil
}

// hashStaged streams one staged file through SHA-256, reporting the bytes
// read so far. Memory is buf, whatever the file's size.
func (a *Activities) hashStaged(ctx context.Context, key string, buf []byte, onProgress func(int64)) (int64, string, error) {
	rc, err := a.Staging.Open(ctx, key)
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	h := sha256.New()
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return 0, "", err
		}
		m, rerr := rc.Read(buf)
		if m > 0 {
			h.Write(buf[:m])
			n += int64(m)
			onProgress(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, "", fmt.Errorf("reading %s at byte %d: %w", a.Staging.URL(key), n, rerr)
		}
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
