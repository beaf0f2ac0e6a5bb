package main

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/model"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages holds one template set per console page, each with the layout.
type pages struct {
	byName map[string]*template.Template
}

var pageFuncs = template.FuncMap{
	"bytes": model.FormatBytes,
	"when":  when,
	"stateClass": func(s any) string {
		return "state-" + strings.ReplaceAll(strings.ToLower(fmt.Sprint(s)), "_", "-")
	},
	"join":  strings.Join,
	"lower": strings.ToLower,
	"inc":   func(i int) int { return i + 1 },
}

// when renders a time for people, in UTC; "" for a zero or nil time.
func when(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return ""
		}
		t = *x
	}
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// loadPages parses every page template with the layout.
func loadPages() (*pages, error) {
	layout, err := fs.ReadFile(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		body, err := fs.ReadFile(templateFS, name)
		if err != nil {
			return nil, err
		}
		t, err := template.New("layout").Funcs(pageFuncs).Parse(string(layout))
		if err != nil {
			return nil, fmt.Errorf("templates/layout.html: %w", err)
		}
		if _, err := t.Parse(string(body)); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		p.byName[base] = t
	}
	return p, nil
}

// page is what every console page gets: who is signed in, what they may
// do (for the navigation), the CSRF token for forms and fetch requests,
// and the page's own data.
type page struct {
	Title      string
	User       *auth.Identity
	CSRF       string
	CanApprove bool
	CanUpload  bool
	// Refresh, when above 0, reloads the page after that many seconds (a
	// request whose data is moving).
	Refresh int
	// Error is shown at the top of the page (id="error").
	Error string
	Data  any
}

// render writes a page; a template error becomes a plain 500.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if p.User == nil {
		p.User, _ = auth.FromContext(r.Context())
	}
	if p.User != nil {
		p.CSRF = s.auth.CSRFToken(r)
		p.CanApprove = len(p.User.ApproveRoles()) > 0
		p.CanUpload = canUploadAny(p.User)
	}
	t, ok := s.pages.byName[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		s.logger.Error("rendering a page", "page", name, "error", err)
		http.Error(w, "internal error rendering the page: the server logged the details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage shows a refusal or failure as a page.
func (s *server) errorPage(w http.ResponseWriter, r *http.Request, err error) {
	ae, ok := err.(*apiError)
	if !ok {
		ae = s.unexpected(r, err)
	}
	title := http.StatusText(ae.Status)
	s.render(w, r, ae.Status, "error", page{Title: title, Error: ae.Message, Data: map[string]any{"Status": ae.Status}})
}

// canUploadAny reports whether the identity may upload to some project.
func canUploadAny(id *auth.Identity) bool {
	return len(uploadProjects(id)) > 0
}

// uploadProjects lists the projects named by the identity's upload:<project>
// capabilities ("*" for upload:*).
func uploadProjects(id *auth.Identity) []string {
	var out []string
	for _, c := range id.Caps.List() {
		if p, ok := strings.CutPrefix(c, "upload:"); ok {
			out = append(out, p)
		}
	}
	return out
}
