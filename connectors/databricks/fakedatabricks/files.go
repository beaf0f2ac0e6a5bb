package fakedatabricks

import (
	"bytes"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
)

// maxPageSize is the Files API's largest directory listing page.
const maxPageSize = 1000

// pageState is what a directory listing page_token stands for.
type pageState struct {
	dir      string
	pageSize string
	offset   int
}

type dirEntryJSON struct {
	Path         string `json:"path"`
	IsDirectory  bool   `json:"is_directory"`
	FileSize     *int64 `json:"file_size,omitempty"`
	LastModified *int64 `json:"last_modified,omitempty"`
	Name         string `json:"name"`
}

type listJSON struct {
	Contents      []dirEntryJSON `json:"contents,omitempty"`
	NextPageToken string         `json:"next_page_token,omitempty"`
}

// checkVolumePath checks that p is an absolute path inside a volume:
// /Volumes/<catalog>/<schema>/<volume>, and for a file at least one more
// segment.
func checkVolumePath(p string, file bool) error {
	if !strings.HasPrefix(p, "/Volumes/") {
		return fmt.Errorf("path %q is not in a Unity Catalog volume: it must start with /Volumes/<catalog>/<schema>/<volume>/", p)
	}
	segs := strings.Split(strings.TrimPrefix(strings.TrimSuffix(p, "/"), "/"), "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return fmt.Errorf("path %q has an empty, '.' or '..' segment", p)
		}
	}
	min := 4
	if file {
		min = 5
	}
	if len(segs) < min {
		return fmt.Errorf("path %q is too short: volume paths are /Volumes/<catalog>/<schema>/<volume>/<path>", p)
	}
	return nil
}

func (s *Server) serveFiles(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/api/2.0/fs/files")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	default:
		apiError(w, http.StatusNotImplemented, "NOT_IMPLEMENTED", "the fake workspace serves only GET and HEAD on /api/2.0/fs/files")
		return
	}
	if err := checkVolumePath(p, true); err != nil {
		apiError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", err.Error())
		return
	}
	s.mu.Lock()
	f, ok := s.files[p]
	s.mu.Unlock()
	if !ok {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "The file being accessed is not found.")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	// ServeContent answers Range (206 with Content-Range, 416),
	// If-Unmodified-Since (412), Last-Modified and HEAD.
	http.ServeContent(w, r, "", f.modTime, bytes.NewReader(f.data))
}

// isDir reports whether p is a directory: a volume root, a declared
// directory or a folder some file sits in. The caller holds s.mu.
func (s *Server) isDir(p string) bool {
	if s.dirs[p] {
		return true
	}
	for fp := range s.files {
		if strings.HasPrefix(fp, p+"/") {
			return true
		}
	}
	for d := range s.dirs {
		if strings.HasPrefix(d, p+"/") {
			return true
		}
	}
	return false
}

func (s *Server) serveDirectories(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/2.0/fs/directories"), "/")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	default:
		apiError(w, http.StatusNotImplemented, "NOT_IMPLEMENTED", "the fake workspace serves only GET and HEAD on /api/2.0/fs/directories")
		return
	}
	if err := checkVolumePath(p, false); err != nil {
		apiError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, isFile := s.files[p]; isFile {
		apiError(w, http.StatusBadRequest, "NOT_A_DIRECTORY", fmt.Sprintf("The path %s is a file, not a directory.", p))
		return
	}
	if !s.isDir(p) {
		apiError(w, http.StatusNotFound, "NOT_FOUND", "The directory being accessed is not found.")
		return
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}

	q := r.URL.Query()
	size := maxPageSize
	rawSize := q.Get("page_size")
	if rawSize != "" {
		n, err := strconv.ParseInt(rawSize, 10, 64)
		if err != nil || n < 0 {
			apiError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", fmt.Sprintf("page_size %q must be a non-negative integer", rawSize))
			return
		}
		if n > 0 && n < maxPageSize {
			size = int(n)
		}
	}
	size = min(size, s.opts.ListPageSize)
	offset := 0
	if tok := q.Get("page_token"); tok != "" {
		ps, ok := s.pages[tok]
		if !ok || ps.dir != p || ps.pageSize != rawSize {
			apiError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "page_token is invalid or was issued for a request with other parameters")
			return
		}
		offset = ps.offset
	}

	children := map[string]dirEntryJSON{}
	for fp, f := range s.files {
		rest, ok := strings.CutPrefix(fp, p+"/")
		if !ok {
			continue
		}
		name, _, deeper := strings.Cut(rest, "/")
		if deeper {
			children[name] = dirEntryJSON{Path: path.Join(p, name), IsDirectory: true, Name: name}
			continue
		}
		fsize, mod := int64(len(f.data)), f.modTime.UnixMilli()
		children[name] = dirEntryJSON{Path: fp, FileSize: &fsize, LastModified: &mod, Name: name}
	}
	for d := range s.dirs {
		if rest, ok := strings.CutPrefix(d, p+"/"); ok {
			name, _, _ := strings.Cut(rest, "/")
			children[name] = dirEntryJSON{Path: path.Join(p, name), IsDirectory: true, Name: name}
		}
	}
	names := make([]string, 0, len(children))
	for n := range children {
		names = append(names, n)
	}
	sort.Strings(names)
	var out listJSON
	offset = min(offset, len(names))
	end := min(offset+size, len(names))
	for _, n := range names[offset:end] {
		out.Contents = append(out.Contents, children[n])
	}
	if end < len(names) {
		out.NextPageToken = randomID(12)
		s.pages[out.NextPageToken] = pageState{dir: p, pageSize: rawSize, offset: end}
	}
	writeJSON(w, http.StatusOK, out)
}
