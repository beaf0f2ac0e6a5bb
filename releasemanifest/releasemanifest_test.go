package releasemanifest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/testservers"
)

// releaseFiles are the files of the test release, by path.
var releaseFiles = map[string][]byte{
	"summary.csv":            []byte("region,count\nnorth,120\nsouth,98\n"),
	"figures/fig1.png":       bytes.Repeat([]byte{0x89, 'P', 'N', 'G', 0}, 4000),
	"report/final report.md": []byte("# Findings\n\nNo small numbers.\n"),
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func testManifest() Manifest {
	at := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	m := Manifest{
		Request: "egress-ws1-ab12cd", Kind: KindEgress, Project: "d4e6", Workspace: "ws1",
		Destination: "partner-outbox", Location: "file:///outbox/egress-ws1-ab12cd",
		Requester: "rita", Justification: "Aggregate results for the paper", Policy: "standard-egress",
		ReleasedAt: at,
		Withheld:   []Withheld{{Path: "raw/patients.csv", SHA256: strings.Repeat("ab", 32), Verdict: model.VerdictReject, By: []string{"olive"}}},
	}
	for _, p := range []string{"figures/fig1.png", "report/final report.md", "summary.csv"} {
		data := releaseFiles[p]
		m.Files = append(m.Files, File{Path: p, Size: int64(len(data)), SHA256: sha(data), ApprovedBy: []Approval{
			{By: "ian", At: at.Add(-time.Hour), Turn: 1}, {By: "olive", At: at.Add(-30 * time.Minute), Turn: 2}}})
	}
	m.ManifestDigest = model.ManifestDigest(m.Records())
	return m
}

func newKey(t *testing.T) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func TestSignVerifyRoundTrip(t *testing.T) {
	priv, pub := newKey(t)
	m := testManifest()
	body, sigFile, err := Sign(m, priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(body, []byte("}\n")) || !bytes.Contains(body, []byte("\n  \"format\": \"airlock-release-manifest/v1\",\n")) {
		t.Errorf("body is not indented JSON ending in a newline:\n%s", body)
	}
	for _, key := range []string{`"manifest_digest"`, `"released_at"`, `"approved_by"`, `"key_id"`, `"withheld"`, `"justification"`} {
		if !bytes.Contains(body, []byte(key)) {
			t.Errorf("body lacks %s", key)
		}
	}
	// The signature file is padded standard base64 of the raw signature
	// over exactly body, and a newline.
	if !bytes.HasSuffix(sigFile, []byte("\n")) || bytes.Count(sigFile, []byte("\n")) != 1 {
		t.Errorf("signature file %q: want one line", sigFile)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(string(sigFile), "\n"))
	if err != nil || len(raw) != ed25519.SignatureSize || !ed25519.Verify(pub, body, raw) {
		t.Fatalf("signature file does not hold a valid raw signature over body (decode err %v, %d bytes)", err, len(raw))
	}
	got, err := Verify(body, sigFile, pub)
	if err != nil {
		t.Fatal(err)
	}
	m.Format, m.KeyID = Format, KeyID(pub)
	if !strings.HasPrefix(got.KeyID, "ed25519:") || len(got.KeyID) != len("ed25519:")+64 {
		t.Errorf("key id %q: want ed25519: and 64 hex digits", got.KeyID)
	}
	sum := sha256.Sum256(pub)
	if got.KeyID != "ed25519:"+hex.EncodeToString(sum[:]) {
		t.Errorf("key id %q is not the SHA-256 of the raw public key", got.KeyID)
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(m)
	if !bytes.Equal(gj, wj) {
		t.Errorf("round trip changed the manifest:\n got %s\nwant %s", gj, wj)
	}
}

func TestSignFillsEmptyListsAndRefusesBadManifests(t *testing.T) {
	priv, _ := newKey(t)
	m := testManifest()
	m.Withheld = nil
	m.Files[0].ApprovedBy = nil
	body, _, err := Sign(m, priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte(`"withheld": []`)) || !bytes.Contains(body, []byte(`"approved_by": []`)) || bytes.Contains(body, []byte("null")) {
		t.Errorf("empty lists should be [] not null:\n%s", body)
	}
	for _, tc := range []struct {
		name   string
		change func(*Manifest)
		want   string
	}{
		{"wrong digest", func(m *Manifest) { m.ManifestDigest = "sha256:00" }, "manifest_digest is \"sha256:00\" but its files give sha256:"},
		{"duplicate path", func(m *Manifest) {
			m.Files = append(m.Files, m.Files[0])
			m.ManifestDigest = model.ManifestDigest(m.Records())
		}, "is listed twice"},
		{"unclean path", func(m *Manifest) {
			m.Files[0].Path = "../escape.csv"
			m.ManifestDigest = model.ManifestDigest(m.Records())
		}, `"../escape.csv" is not a clean relative path`},
		{"no files", func(m *Manifest) { m.Files = nil; m.ManifestDigest = model.ManifestDigest(nil) }, "files: empty"},
		{"other format", func(m *Manifest) { m.Format = "v0" }, `format is "v0"`},
	} {
		m := testManifest()
		tc.change(&m)
		if _, _, err := Sign(m, priv); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v; want %q", tc.name, err, tc.want)
		}
	}
}

func TestVerifyRefusesTamperingAndWrongKeys(t *testing.T) {
	priv, pub := newKey(t)
	otherPriv, otherPub := newKey(t)
	body, sigFile, err := Sign(testManifest(), priv)
	if err != nil {
		t.Fatal(err)
	}
	size := fmt.Sprintf(`"size": %d`, len(releaseFiles["summary.csv"]))
	tampered := bytes.Replace(body, []byte(size), []byte(size+"0"), 1)
	if bytes.Equal(tampered, body) {
		t.Fatalf("test manifest has no %s to tamper with", size)
	}
	otherBody, otherSig, err := Sign(testManifest(), otherPriv)
	if err != nil {
		t.Fatal(err)
	}
	badSig := []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64)) + "\n")
	for _, tc := range []struct {
		name      string
		body, sig []byte
		pub       ed25519.PublicKey
		want      []string
	}{
		{"manifest changed", tampered, sigFile, pub, []string{"signature does not match release-manifest.json", "changed after signing"}},
		{"signature changed", body, badSig, pub, []string{"changed after signing"}},
		{"signature of another release", body, otherSig, pub, []string{"changed after signing"}},
		{"wrong public key", body, sigFile, otherPub, []string{"signed with key " + KeyID(pub), "the public key given is " + KeyID(otherPub), "verify with the public key whose id is " + KeyID(pub)}},
		{"other key's manifest", otherBody, otherSig, pub, []string{"signed with key " + KeyID(otherPub)}},
		{"signature not base64", body, []byte("not base64!\n"), pub, []string{"release-manifest.json.sig is not standard base64"}},
		{"signature too short", body, []byte(base64.StdEncoding.EncodeToString([]byte("short")) + "\n"), pub, []string{"holds 5 bytes, not a 64-byte Ed25519 signature"}},
	} {
		_, err := Verify(tc.body, tc.sig, tc.pub)
		if err == nil {
			t.Errorf("%s: verified", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: err = %v; want it to say %q", tc.name, err, w)
			}
		}
	}

	// A validly signed file that is not a manifest Airlock made is
	// refused too: unknown fields, a key id that is not the signer's.
	for _, tc := range []struct{ name, edit, want string }{
		{"unknown field", `"kind": "egress",` + "\n" + `  "extra": 1,`, `unknown field "extra"`},
		{"key id of another key", `"key_id": "` + KeyID(otherPub) + `"`, "names key " + KeyID(otherPub) + " but was signed with " + KeyID(pub)},
	} {
		var b []byte
		if strings.HasPrefix(tc.edit, `"key_id"`) {
			b = bytes.Replace(body, []byte(`"key_id": "`+KeyID(pub)+`"`), []byte(tc.edit), 1)
		} else {
			b = bytes.Replace(body, []byte(`"kind": "egress",`), []byte(tc.edit), 1)
		}
		if bytes.Equal(b, body) {
			t.Fatalf("%s: edit did not apply", tc.name)
		}
		sig := []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, b)) + "\n")
		if _, err := Verify(b, sig, pub); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v; want %q", tc.name, err, tc.want)
		}
	}
}

// writeRelease writes a release folder as a release makes it: the files,
// the manifest, its signature and a crate.
func writeRelease(t *testing.T, priv ed25519.PrivateKey) string {
	t.Helper()
	dir := t.TempDir()
	for p, data := range releaseFiles {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(p)), data)
	}
	body, sig, err := Sign(testManifest(), priv)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, FileName), body)
	writeFile(t, filepath.Join(dir, SignatureFileName), sig)
	writeFile(t, filepath.Join(dir, model.CrateFileName), []byte("{}"))
	return dir
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyDir(t *testing.T) {
	priv, pub := newKey(t)
	dir := writeRelease(t, priv)
	m, err := VerifyDir(dir, pub)
	if err != nil {
		t.Fatalf("an intact release: %v", err)
	}
	if m.Request != "egress-ws1-ab12cd" || len(m.Files) != 3 {
		t.Errorf("manifest = %+v", m)
	}

	// Every kind of damage at once, each reported.
	csv := releaseFiles["summary.csv"]
	writeFile(t, filepath.Join(dir, "summary.csv"), bytes.Replace(csv, []byte("120"), []byte("121"), 1)) // same size
	writeFile(t, filepath.Join(dir, "report", "final report.md"), []byte("# Findings\n"))                // shorter
	if err := os.Remove(filepath.Join(dir, "figures", "fig1.png")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "figures", "extra.png"), []byte("not released"))
	m, err = VerifyDir(dir, pub)
	var fe *FilesError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v; want a FilesError", err)
	}
	if m.Request != "egress-ws1-ab12cd" {
		t.Errorf("a signed manifest with bad files should still be returned, got %+v", m)
	}
	kinds := map[string]string{}
	for _, p := range fe.Problems {
		kinds[p.Path] = p.Kind
	}
	want := map[string]string{
		"summary.csv":            ProblemSHA256,
		"report/final report.md": ProblemSize,
		"figures/fig1.png":       ProblemMissing,
		"figures/extra.png":      ProblemUnlisted,
	}
	if len(kinds) != len(want) {
		t.Errorf("problems = %+v; want %v", fe.Problems, want)
	}
	for p, k := range want {
		if kinds[p] != k {
			t.Errorf("%s: problem %q; want %q (all: %+v)", p, kinds[p], k, fe.Problems)
		}
	}
	for _, s := range []string{"summary.csv: has SHA-256", "report/final report.md: has 11 bytes, but the manifest gives 30", "figures/fig1.png: missing", "figures/extra.png: is in the folder but not in the manifest"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}

	// A file grown past its size is caught without reading it all.
	writeFile(t, filepath.Join(dir, "summary.csv"), append(append([]byte{}, csv...), bytes.Repeat([]byte("x"), 1<<20)...))
	_, err = VerifyDir(dir, pub)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("summary.csv: has more than the %d bytes", len(csv))) {
		t.Errorf("err = %v; want summary.csv too large", err)
	}

	// A tampered manifest fails before any file is looked at.
	body, _ := os.ReadFile(filepath.Join(dir, FileName))
	writeFile(t, filepath.Join(dir, FileName), bytes.Replace(body, []byte("rita"), []byte("rito"), 1))
	if m, err := VerifyDir(dir, pub); err == nil || !strings.Contains(err.Error(), "changed after signing") || m.Request != "" {
		t.Errorf("tampered manifest: m = %+v, err = %v", m, err)
	}
	if _, err := VerifyDir(t.TempDir(), pub); err == nil || !strings.Contains(err.Error(), "release-manifest.json") {
		t.Errorf("empty folder: err = %v", err)
	}
}

func TestGeneratedKeys(t *testing.T) {
	privPEM, pubPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(privPEM, []byte("-----BEGIN PRIVATE KEY-----\n")) || !bytes.HasPrefix(pubPEM, []byte("-----BEGIN PUBLIC KEY-----\n")) {
		t.Fatalf("PEM types: %q / %q", firstLine(privPEM), firstLine(pubPEM))
	}
	priv, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Fatal("the generated public key is not the private key's")
	}
	again, err := PublicKeyPEM(priv)
	if err != nil || !bytes.Equal(again, pubPEM) {
		t.Errorf("PublicKeyPEM = %q, %v; want the generated public PEM", again, err)
	}
	body, sig, err := Sign(testManifest(), priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(body, sig, pub); err != nil {
		t.Fatal(err)
	}
}

func firstLine(b []byte) string { return strings.SplitN(string(b), "\n", 2)[0] }

func TestKeyParsingRefusals(t *testing.T) {
	privPEM, pubPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPubDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	ecPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})
	ecPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecPubDER})
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"not PEM", []byte("hello"), "no PEM-encoded private key found"},
		{"public given", pubPEM, "this is a public key"},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), "is encrypted"},
		{"ECDSA", ecPEM, "is a ECDSA key, not Ed25519"},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "does not parse"},
	} {
		if _, err := ParsePrivateKey(tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("private %s: err = %v; want %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"not PEM", []byte(""), "no PEM-encoded public key found"},
		{"private given", privPEM, "this is a private key"},
		{"ECDSA", ecPubPEM, "is a ECDSA key, not Ed25519"},
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), `PEM block "CERTIFICATE" is not a public key`},
	} {
		_, err := ParsePublicKey(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("public %s: err = %v; want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "BEGIN PRIVATE KEY") {
			t.Errorf("public %s: the error quotes the private key", tc.name)
		}
	}
}

// Keys made by OpenSSL are read, and OpenSSL reads ours: it derives the
// same public key from a private key GenerateKey made, and verifies a
// signature Sign made over the manifest's bytes.
func TestOpenSSLKeys(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		// .ci/run installs openssl: under CI its absence fails the run.
		testservers.Unavailable(t, fmt.Errorf("openssl not installed (Debian package openssl): %w", err))
	}
	dir := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	keyFile, pubFile := filepath.Join(dir, "key.pem"), filepath.Join(dir, "key.pub.pem")
	run("genpkey", "-algorithm", "ed25519", "-out", keyFile)
	run("pkey", "-in", keyFile, "-pubout", "-out", pubFile)
	privPEM, _ := os.ReadFile(keyFile)
	pubPEM, _ := os.ReadFile(pubFile)
	priv, err := ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatalf("OpenSSL's private key: %v", err)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatalf("OpenSSL's public key: %v", err)
	}
	if ours, _ := PublicKeyPEM(priv); !bytes.Equal(ours, pubPEM) {
		t.Errorf("PublicKeyPEM = %q; OpenSSL wrote %q", ours, pubPEM)
	}
	body, sigFile, err := Sign(testManifest(), priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(body, sigFile, pub); err != nil {
		t.Fatal(err)
	}
	// OpenSSL verifies the raw signature over the manifest file.
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigFile)))
	bodyFile, sigRaw := filepath.Join(dir, FileName), filepath.Join(dir, "sig.bin")
	writeFile(t, bodyFile, body)
	writeFile(t, sigRaw, raw)
	if out := run("pkeyutl", "-verify", "-pubin", "-inkey", pubFile, "-rawin", "-in", bodyFile, "-sigfile", sigRaw); !bytes.Contains(out, []byte("Signature Verified Successfully")) {
		t.Errorf("openssl pkeyutl -verify: %s", out)
	}
	writeFile(t, bodyFile, append(body, ' '))
	if out, err := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pubFile, "-rawin", "-in", bodyFile, "-sigfile", sigRaw).CombinedOutput(); err == nil {
		t.Errorf("openssl verified a changed manifest: %s", out)
	}
	// And OpenSSL reads a key GenerateKey made.
	genPriv, genPub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyFile, genPriv)
	if out := run("pkey", "-in", keyFile, "-pubout"); !bytes.Equal(out, genPub) {
		t.Errorf("openssl derived %q from GenerateKey's private key; GenerateKey gave %q", out, genPub)
	}
}
