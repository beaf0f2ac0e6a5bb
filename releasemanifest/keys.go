package releasemanifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
)

// PEM block types of the keys, as OpenSSL writes them.
const (
	privateKeyBlock = "PRIVATE KEY"
	publicKeyBlock  = "PUBLIC KEY"
)

// KeyIDPrefix starts every key id.
const KeyIDPrefix = "ed25519:"

// KeyID names a public key: "ed25519:" and the hex SHA-256 of its raw 32
// bytes. A manifest records the id of the key that signed it, so a verifier
// holding the wrong key is told which one to fetch.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return KeyIDPrefix + hex.EncodeToString(sum[:])
}

// GenerateKey makes a new signing key: the private key as PKCS#8 PEM (what
// `openssl genpkey -algorithm ed25519` writes) and its public key as PKIX
// PEM (what `openssl pkey -pubout` writes).
func GenerateKey() (privPEM, pubPEM []byte, err error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating an Ed25519 key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the Ed25519 private key: %w", err)
	}
	pubPEM, err = PublicKeyPEM(priv)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: privateKeyBlock, Bytes: der}), pubPEM, nil
}

// PublicKeyPEM returns the public half of priv as PKIX PEM, for verifiers.
func PublicKeyPEM(priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("not an Ed25519 private key: it has %d bytes, not %d", len(priv), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return nil, fmt.Errorf("encoding the Ed25519 public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicKeyBlock, Bytes: der}), nil
}

// ParsePrivateKey reads an unencrypted Ed25519 private key in PKCS#8 PEM,
// as `openssl genpkey -algorithm ed25519` writes it. Errors say what the
// data is instead and never quote it.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, err := onePEMBlock(data, "private key", "openssl genpkey -algorithm ed25519 -out key.pem")
	if err != nil {
		return nil, err
	}
	switch block.Type {
	case privateKeyBlock:
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("the private key is encrypted: store it unencrypted (the secret store protects it), as `openssl genpkey -algorithm ed25519` writes it without -aes256")
	case publicKeyBlock:
		return nil, fmt.Errorf("this is a public key (PEM %q), not the private key that signs: give the output of `openssl genpkey -algorithm ed25519`", block.Type)
	default:
		return nil, fmt.Errorf("PEM block %q is not a PKCS#8 private key (expected %q, as `openssl genpkey -algorithm ed25519` writes)", block.Type, privateKeyBlock)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the PKCS#8 private key does not parse: %v", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is a %s key, not Ed25519: make one with `openssl genpkey -algorithm ed25519`", keyKind(key))
	}
	return priv, nil
}

// ParsePublicKey reads an Ed25519 public key in PKIX PEM, as `openssl pkey
// -pubout` writes it.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	block, err := onePEMBlock(data, "public key", "openssl pkey -in key.pem -pubout -out key.pub.pem")
	if err != nil {
		return nil, err
	}
	switch block.Type {
	case publicKeyBlock:
	case privateKeyBlock, "ENCRYPTED PRIVATE KEY":
		// Never echo a private key's bytes; just say what it is.
		return nil, fmt.Errorf("this is a private key (PEM %q): verifiers need only the public key; derive it with `openssl pkey -in key.pem -pubout`, and keep the private key secret", block.Type)
	default:
		return nil, fmt.Errorf("PEM block %q is not a public key (expected %q, as `openssl pkey -pubout` writes)", block.Type, publicKeyBlock)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the PKIX public key does not parse: %v", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the public key is a %s key, not Ed25519: release manifests are signed with Ed25519", keyKind(key))
	}
	return pub, nil
}

// onePEMBlock decodes the first PEM block of data.
func onePEMBlock(data []byte, what, howToMake string) (*pem.Block, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM-encoded %s found (a block starting with -----BEGIN): make one with `%s`", what, howToMake)
	}
	return block, nil
}

// keyKind names the algorithm of a parsed key: RSA, ECDSA, ECDH.
func keyKind(key any) string {
	t := strings.TrimPrefix(fmt.Sprintf("%T", key), "*")
	if i := strings.IndexByte(t, '.'); i >= 0 {
		t = t[:i]
	}
	return strings.ToUpper(t)
}
