package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// minKeyRefresh is the least time between two fetches of the issuer's JWKS
// caused by tokens signed with an unknown key id.
const minKeyRefresh = 10 * time.Second

// maxJWKS bounds the size of a JWKS document.
const maxJWKS = 1 << 20

// asymmetricAlgs are the signature algorithms a token may use: the ones
// go-oidc supports, all public-key. Never "none" or HMAC (HS256 with the
// public key as secret is a classic forgery).
var asymmetricAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

// keySet is an oidc.KeySet over the issuer's JWKS that, unlike
// oidc.RemoteKeySet, does not fetch the JWKS again for every token with a
// bad signature: a token with a known key id is checked against that key
// only, and an unknown key id fetches the JWKS at most every minKeyRefresh
// (key rotation). Anonymous callers sending forged tokens therefore cannot
// make the API hammer the identity provider.
type keySet struct {
	url        string
	client     *http.Client
	algs       []jose.SignatureAlgorithm
	minRefresh time.Duration

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time
	// fetching is closed when the fetch under way ends (nil: none).
	fetching chan struct{}
	fetchErr error
}

func newKeySet(url string, client *http.Client, algs []string) *keySet {
	k := &keySet{url: url, client: client, minRefresh: minKeyRefresh}
	for _, a := range algs {
		k.algs = append(k.algs, jose.SignatureAlgorithm(a))
	}
	return k
}

// setMinRefresh changes the least time between fetches (tests).
func (k *keySet) setMinRefresh(d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.minRefresh = d
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed or disallowed signature: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("a token must have exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	k.mu.Lock()
	keys, fetched, minRefresh := k.keys, k.fetched, k.minRefresh
	k.mu.Unlock()
	if payload, known, err := verifyWith(jws, keys, kid); known || err == nil {
		return payload, err
	}
	// The key id is unknown (or there are no keys yet): the issuer may have
	// rotated its keys.
	if !fetched.IsZero() && time.Since(fetched) < minRefresh {
		return nil, fmt.Errorf("no key %q in the issuer's key set", kid)
	}
	if keys, err = k.refresh(ctx); err != nil {
		return nil, err
	}
	payload, _, err := verifyWith(jws, keys, kid)
	return payload, err
}

// verifyWith verifies jws with the keys matching kid (all keys when kid is
// empty); known reports whether any key matched.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, known bool, err error) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		known = true
		if payload, err := jws.Verify(&keys[i]); err == nil {
			return payload, true, nil
		}
	}
	if known {
		return nil, true, errors.New("the signature does not verify with the issuer's key")
	}
	return nil, false, fmt.Errorf("no key %q in the issuer's key set", kid)
}

// refresh fetches the JWKS once for all concurrent callers.
func (k *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	if k.fetching == nil {
		done := make(chan struct{})
		k.fetching = done
		go func() {
			keys, err := k.fetch()
			k.mu.Lock()
			if err == nil {
				k.keys = keys
			}
			k.fetched, k.fetchErr, k.fetching = time.Now(), err, nil
			k.mu.Unlock()
			close(done)
		}()
	}
	done := k.fetching
	k.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-done:
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, k.fetchErr
}

func (k *keySet) fetch() ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the issuer's keys from %s: %w", k.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the issuer's keys from %s: %s", k.url, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKS)).Decode(&set); err != nil {
		return nil, fmt.Errorf("reading the issuer's keys from %s: %v", k.url, err)
	}
	var keys []jose.JSONWebKey
	for _, key := range set.Keys {
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		if !key.Valid() || !key.IsPublic() {
			continue
		}
		keys = append(keys, key)
	}
	return keys, nil
}
