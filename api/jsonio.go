package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/requests"
)

// apiFunc is a JSON handler: it writes its success itself and returns an
// error for anything else (an *apiError says the status).
type apiFunc func(w http.ResponseWriter, r *http.Request) error

// apiError is an answer other than success: its status and a message that
// says what was wrong and how to put it right, naming the field.
type apiError struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Message }

// HTTPStatus lets the tus handler answer an authorisation refusal with
// its status and message.
func (e *apiError) HTTPStatus() int { return e.Status }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{Status: status, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON of every refusal: {"error": {"status", "message"}}.
type errorBody struct {
	Error *apiError `json:"error"`
}

// api adapts an apiFunc: its error becomes the JSON error body.
func (s *server) api(h apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				ae = s.unexpected(r, err)
			}
			writeError(w, ae)
		}
	})
}

// unexpected logs an error no handler turned into an answer and answers 500
// or, when Temporal did not answer in time, 504.
func (s *server) unexpected(r *http.Request, err error) *apiError {
	s.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	if errors.Is(err, context.DeadlineExceeded) {
		return errorf(http.StatusGatewayTimeout, "Temporal or the Airlock worker did not answer in time: %v", err)
	}
	return errorf(http.StatusInternalServerError, "%v", err)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="airlock"`)
	}
	writeJSON(w, e.Status, errorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// serviceTimeout bounds one call to the requests service (a query, an
// Update, a listing), so that a stopped worker answers 504 rather than a
// request that never ends.
const serviceTimeout = time.Minute

func (s *server) serviceContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), serviceTimeout)
}

// signedIn returns the caller's identity, or 401 for an anonymous caller.
func signedIn(r *http.Request) (*auth.Identity, error) {
	id, ok := auth.FromContext(r.Context())
	if !ok {
		return nil, errorf(http.StatusUnauthorized, "not signed in: send an OIDC access token (Authorization: Bearer TOKEN), or sign in at /signin")
	}
	return id, nil
}

// notFound is the one answer for a request that does not exist and for one
// the caller may not see, so that the API never tells them apart.
func notFound(id string) *apiError {
	return errorf(http.StatusNotFound, "no request %q: check the id (GET %s/requests lists the requests you can see)", id, apiPrefix)
}

// readable fetches a request the caller may read; a missing request and
// one they may not read answer alike (notFound).
func (s *server) readable(r *http.Request, ident *auth.Identity, id string) (model.RequestStatus, error) {
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	st, err := s.requests.Status(ctx, id)
	if err != nil {
		return st, s.serviceError(id, err)
	}
	if !ident.CanRead(st) {
		return model.RequestStatus{}, notFound(id)
	}
	return st, nil
}

// serviceError turns the requests package's errors into answers.
func (s *server) serviceError(id string, err error) error {
	var refused *requests.RefusedError
	var field *requests.FieldError
	switch {
	case errors.Is(err, requests.ErrNotFound):
		return notFound(id)
	case errors.As(err, &refused):
		return errorf(http.StatusConflict, "%s", refused.Reason)
	case errors.As(err, &field):
		return errorf(http.StatusBadRequest, "%s", field.Error())
	}
	if fe, ok := model.AsFieldErrors(err); ok {
		return errorf(http.StatusBadRequest, "%s", joinFieldErrors(fe))
	}
	return err
}

func joinFieldErrors(fe model.FieldErrors) string {
	msgs := make([]string, len(fe))
	for i, e := range fe {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// decodeBody reads a JSON object into v, refusing unknown fields and
// anything after the object. Messages name the field and list the fields
// the endpoint takes. An empty body decodes as {} when emptyOK.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errorf(http.StatusUnsupportedMediaType, "Content-Type %q: send the body as JSON (Content-Type: application/json)", ct)
		}
	} else if !emptyOK || r.ContentLength > 0 {
		return errorf(http.StatusUnsupportedMediaType, "Content-Type: missing: send the body as JSON (Content-Type: application/json)")
	}
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	fields := jsonFields(v)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			if emptyOK {
				return nil
			}
			return errorf(http.StatusBadRequest, "body: empty: send a JSON object with the fields %s", fields)
		}
		return bodyError(err, fields)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "body: one JSON object expected, found more after it")
	}
	return nil
}

// bodyError explains a JSON decoding error in terms of the body's fields.
func bodyError(err error, fields string) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return errorf(http.StatusRequestEntityTooLarge, "body: larger than %d bytes: send a smaller document", tooBig.Limit)
	case errors.As(err, &syntax):
		return errorf(http.StatusBadRequest, "body: not valid JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "body: the JSON ends too early: send one complete object")
	case errors.As(err, &typ):
		if typ.Field == "" {
			return errorf(http.StatusBadRequest, "body: expected a JSON object with the fields %s, found %s", fields, typ.Value)
		}
		return errorf(http.StatusBadRequest, "%s: expected %s, found %s", typ.Field, jsonKind(typ.Type), typ.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		hint := ""
		if name == "by" {
			hint = "; who decides, cancels or confirms is always the signed-in caller, so leave by out"
		}
		return errorf(http.StatusBadRequest, "%s: unknown field (this endpoint takes %s)%s", name, fields, hint)
	}
	return errorf(http.StatusBadRequest, "body: %v", err)
}

// jsonKind names a Go type as JSON calls it.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// jsonFields lists the top-level JSON field names of the struct v points to.
func jsonFields(v any) string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}
