// Package releasemanifest is the signed record an egress release leaves
// beside the files it released: release-manifest.json lists every released
// file with its size and SHA-256 and who approved it, the files withheld and
// why, and the id of the Ed25519 key that signed it; release-manifest.json.sig
// holds the signature over the manifest file's exact bytes.
//
// Anyone holding the public key can check a copy of a release: Verify checks
// the signature, VerifyFiles (or VerifyDir for a local folder) checks that
// every released file is there with the size and SHA-256 the manifest gives.
// Keys are the PEM files OpenSSL makes:
//
//	openssl genpkey -algorithm ed25519 -out egress-signing-key.pem
//	openssl pkey -in egress-signing-key.pem -pubout -out egress-signing-key.pub.pem
package releasemanifest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/airlockhq/airlock/model"
)

// File names a release writes at the top of its folder.
const (
	FileName          = model.ReleaseManifestFileName
	SignatureFileName = model.ReleaseSignatureFileName
)

// Format is the manifest format this package writes and reads.
const Format = "airlock-release-manifest/v1"

// KindEgress is the kind of an egress release.
const KindEgress = "egress"

// Manifest is the content of release-manifest.json.
type Manifest struct {
	Format  string `json:"format"`
	Request string `json:"request"`
	Kind    string `json:"kind"`
	Project string `json:"project"`
	// Workspace is where the files came from.
	Workspace string `json:"workspace"`
	// Destination names the configured destination; Location is the
	// release's folder there.
	Destination   string `json:"destination"`
	Location      string `json:"location"`
	Requester     string `json:"requester"`
	Justification string `json:"justification"`
	Policy        string `json:"policy"`
	// ManifestDigest is model.ManifestDigest of Files.
	ManifestDigest string     `json:"manifest_digest"`
	ReleasedAt     time.Time  `json:"released_at"`
	Files          []File     `json:"files"`
	Withheld       []Withheld `json:"withheld"`
	// KeyID names the key that signed the manifest (see KeyID).
	KeyID string `json:"key_id"`
}

// File is one released file: its path in the release folder, size and
// SHA-256, and the approvals of exactly these bytes.
type File struct {
	Path       string     `json:"path"`
	Size       int64      `json:"size"`
	SHA256     string     `json:"sha256"`
	ApprovedBy []Approval `json:"approved_by"`
}

// Approval is one output checker's approval of a file.
type Approval struct {
	By   string    `json:"by"`
	At   time.Time `json:"at"`
	Turn int       `json:"turn"`
}

// Withheld is a file of the request that was not released, with its
// standing (reject, request-changes, pending) and who gave it.
type Withheld struct {
	Path    string   `json:"path"`
	SHA256  string   `json:"sha256"`
	Verdict string   `json:"verdict"`
	By      []string `json:"by"`
}

// Records returns the released files as model file records.
func (m Manifest) Records() []model.FileRecord {
	out := make([]model.FileRecord, len(m.Files))
	for i, f := range m.Files {
		out[i] = model.FileRecord{Path: f.Path, Size: f.Size, SHA256: f.SHA256}
	}
	return out
}

// withEmptyLists copies m with nil lists made empty, so that the JSON
// says [] rather than null.
func (m Manifest) withEmptyLists() Manifest {
	m.Files = append([]File{}, m.Files...)
	for i := range m.Files {
		if m.Files[i].ApprovedBy == nil {
			m.Files[i].ApprovedBy = []Approval{}
		}
	}
	m.Withheld = append([]Withheld{}, m.Withheld...)
	for i := range m.Withheld {
		if m.Withheld[i].By == nil {
			m.Withheld[i].By = []string{}
		}
	}
	return m
}

// check says what makes m unfit to sign or to trust.
func (m Manifest) check() error {
	var errs []string
	if m.Format != Format {
		errs = append(errs, fmt.Sprintf("format is %q, not %q (this version of Airlock reads only %s)", m.Format, Format, Format))
	}
	if m.Request == "" {
		errs = append(errs, "request: missing")
	}
	if len(m.Files) == 0 {
		errs = append(errs, "files: empty (a release holds at least one file)")
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		if c, err := model.CleanRelPath(f.Path); err != nil || c != f.Path {
			errs = append(errs, fmt.Sprintf("files[%d].path %q is not a clean relative path", i, f.Path))
		}
		if seen[f.Path] {
			errs = append(errs, fmt.Sprintf("files[%d].path %q is listed twice", i, f.Path))
		}
		seen[f.Path] = true
		if f.Size < 0 || len(f.SHA256) != 64 {
			errs = append(errs, fmt.Sprintf("files[%d] (%s): size %d or sha256 %q is not valid", i, f.Path, f.Size, f.SHA256))
		}
	}
	if got := model.ManifestDigest(m.Records()); m.ManifestDigest != got {
		errs = append(errs, fmt.Sprintf("manifest_digest is %q but its files give %s", m.ManifestDigest, got))
	}
	if len(errs) > 0 {
		return fmt.Errorf("release manifest of %q: %s", m.Request, strings.Join(errs, "; "))
	}
	return nil
}

// Sign fills in m's format and key id, and returns the bytes of the two
// files a release writes: body, the manifest as indented JSON ending in a
// newline (release-manifest.json), and sigFile, the standard base64 of the
// 64-byte Ed25519 signature over exactly body, with a newline
// (release-manifest.json.sig).
func Sign(m Manifest, key ed25519.PrivateKey) (body, sigFile []byte, err error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, nil, fmt.Errorf("signing the release manifest: not an Ed25519 private key (%d bytes, not %d)", len(key), ed25519.PrivateKeySize)
	}
	if m.Format == "" {
		m.Format = Format
	}
	m.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	m = m.withEmptyLists()
	if err := m.check(); err != nil {
		return nil, nil, err
	}
	body, err = json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	body = append(body, '\n')
	sig := ed25519.Sign(key, body)
	return body, []byte(base64.StdEncoding.EncodeToString(sig) + "\n"), nil
}

// Verify checks that sigFile (the content of release-manifest.json.sig) is
// pub's signature over body (the exact bytes of release-manifest.json) and
// returns the manifest. A manifest signed by another key is refused naming
// both key ids; a manifest or signature changed after signing is refused
// as such.
func Verify(body, sigFile []byte, pub ed25519.PublicKey) (Manifest, error) {
	var m Manifest
	if len(pub) != ed25519.PublicKeySize {
		return m, fmt.Errorf("not an Ed25519 public key (%d bytes, not %d)", len(pub), ed25519.PublicKeySize)
	}
	sig, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sigFile)))
	if err != nil {
		return m, fmt.Errorf("%s is not standard base64: %v", SignatureFileName, err)
	}
	if len(sig) != ed25519.SignatureSize {
		return m, fmt.Errorf("%s holds %d bytes, not a %d-byte Ed25519 signature", SignatureFileName, len(sig), ed25519.SignatureSize)
	}
	want := KeyID(pub)
	if !ed25519.Verify(pub, body, sig) {
		// Say why if the manifest can: it names the key that signed it.
		var claimed Manifest
		if json.Unmarshal(body, &claimed) == nil && claimed.KeyID != "" && claimed.KeyID != want {
			return m, fmt.Errorf("%s was signed with key %s, but the public key given is %s: verify with the public key whose id is %s", FileName, claimed.KeyID, want, claimed.KeyID)
		}
		return m, fmt.Errorf("the signature does not match %s under key %s: the manifest or its signature was changed after signing (or they belong to different releases)", FileName, want)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%s is signed but does not parse: %v", FileName, err)
	}
	if m.KeyID != want {
		return Manifest{}, fmt.Errorf("%s names key %s but was signed with %s: it was not made by Airlock", FileName, m.KeyID, want)
	}
	if err := m.check(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}
