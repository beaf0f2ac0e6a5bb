package activities

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/secrets"
)

// EgressDestinationPrefix is where an egress's files go in its
// destination's store: a folder named after the request.
func EgressDestinationPrefix(requestID string) string { return requestID }

// ReleaseEgressInput is an egress whose output checking is done.
// Request.State is RELEASING and Request.Egress is set: the files whose
// Verdict is approve are released, the others are listed in the manifest
// as withheld; Request.Egress.Reviews holds every review (who approved
// what, when).
type ReleaseEgressInput struct {
	Request model.RequestStatus `json:"request"`
}

// ReleaseEgressResult says where the release is and how it was signed.
type ReleaseEgressResult struct {
	Release model.EgressRelease `json:"release"`
}

// ReleaseEgress copies exactly the approved staged files of an egress to
// its destination, under EgressDestinationPrefix(id)/<path>, checking each
// file's SHA-256 against the reviewed one while it streams (staged bytes
// that changed are never published) and resuming from its heartbeats like
// Release. It then writes release-manifest.json, signed with the key the
// config's egress.signingKey names (release-manifest.json.sig), and last
// the egress crate (ro-crate-metadata.json), whose presence marks a
// complete release.
func (a *Activities) ReleaseEgress(ctx context.Context, in ReleaseEgressInput) (out ReleaseEgressResult, err error) {
	defer func() { err = a.failure(err) }()
	r := in.Request
	plan, err := planEgressRelease(r)
	if err != nil {
		return out, err
	}
	dest, err := a.destination(r.Egress.Destination)
	if err != nil {
		return out, err
	}
	// The key is resolved before anything is copied: a release that
	// cannot be signed does not start.
	key, keyID, err := a.egressSigningKey(ctx)
	if err != nil {
		return out, err
	}

	var progress ReleaseProgress
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &progress)
	}
	prefix := EgressDestinationPrefix(r.ID)
	done := map[string]bool{}
	for _, p := range progress.Done {
		done[p] = true
	}
	var total, resumed int64
	for _, f := range plan.released {
		total += f.Size
		dst := path.Join(prefix, f.Path)
		if done[f.Path] {
			if st, err := dest.Store.Stat(ctx, dst); err == nil && st.Size == f.Size {
				resumed += f.Size
				continue
			}
		}
		var resume *FileCheckpoint
		if progress.Current != nil && progress.Current.Key == dst {
			resume = progress.Current
		}
		src := stagingKey(r.ID, f.Path)
		base := progress.BytesDone
		c, err := a.copyFile(ctx, dest.Store, copyJob{
			key:    dst,
			size:   f.Size,
			sha256: f.SHA256,
			open: func(ctx context.Context, offset int64) (io.ReadCloser, error) {
				rc, err := openAt(ctx, a.Staging, src, offset)
				if errors.Is(err, connectors.ErrNotFound) {
					return nil, connectors.BadInput("the staged copy of %s is missing (%s): it cannot be released; start a new egress for it", f.Path, a.Staging.URL(src))
				}
				return rc, err
			},
		}, resume, func(cp FileCheckpoint, offset int64) {
			progress.Current = &cp
			progress.BytesDone = base + offset
			activity.RecordHeartbeat(ctx, progress)
		})
		if err != nil {
			return out, nonRetryable(fmt.Errorf("releasing %s to destination %s: %w", f.Path, r.Egress.Destination, err))
		}
		resumed += c.Resumed
		progress.Done = append(progress.Done, f.Path)
		progress.Current = nil
		progress.BytesDone = base + f.Size
		activity.RecordHeartbeat(ctx, progress)
	}

	at := time.Now().UTC()
	location := dest.Store.URL(prefix)
	manifest := releasemanifest.Manifest{
		Format: releasemanifest.Format, Request: r.ID, Kind: releasemanifest.KindEgress,
		Project: r.Project, Workspace: r.Workspace, Destination: r.Egress.Destination, Location: location,
		Requester: r.Requester, Justification: r.Egress.Justification, Policy: r.Policy,
		ManifestDigest: model.ManifestDigest(plan.released), ReleasedAt: at,
		Files: plan.files, Withheld: plan.withheld,
	}
	body, sig, err := releasemanifest.Sign(manifest, key)
	if err != nil {
		return out, nonRetryable(connectors.BadInput("egress %s: %v", r.ID, err))
	}
	wm, err := writeSmall(ctx, dest.Store, path.Join(prefix, releasemanifest.FileName), body)
	if err != nil {
		return out, fmt.Errorf("writing the release manifest: %w", err)
	}
	ws, err := writeSmall(ctx, dest.Store, path.Join(prefix, releasemanifest.SignatureFileName), sig)
	if err != nil {
		return out, fmt.Errorf("writing the manifest's signature: %w", err)
	}
	crate, err := BuildEgressCrate(EgressCrateInput{Request: r, Release: EgressCrateRelease{
		Destination: r.Egress.Destination, Description: dest.Description, Location: location, At: at,
		Files: plan.released, Withheld: plan.withheld, ManifestDigest: manifest.ManifestDigest,
		Manifest: wm, Signature: ws, KeyID: keyID,
	}})
	if err != nil {
		return out, err
	}
	if _, err := writeSmall(ctx, dest.Store, path.Join(prefix, CrateFile), crate); err != nil {
		return out, fmt.Errorf("writing the egress crate: %w", err)
	}
	out.Release = model.EgressRelease{
		Location: location, Prefix: prefix,
		ManifestURL: wm.URL, ManifestSHA256: wm.SHA256, SignatureURL: ws.URL, KeyID: keyID,
		Files: len(plan.released), Bytes: total, At: at,
	}
	activity.GetLogger(ctx).Info("egress released", "request", r.ID, "destination", r.Egress.Destination, "location", location,
		"files", len(plan.released), "bytes", total, "resumed_bytes", resumed, "withheld", len(plan.withheld), "key_id", keyID)
	return out, nil
}

// egressPlan is what a release copies and records.
type egressPlan struct {
	released []model.FileRecord         // sorted by path
	files    []releasemanifest.File     // the same, with their approvals
	withheld []releasemanifest.Withheld // the files not released
}

// planEgressRelease checks that the egress is ready to release and works
// out, for every file, whether it goes and who decided. A file marked
// approved must have an approval of exactly its bytes (a review of its
// turn or later) from every checker who reviewed it since, or nothing is
// released: the status contradicts itself.
func planEgressRelease(r model.RequestStatus) (egressPlan, error) {
	var plan egressPlan
	if r.State != model.StateReleasing {
		return plan, connectors.BadInput("request %s is %s, not %s: nothing released", r.ID, r.State, model.StateReleasing)
	}
	if r.Egress == nil {
		return plan, connectors.BadInput("request %s is a %s, not an egress: ReleaseEgress releases only egresses", r.ID, r.Kind)
	}
	if c, err := model.CleanRelPath(r.ID); err != nil || c != r.ID || strings.Contains(r.ID, "/") {
		return plan, connectors.BadInput("request id %q cannot name a release folder: it must be one clean path segment", r.ID)
	}
	reserved := map[string]bool{releasemanifest.FileName: true, releasemanifest.SignatureFileName: true, CrateFile: true}
	seen := map[string]bool{}
	files := append([]model.EgressFile(nil), r.Egress.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		if c, err := model.CleanRelPath(f.Path); err != nil || c != f.Path {
			return plan, connectors.BadInput("request %s: file path %q is not a clean relative path: nothing released", r.ID, f.Path)
		}
		if seen[f.Path] {
			return plan, connectors.BadInput("request %s lists %s twice: nothing released", r.ID, f.Path)
		}
		seen[f.Path] = true
		verdicts := latestVerdicts(r.Egress.Reviews, f)
		if f.Verdict != model.VerdictApprove {
			w := releasemanifest.Withheld{Path: f.Path, SHA256: f.SHA256, Verdict: f.Verdict, By: []string{}}
			for _, v := range verdicts {
				if v.verdict == f.Verdict {
					w.By = append(w.By, v.by)
				}
			}
			plan.withheld = append(plan.withheld, w)
			continue
		}
		if reserved[f.Path] {
			return plan, connectors.BadInput("request %s: %s is where a release writes its own %s: rename the file or put it in a folder, and start a new egress", r.ID, f.Path, f.Path)
		}
		if len(f.SHA256) != 64 {
			return plan, connectors.BadInput("request %s: %s has no SHA-256 from its snapshot: nothing released", r.ID, f.Path)
		}
		mf := releasemanifest.File{Path: f.Path, Size: f.Size, SHA256: f.SHA256, ApprovedBy: []releasemanifest.Approval{}}
		for _, v := range verdicts {
			if v.verdict != model.VerdictApprove {
				return plan, connectors.BadInput("request %s: %s is marked approved, but %s gave it %s in turn %d: nothing released", r.ID, f.Path, v.by, v.verdict, v.turn)
			}
			mf.ApprovedBy = append(mf.ApprovedBy, releasemanifest.Approval{By: v.by, At: v.at, Turn: v.turn})
		}
		if len(mf.ApprovedBy) == 0 {
			return plan, connectors.BadInput("request %s: %s is marked approved, but no review of turn %d or later approves it: nothing released", r.ID, f.Path, f.Turn)
		}
		plan.files = append(plan.files, mf)
		plan.released = append(plan.released, f.FileRecord)
	}
	if len(plan.released) == 0 {
		return plan, connectors.BadInput("request %s has no approved file: nothing to release", r.ID)
	}
	return plan, nil
}

// checkerVerdict is one checker's last word on a file.
type checkerVerdict struct {
	by, stage, verdict string
	turn               int
	at                 time.Time
}

// latestVerdicts gives, for each checker (by stage) who reviewed the
// file's current bytes (a review of the file's turn or later), their
// latest verdict on it, ordered by time.
func latestVerdicts(reviews []model.EgressReviewRecord, f model.EgressFile) []checkerVerdict {
	latest := map[string]checkerVerdict{}
	for _, rv := range reviews {
		if rv.Turn < f.Turn {
			continue
		}
		for _, fr := range rv.Files {
			if fr.Path != f.Path {
				continue
			}
			k := rv.Stage + "\x00" + rv.By
			if old, ok := latest[k]; ok && (old.turn > rv.Turn || (old.turn == rv.Turn && old.at.After(rv.At))) {
				continue
			}
			latest[k] = checkerVerdict{by: rv.By, stage: rv.Stage, verdict: fr.Verdict, turn: rv.Turn, at: rv.At}
		}
	}
	out := slices.Collect(maps.Values(latest))
	sort.Slice(out, func(i, j int) bool {
		if !out[i].at.Equal(out[j].at) {
			return out[i].at.Before(out[j].at)
		}
		return out[i].by < out[j].by
	})
	return out
}

// destination returns the configured destination name, or says which
// ones there are.
func (a *Activities) destination(name string) (EgressDestination, error) {
	d, ok := a.Destinations[name]
	if !ok || d.Store == nil {
		known := slices.Sorted(maps.Keys(a.Destinations))
		if len(known) == 0 {
			return d, connectors.BadInput("destination %q: this worker has no egress destinations: configure egress.destinations in the worker's config", name)
		}
		return d, connectors.BadInput("destination %q is not one of this worker's egress destinations (%s): name one of those, or add it to egress.destinations in the worker's config", name, strings.Join(known, ", "))
	}
	return d, nil
}

// egressSigningKey resolves and parses the release signing key. The key's
// value never reaches an error: only its secret key name does.
func (a *Activities) egressSigningKey(ctx context.Context) (ed25519.PrivateKey, string, error) {
	how := "generate one with `openssl genpkey -algorithm ed25519` and store it under that key in the worker's secrets (make dev writes one)"
	if a.SigningKey == "" {
		return nil, "", connectors.BadInput("no release signing key: set egress.signingKey in the worker's config to the name of the secret holding an Ed25519 private key (PKCS#8 PEM); %s", how)
	}
	provider := a.Secrets
	if provider == nil {
		provider = &secrets.Provider{}
	}
	v, err := provider.Lookup(ctx, a.SigningKey)
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", err
		}
		return nil, "", connectors.BadInput("egress.signingKey: %w; %s", err, how)
	}
	key, err := releasemanifest.ParsePrivateKey([]byte(v))
	if err != nil {
		return nil, "", connectors.BadInput("egress.signingKey: the secret %q does not hold a usable key: %v", a.SigningKey, err)
	}
	return key, releasemanifest.KeyID(key.Public().(ed25519.PublicKey)), nil
}
