// Package secrets resolves the secret references in connection documents
// (credentials.userKey, credentials.passwordKey, ...) to their values, inside
// the worker's activities. Documents, workflow histories, search attributes,
// logs and error messages carry only the key names; the values live in the
// worker's environment or in a directory of files, as Kubernetes mounts a
// Secret. A Provider also remembers every value it handed out, so that error
// messages can be scrubbed of them before they leave the worker.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// EnvPrefix starts the environment variable that holds a secret: the key
// DatabricksPassword is read from AIRLOCK_SECRET_DATABRICKSPASSWORD.
const EnvPrefix = "AIRLOCK_SECRET_"

// keyRE is what a secret key may look like: a Kubernetes Secret's data key.
var keyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// Redacted replaces a secret value in scrubbed text.
const Redacted = "[redacted]"

// MissingError says a secret key has no value anywhere the provider looks.
// It names the key and where it was looked for, never a value.
type MissingError struct {
	Key   string
	Where []string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("secret %q not found: the worker looked in %s; provide it there (the data source names the key, never the value)", e.Key, strings.Join(e.Where, " and "))
}

// IsMissing reports whether err is (or wraps) a MissingError.
func IsMissing(err error) bool {
	var m *MissingError
	return errors.As(err, &m)
}

// Provider resolves secret keys. Its zero value looks only in the environment.
type Provider struct {
	// Dir holds one file per key (a mounted Kubernetes Secret); "" for none.
	// It is looked in before the environment.
	Dir string
	// NoEnv turns the environment off as a source of secrets.
	NoEnv bool
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string

	mu   sync.Mutex
	seen map[string]struct{}
}

// EnvVar is the environment variable that holds key: EnvPrefix then the key
// in upper case, with every character other than a letter or digit as '_'.
func EnvVar(key string) string {
	var b strings.Builder
	b.WriteString(EnvPrefix)
	for _, r := range strings.ToUpper(key) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Lookup returns the value of key. A key that is malformed or found nowhere
// is an error naming the key; a file that exists but cannot be read is an
// error too (never silently another source's value).
func (p *Provider) Lookup(ctx context.Context, key string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if !keyRE.MatchString(key) || key == "." || key == ".." {
		return "", fmt.Errorf("secret key %q is not a valid key name: use letters, digits, '-', '_' and '.'", key)
	}
	var where []string
	if p.Dir != "" {
		file := filepath.Join(p.Dir, key)
		where = append(where, "the file "+file)
		data, err := os.ReadFile(file)
		switch {
		case err == nil:
			// Mounted secrets and files written by editors often end in a newline
			// that is not part of the value.
			v := strings.TrimRight(string(data), "\r\n")
			if v == "" {
				return "", fmt.Errorf("secret %q: the file %s is empty; put the value in it", key, file)
			}
			p.remember(v)
			return v, nil
		case !errors.Is(err, os.ErrNotExist):
			return "", fmt.Errorf("secret %q: reading %s: %w", key, file, errors.Unwrap(err))
		}
	}
	if !p.NoEnv {
		name := EnvVar(key)
		where = append(where, "the environment variable "+name)
		get := p.Getenv
		if get == nil {
			get = os.Getenv
		}
		if v := get(name); v != "" {
			p.remember(v)
			return v, nil
		}
	}
	if len(where) == 0 {
		where = []string{"nowhere (the worker's secrets config turns every source off)"}
	}
	return "", &MissingError{Key: key, Where: where}
}

// remember records a value handed out, for Scrub. Values shorter than four
// characters are not scrubbed: replacing them would mangle ordinary text.
func (p *Provider) remember(v string) {
	if len(v) < 4 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[string]struct{}{}
	}
	p.seen[v] = struct{}{}
}

// Scrub replaces every secret value this provider has handed out in s.
func (p *Provider) Scrub(s string) string {
	if p == nil {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for v := range p.seen {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Redacted)
		}
	}
	return s
}

// Resolve looks up every key a connection's credentials name and returns the
// values by field name (userKey, passwordKey, ...). The first missing key is
// an error that names the field and the key.
func (p *Provider) Resolve(ctx context.Context, connection string, keys map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	for _, field := range slices.Sorted(maps.Keys(keys)) {
		v, err := p.Lookup(ctx, keys[field])
		if err != nil {
			return nil, fmt.Errorf("connection %q: credentials.%s: %w", connection, field, err)
		}
		out[field] = v
	}
	return out, nil
}
