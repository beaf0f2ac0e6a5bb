package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Cookie names. With an https PublicURL they carry the __Host- prefix, which
// browsers only accept from a secure origin, for the whole host (Path=/, no
// Domain).
const (
	sessionCookie = "airlock_session"
	flowCookie    = "airlock_flow_"
	// A session that does not fit in one cookie (many roles or groups) is
	// split over numbered cookies: airlock_session, airlock_session-1, ...
	cookieChunk     = 3800
	maxCookieChunks = 5
	flowTTL         = 10 * time.Minute
)

// CSRF token carriers for console form POSTs.
const (
	// CSRFField is the form field holding CSRFToken.
	CSRFField = "csrf_token"
	// CSRFHeader is the header holding CSRFToken (for fetch requests).
	CSRFHeader = "X-CSRF-Token"
)

// sealer encrypts and authenticates cookie values with AES-256-GCM under a
// key derived from the session secret; the purpose (cookie kind and mode)
// is the additional data, so one kind of cookie cannot stand in for another.
type sealer struct {
	aead    cipher.AEAD
	csrfKey []byte
}

func newSealer(secret []byte) (*sealer, error) {
	encKey, err := hkdf.Key(sha256.New, secret, nil, "airlock auth cookie encryption v1", 32)
	if err != nil {
		return nil, err
	}
	csrfKey, err := hkdf.Key(sha256.New, secret, nil, "airlock auth csrf v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, csrfKey: csrfKey}, nil
}

func (s *sealer) seal(purpose string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	out := s.aead.Seal(nonce, nonce, plain, []byte(purpose))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

var errBadCookie = errors.New("cookie does not decrypt with this server's session key")

func (s *sealer) open(purpose, text string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return errBadCookie
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(purpose))
	if err != nil {
		return errBadCookie
	}
	return json.Unmarshal(plain, v)
}

// csrfToken binds a token to a session id.
func (s *sealer) csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("csrf:" + sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// session is what a session cookie holds. Capabilities are not stored:
// they are worked out from the roles and groups on every request, so a
// change of grants applies to existing sessions.
type session struct {
	ID       string   `json:"sid"`
	Subject  string   `json:"sub"`
	Username string   `json:"usr"`
	Name     string   `json:"name,omitempty"`
	Email    string   `json:"email,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	Expires  int64    `json:"exp"`
}

// flow is what the short-lived sign-in cookie holds between /auth/login
// and /auth/callback.
type flow struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	Next     string `json:"next"`
	Expires  int64  `json:"exp"`
}

// cookies sets and reads Airlock's cookies.
type cookies struct {
	sealer *sealer
	secure bool
	mode   string
	ttl    time.Duration
}

func (c *cookies) name(base string) string {
	if c.secure {
		return "__Host-" + base
	}
	return base
}

func (c *cookies) sessionPurpose() string { return "airlock-session/v1/" + c.mode }

func (c *cookies) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	}
}

// setSession writes s (split over several cookies when large) and removes
// chunks left from a larger earlier session.
func (c *cookies) setSession(w http.ResponseWriter, r *http.Request, s session) error {
	value, err := c.sealer.seal(c.sessionPurpose(), s)
	if err != nil {
		return err
	}
	n := (len(value) + cookieChunk - 1) / cookieChunk
	if n > maxCookieChunks {
		return fmt.Errorf("the session of %s is too large for browser cookies (%d roles, %d groups): limit the roles and groups the identity provider puts in Airlock's tokens (client scope mappers)", s.Username, len(s.Roles), len(s.Groups))
	}
	maxAge := int(time.Until(time.Unix(s.Expires, 0)).Seconds())
	base := c.name(sessionCookie)
	for i := 0; i < n; i++ {
		end := min((i+1)*cookieChunk, len(value))
		http.SetCookie(w, c.cookie(chunkName(base, i), value[i*cookieChunk:end], maxAge))
	}
	for i := n; i < maxCookieChunks; i++ {
		if _, err := r.Cookie(chunkName(base, i)); err == nil {
			http.SetCookie(w, c.cookie(chunkName(base, i), "", -1))
		}
	}
	return nil
}

// clearSession removes every session cookie the request carries.
func (c *cookies) clearSession(w http.ResponseWriter, r *http.Request) {
	base := c.name(sessionCookie)
	for i := 0; i < maxCookieChunks; i++ {
		if _, err := r.Cookie(chunkName(base, i)); err == nil {
			http.SetCookie(w, c.cookie(chunkName(base, i), "", -1))
		}
	}
}

// readSession returns the request's valid, unexpired session.
func (c *cookies) readSession(r *http.Request) (session, bool) {
	base := c.name(sessionCookie)
	var value strings.Builder
	for i := 0; i < maxCookieChunks; i++ {
		ck, err := r.Cookie(chunkName(base, i))
		if err != nil {
			break
		}
		value.WriteString(ck.Value)
	}
	if value.Len() == 0 {
		return session{}, false
	}
	var s session
	if err := c.sealer.open(c.sessionPurpose(), value.String(), &s); err != nil {
		return session{}, false
	}
	if s.ID == "" || s.Username == "" || time.Now().Unix() >= s.Expires {
		return session{}, false
	}
	return s, true
}

func chunkName(base string, i int) string {
	if i == 0 {
		return base
	}
	return base + "-" + strconv.Itoa(i)
}

// flowName is the sign-in cookie of one sign-in attempt: several tabs may
// sign in at once without spoiling each other's state.
func (c *cookies) flowName(state string) string {
	if len(state) > 16 {
		state = state[:16]
	}
	return c.name(flowCookie + state)
}

func (c *cookies) setFlow(w http.ResponseWriter, f flow) error {
	value, err := c.sealer.seal("airlock-flow/v1", f)
	if err != nil {
		return err
	}
	http.SetCookie(w, c.cookie(c.flowName(f.State), value, int(flowTTL.Seconds())))
	return nil
}

// takeFlow reads and clears the sign-in cookie for state. It fails unless
// the cookie exists, decrypts, is unexpired and holds exactly state.
func (c *cookies) takeFlow(w http.ResponseWriter, r *http.Request, state string) (flow, error) {
	if state == "" {
		return flow{}, errors.New("the identity provider sent no state")
	}
	name := c.flowName(state)
	ck, err := r.Cookie(name)
	if err != nil {
		return flow{}, errors.New("no sign-in in progress for this state (the sign-in cookie is missing: it expires after 10 minutes, and cookies must be enabled)")
	}
	http.SetCookie(w, c.cookie(name, "", -1))
	var f flow
	if err := c.sealer.open("airlock-flow/v1", ck.Value, &f); err != nil {
		return flow{}, errors.New("the sign-in cookie is not valid")
	}
	if subtle.ConstantTimeCompare([]byte(f.State), []byte(state)) != 1 {
		return flow{}, errors.New("the state sent back by the identity provider does not match this browser's sign-in")
	}
	if time.Now().Unix() >= f.Expires {
		return flow{}, errors.New("the sign-in took longer than 10 minutes")
	}
	return f, nil
}

// randomString returns n random bytes, base64url encoded.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
