package uploads

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	tus "github.com/tus/tusd/v2/pkg/handler"
)

// HTTPError is a refusal with the HTTP status it answers with. Authorize
// returns one (or any error with an HTTPStatus() int method, or a tusd
// handler.Error) to refuse a tus request; Expected returns one (409) when a
// file is unfinished.
type HTTPError struct {
	Status  int
	Message string
}

func (e *HTTPError) Error() string { return e.Message }

// HTTPStatus is the status the refusal answers with.
func (e *HTTPError) HTTPStatus() int { return e.Status }

// Refuse returns an *HTTPError with status and a formatted message.
func Refuse(status int, format string, args ...any) error {
	return &HTTPError{Status: status, Message: fmt.Sprintf(format, args...)}
}

// statusOf returns the status and message err carries, and false for an
// error that carries none (a failure rather than a refusal).
func statusOf(err error) (int, string, bool) {
	// The refusal's own message: what wraps it is context for logs.
	var hs interface {
		error
		HTTPStatus() int
	}
	if errors.As(err, &hs) && hs.HTTPStatus() >= 400 {
		return hs.HTTPStatus(), hs.Error(), true
	}
	var te tus.Error
	if errors.As(err, &te) && te.HTTPResponse.StatusCode >= 400 {
		return te.HTTPResponse.StatusCode, te.Message, true
	}
	return 0, "", false
}

// errorCodes are the tus error codes of the statuses Airlock refuses with;
// tusd counts errors by code.
var errorCodes = map[int]string{
	http.StatusBadRequest:            "ERR_BAD_REQUEST",
	http.StatusUnauthorized:          "ERR_UNAUTHORIZED",
	http.StatusForbidden:             "ERR_FORBIDDEN",
	http.StatusNotFound:              "ERR_UPLOAD_NOT_FOUND",
	http.StatusConflict:              "ERR_CONFLICT",
	http.StatusGone:                  "ERR_UPLOAD_GONE",
	http.StatusRequestEntityTooLarge: "ERR_LIMIT_EXCEEDED",
}

// errorBody is the JSON body of a refusal, the same shape as the API's
// errors: {"error": {"status": 403, "message": "..."}}.
func errorBody(status int, msg string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"status": status, "message": msg}})
	return string(b) + "\n"
}

// tusError is a refusal as tusd sends it: status, a JSON body, and an
// error code for its metrics.
func tusError(status int, format string, args ...any) tus.Error {
	msg := fmt.Sprintf(format, args...)
	code := errorCodes[status]
	if code == "" {
		code = "ERR_INTERNAL_SERVER_ERROR"
		if status < 500 {
			code = "ERR_REFUSED"
		}
	}
	return tus.Error{
		ErrorCode: code,
		Message:   msg,
		HTTPResponse: tus.HTTPResponse{
			StatusCode: status,
			Body:       errorBody(status, msg),
			Header:     tus.HTTPHeader{"Content-Type": "application/json"},
		},
	}
}

// writeRefusal answers a request that never reached tusd.
func writeRefusal(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h := w.Header()
	h.Set("Tus-Resumable", "1.0.0")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	body := errorBody(status, msg)
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
