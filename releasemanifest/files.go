package releasemanifest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
)

// Kinds of Problem.
const (
	ProblemMissing    = "missing"    // a released file is not there
	ProblemSize       = "size"       // it has another size
	ProblemSHA256     = "sha256"     // it has the size but other bytes
	ProblemUnreadable = "unreadable" // it could not be read
	ProblemUnlisted   = "unlisted"   // a file the release folder holds that the manifest does not list
)

// Problem is a file of a release copy that does not match its manifest.
type Problem struct {
	Path    string `json:"path"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func (p Problem) String() string { return p.Message }

// FilesError lists every file of a release copy that does not match its
// (validly signed) manifest.
type FilesError struct {
	Request  string
	Problems []Problem
}

func (e *FilesError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Message
	}
	return fmt.Sprintf("the release %s is signed, but %d of its files do not match the manifest: %s", e.Request, len(e.Problems), strings.Join(msgs, "; "))
}

// VerifyFiles reads every file m lists through open (which is given the
// file's path in the release folder) and returns a Problem for each one
// that is missing, unreadable, or whose size or SHA-256 differs; none when
// all match. It reads one file at a time in a bounded buffer, and never more
// of a file than one byte past the size the manifest gives.
func VerifyFiles(ctx context.Context, m Manifest, open func(ctx context.Context, path string) (io.ReadCloser, error)) []Problem {
	var problems []Problem
	for _, f := range m.Files {
		if p := verifyFile(ctx, f, open); p != nil {
			problems = append(problems, *p)
		}
	}
	return problems
}

func verifyFile(ctx context.Context, f File, open func(ctx context.Context, path string) (io.ReadCloser, error)) *Problem {
	problem := func(kind, format string, args ...any) *Problem {
		return &Problem{Path: f.Path, Kind: kind, Message: f.Path + ": " + fmt.Sprintf(format, args...)}
	}
	if err := ctx.Err(); err != nil {
		return problem(ProblemUnreadable, "not checked: %v", err)
	}
	rc, err := open(ctx, f.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, connectors.ErrNotFound) {
			return problem(ProblemMissing, "missing (the manifest lists it with %d bytes)", f.Size)
		}
		return problem(ProblemUnreadable, "cannot be read: %v", err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.CopyN(h, ctxReader{ctx, rc}, f.Size+1)
	if err != nil && err != io.EOF {
		return problem(ProblemUnreadable, "reading it failed after %d bytes: %v", n, err)
	}
	switch {
	case n > f.Size:
		return problem(ProblemSize, "has more than the %d bytes the manifest gives", f.Size)
	case n < f.Size:
		return problem(ProblemSize, "has %d bytes, but the manifest gives %d", n, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return problem(ProblemSHA256, "has SHA-256 %s, but the manifest gives %s: its content was changed", got, f.SHA256)
	}
	return nil
}

// ctxReader stops reading when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// VerifyDir checks a local copy of a release: dir holds release-manifest.json,
// its .sig and the released files under their paths. It verifies the
// signature with pub, then every file's size and SHA-256, and flags any file
// the folder holds that the manifest does not list (besides the manifest,
// its signature and the RO-Crate metadata, which are not signed). With a
// valid signature it returns the manifest, together with a *FilesError when
// some files do not match; with an invalid one, only the error.
func VerifyDir(dir string, pub ed25519.PublicKey) (Manifest, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("opening the release folder: %w", err)
	}
	defer root.Close()
	body, err := root.ReadFile(FileName)
	if err != nil {
		return Manifest{}, fmt.Errorf("reading %s: %w (give the folder a release wrote, which holds %s and %s)", filepath.Join(dir, FileName), err, FileName, SignatureFileName)
	}
	sig, err := root.ReadFile(SignatureFileName)
	if err != nil {
		return Manifest{}, fmt.Errorf("reading %s: %w (a release writes it beside %s)", filepath.Join(dir, SignatureFileName), err, FileName)
	}
	m, err := Verify(body, sig, pub)
	if err != nil {
		return Manifest{}, err
	}
	problems := VerifyFiles(context.Background(), m, func(_ context.Context, p string) (io.ReadCloser, error) {
		fi, err := root.Stat(filepath.FromSlash(p))
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("it is not a regular file (%s)", fi.Mode().Type())
		}
		return root.Open(filepath.FromSlash(p))
	})
	listed := map[string]bool{FileName: true, SignatureFileName: true, model.CrateFileName: true}
	for _, f := range m.Files {
		listed[f.Path] = true
	}
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !listed[p] {
			problems = append(problems, Problem{Path: p, Kind: ProblemUnlisted, Message: p + ": is in the folder but not in the manifest: it was not part of the release"})
		}
		return nil
	})
	if err != nil {
		return m, fmt.Errorf("listing the release folder %s: %w", dir, err)
	}
	if len(problems) > 0 {
		return m, &FilesError{Request: m.Request, Problems: problems}
	}
	return m, nil
}
