package fakedatabricks

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// link is a presigned URL to one result chunk.
type link struct {
	statement string
	chunk     int
	expires   time.Time
}

// serveStorage answers result-link requests as cloud storage answers a
// presigned GET: no Authorization header, the link's http_headers, before
// its expiration.
func (s *Server) serveStorage(w http.ResponseWriter, r *http.Request) {
	fetch := LinkFetch{Time: time.Now(), Chunk: -1, HadAuthorization: r.Header.Get("Authorization") != ""}
	refuse := func(status int, code, msg string) {
		fetch.Status, fetch.Refused = status, msg
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message></Error>\n", code, msg)
	}
	defer func() {
		s.mu.Lock()
		s.fetches = append(s.fetches, fetch)
		s.mu.Unlock()
	}()

	if f, ok := s.takeFault(&s.linkFaults); ok {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		code := "SlowDown"
		if f.status == http.StatusServiceUnavailable {
			code = "ServiceUnavailable"
		}
		refuse(f.status, code, fmt.Sprintf("injected %d %s", f.status, http.StatusText(f.status)))
		return
	}
	if r.Method != http.MethodGet {
		refuse(http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		return
	}
	if fetch.HadAuthorization {
		refuse(http.StatusBadRequest, "InvalidArgument", "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
		return
	}

	s.mu.Lock()
	l, ok := s.links[r.URL.Query().Get("X-Amz-Signature")]
	var st *statement
	if ok {
		st = s.statements[l.statement]
		fetch.Statement, fetch.Chunk = l.statement, l.chunk
	}
	if !ok || r.URL.Path != "/results/"+l.statement+"/chunk-"+strconv.Itoa(l.chunk)+".arrow" {
		s.mu.Unlock()
		refuse(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	first := st.fetched[l.chunk] == 0
	st.fetched[l.chunk]++
	s.mu.Unlock()

	if time.Now().After(l.expires) || first && slices.Contains(s.opts.ExpireFirstFetch, l.chunk) {
		refuse(http.StatusForbidden, "AccessDenied", "Request has expired")
		return
	}
	if got := r.Header.Get(sseHeader); got != st.sseKey {
		refuse(http.StatusBadRequest, "InvalidRequest", "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.")
		return
	}
	c := st.chunks[l.chunk]
	data, err := st.table.encodeChunk(c.RowOffset, c.RowOffset+c.RowCount, s.opts.BatchRows)
	if err != nil {
		refuse(http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	fetch.Status = http.StatusOK
	w.Header().Set("Content-Type", "application/vnd.apache.arrow.stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}
