package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"time"

	"go.temporal.io/sdk/activity"
	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
)

// WriteCrateInput is the staged request whose crate to write.
type WriteCrateInput struct {
	Crate CrateInput `json:"crate"`
}

// WriteCrateResult locates the crate file written.
type WriteCrateResult struct {
	Key    string `json:"key"`
	URL    string `json:"url"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// WriteCrate writes ro-crate-metadata.json beside the staged files.
func (a *Activities) WriteCrate(ctx context.Context, in WriteCrateInput) (WriteCrateResult, error) {
	data, err := BuildCrate(in.Crate)
	if err != nil {
		return WriteCrateResult{}, err
	}
	key := path.Join(StagingPrefix(in.Crate.Request.ID), CrateFile)
	return writeSmall(ctx, a.Staging, key, data)
}

// writeSmall writes a small generated file (crate, binding) atomically.
func writeSmall(ctx context.Context, store connectors.Store, key string, data []byte) (WriteCrateResult, error) {
	w, err := store.Create(ctx, key, nil)
	if err != nil {
		return WriteCrateResult{}, err
	}
	if _, err := w.Write(data); err != nil {
		_ = w.Abort()
		return WriteCrateResult{}, err
	}
	if err := w.Commit(); err != nil {
		return WriteCrateResult{}, err
	}
	sum := sha256.Sum256(data)
	return WriteCrateResult{Key: key, URL: store.URL(key), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, nil
}

// ReleaseInput is an approved request to copy into its workspace.
type ReleaseInput struct {
	Crate CrateInput `json:"crate"`
}

// ReleaseResult says where the data now is.
type ReleaseResult struct {
	Location     string    `json:"location"`
	Files        int       `json:"files"`
	Bytes        int64     `json:"bytes"`
	CrateSHA256  string    `json:"crate_sha256"`
	ReleasedAt   time.Time `json:"released_at"`
	ResumedBytes int64     `json:"resumed_bytes"`
}

// ReleaseProgress is what Release heartbeats.
type ReleaseProgress struct {
	Done      []string        `json:"done"`
	Current   *FileCheckpoint `json:"current,omitempty"`
	BytesDone int64           `json:"bytes_done"`
	At        time.Time       `json:"at"`
}

// Release copies exactly the approved files from staging into the workspace,
// checking each file's SHA-256 against the approved one while it streams (a
// file whose staged bytes changed is never published), then writes the
// binding and the crate with its review record. The crate is written last:
// its presence marks a complete release.
func (a *Activities) Release(ctx context.Context, in ReleaseInput) (ReleaseResult, error) {
	r := in.Crate.Request
	if r.State != model.StateReleasing {
		return ReleaseResult{}, nonRetryable(connectors.BadInput("request %s is %s, not %s: nothing released", r.ID, r.State, model.StateReleasing))
	}
	if model.ManifestDigest(r.Files) != r.ManifestDigest {
		return ReleaseResult{}, nonRetryable(connectors.BadInput("request %s: its file list does not match its approved manifest digest: nothing released", r.ID))
	}
	var progress ReleaseProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &progress)
	}
	if progress.At.IsZero() {
		progress.At = time.Now().UTC()
	}
	prefix := WorkspacePrefix(r.Workspace, r.DataSource, r.ID)
	done := map[string]bool{}
	for _, p := range progress.Done {
		done[p] = true
	}
	out := ReleaseResult{Files: len(r.Files)}
	for _, f := range sortedFiles(r.Files) {
		out.Bytes += f.Size
		dst := path.Join(prefix, f.Path)
		if done[f.Path] {
			if st, err := a.Workspaces.Stat(ctx, dst); err == nil && st.Size == f.Size {
				out.ResumedBytes += f.Size
				continue
			}
		}
		var resume *FileCheckpoint
		if progress.Current != nil && progress.Current.Key == dst {
			resume = progress.Current
		}
		src := stagingKey(r.ID, f.Path)
		base := progress.BytesDone
		c, err := a.copyFile(ctx, a.Workspaces, copyJob{
			key:    dst,
			size:   f.Size,
			sha256: f.SHA256,
			open: func(ctx context.Context, offset int64) (io.ReadCloser, error) {
				return openAt(ctx, a.Staging, src, offset)
			},
		}, resume, func(cp FileCheckpoint, offset int64) {
			progress.Current = &cp
			progress.BytesDone = base + offset
			activity.RecordHeartbeat(ctx, progress)
		})
		if err != nil {
			return ReleaseResult{}, nonRetryable(fmt.Errorf("releasing %s: %w", f.Path, err))
		}
		out.ResumedBytes += c.Resumed
		progress.Done = append(progress.Done, f.Path)
		progress.Current = nil
		progress.BytesDone = base + f.Size
		activity.RecordHeartbeat(ctx, progress)
	}

	binding := model.DataBinding{
		APIVersion: model.APIVersion, Kind: model.KindDataBinding,
		Metadata: model.ObjectMeta{Name: in.Crate.Release.Binding, Labels: map[string]string{"airlock.xlscsde.nhs.uk/request": r.ID}},
		Spec:     model.DataBindingSpec{Workspace: r.Workspace, DataSource: r.DataSource},
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(binding); err != nil {
		return ReleaseResult{}, err
	}
	if _, err := writeSmall(ctx, a.Workspaces, path.Join(prefix, BindingFile), buf.Bytes()); err != nil {
		return ReleaseResult{}, err
	}
	crate := in.Crate
	crate.Release.At = time.Now().UTC()
	crate.Release.Location = a.Workspaces.URL(prefix)
	data, err := BuildCrate(crate)
	if err != nil {
		return ReleaseResult{}, err
	}
	wc, err := writeSmall(ctx, a.Workspaces, path.Join(prefix, CrateFile), data)
	if err != nil {
		return ReleaseResult{}, err
	}
	out.CrateSHA256 = wc.SHA256
	out.ReleasedAt = crate.Release.At
	out.Location = a.Workspaces.URL(prefix)
	activity.GetLogger(ctx).Info("request released", "request", r.ID, "location", out.Location, "files", out.Files, "bytes", out.Bytes)
	return out, nil
}

// openAt opens a stored file and skips to offset.
func openAt(ctx context.Context, store connectors.Store, key string, offset int64) (io.ReadCloser, error) {
	rc, err := store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	if offset == 0 {
		return rc, nil
	}
	if s, ok := rc.(io.Seeker); ok {
		if _, err := s.Seek(offset, io.SeekStart); err != nil {
			rc.Close()
			return nil, err
		}
		return rc, nil
	}
	if _, err := io.CopyN(io.Discard, rc, offset); err != nil {
		rc.Close()
		return nil, err
	}
	return rc, nil
}
