package databricks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go/apierr"

	"github.com/airlockhq/airlock/connectors"
)

const (
	// maxAttempts bounds the tries of one request answered 429 or 503 (or,
	// for downloads, failing on the network).
	maxAttempts = 5
	// maxRetryAfter is the longest Retry-After the connector waits out; a
	// longer one fails the attempt (retryable), leaving the wait to the
	// activity's retry policy.
	maxRetryAfter = time.Minute
)

// retryable reports whether an HTTP status asks the client to come back
// later: 429 Too Many Requests and 503 Service Unavailable.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// backoff is the wait before retry attempt+1 when no Retry-After says.
func backoff(attempt int) time.Duration {
	return min(500*time.Millisecond<<(attempt-1), 8*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryHint carries the Retry-After of a throttled SDK call from the
// transport, which sees the response headers, to callAPI, which waits.
type retryHint struct {
	mu    sync.Mutex
	after time.Duration
	ok    bool
}

type retryHintKey struct{}

// hintTransport records the Retry-After header of 429 and 503 answers in
// the request context's retryHint.
type hintTransport struct{ base http.RoundTripper }

func (t hintTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil && retryable(resp.StatusCode) {
		if h, ok := r.Context().Value(retryHintKey{}).(*retryHint); ok {
			if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				h.mu.Lock()
				h.after, h.ok = d, true
				h.mu.Unlock()
			}
		}
	}
	return resp, err
}

// callAPI runs an SDK call, retrying it when the workspace answers 429 or
// 503: after Retry-After when the answer gives one, else after a backoff,
// at most maxAttempts times.
func callAPI(ctx context.Context, fn func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		hint := &retryHint{}
		err := fn(context.WithValue(ctx, retryHintKey{}, hint))
		var ae *apierr.APIError
		if err == nil || !errors.As(err, &ae) || !retryable(ae.StatusCode) {
			return err
		}
		if attempt >= maxAttempts {
			return fmt.Errorf("%w (HTTP %d on %d attempts)", err, ae.StatusCode, attempt)
		}
		hint.mu.Lock()
		wait, ok := hint.after, hint.ok
		hint.mu.Unlock()
		if !ok {
			wait = backoff(attempt)
		}
		if wait > maxRetryAfter {
			return fmt.Errorf("%w (HTTP %d asking to retry after %s, longer than the connector waits)", err, ae.StatusCode, wait)
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// doHTTP sends the GET request newReq builds, retrying answers 429 and 503
// (after Retry-After, or a backoff) and network errors, at most maxAttempts
// times. Any other answer is returned; the caller closes its body. Errors
// never include the request URL, which may be a presigned link.
func doHTTP(ctx context.Context, c *http.Client, newReq func(context.Context) (*http.Request, error)) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		req, err := newReq(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			if attempt >= maxAttempts {
				return nil, fmt.Errorf("%w (on %d attempts)", err, attempt)
			}
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return nil, err
			}
			continue
		}
		if !retryable(resp.StatusCode) || attempt >= maxAttempts {
			return resp, nil
		}
		wait, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now())
		if !ok {
			wait = backoff(attempt)
		}
		if wait > maxRetryAfter {
			return resp, nil
		}
		resp.Body.Close()
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// apiFailure explains a failed workspace API call: credentials refused and
// requests the workspace rejects are bad input; throttling, outages and
// network errors are retryable.
func (s *Source) apiFailure(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	detail := strings.TrimSpace(err.Error())
	var ae *apierr.APIError
	if errors.As(err, &ae) {
		switch {
		case ae.StatusCode == http.StatusUnauthorized:
			return connectors.BadInput("connection %q: %s: Databricks at %s refused the credentials, %s: %s; check that the secrets hold current credentials for this workspace", s.conn.Name, what, s.host, s.auth, detail)
		case ae.StatusCode == http.StatusForbidden:
			return connectors.BadInput("connection %q: %s: Databricks at %s denied access to the identity signed in with %s: %s; grant it the permission", s.conn.Name, what, s.host, s.auth, detail)
		case ae.StatusCode == http.StatusBadRequest || ae.StatusCode == http.StatusNotFound:
			return connectors.BadInput("connection %q: %s: Databricks at %s rejected the request (HTTP %d %s): %s", s.conn.Name, what, s.host, ae.StatusCode, ae.ErrorCode, detail)
		default:
			return fmt.Errorf("connection %q: %s: Databricks at %s answered HTTP %d %s: %w", s.conn.Name, what, s.host, ae.StatusCode, ae.ErrorCode, err)
		}
	}
	// Failures to obtain an OAuth token are not APIErrors; the SDK makes
	// them match the API error of the token endpoint's status.
	if errors.Is(err, apierr.ErrUnauthenticated) || errors.Is(err, apierr.ErrPermissionDenied) || errors.Is(err, apierr.ErrBadRequest) {
		return connectors.BadInput("connection %q: %s: signing in to Databricks at %s with %s failed: %s; check that the secrets hold the service principal's current client id and OAuth secret", s.conn.Name, what, s.host, s.auth, detail)
	}
	return fmt.Errorf("connection %q: %s: %w", s.conn.Name, what, err)
}
