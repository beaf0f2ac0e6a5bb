package auth

import (
	"bytes"
	"html/template"
	"net/http"
)

// The sign-in pages are deliberately plain: the console (api/) has the
// real pages; these only appear around signing in.

const pageHead = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Airlock</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}
button{font:inherit;padding:.4rem .9rem;margin:.2rem 0;cursor:pointer}.roles{color:#555;font-size:.9em}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:.6rem .9rem}</style></head><body>
`

var errorTemplate = template.Must(template.New("error").Parse(pageHead + `<h1>{{.Title}}</h1>
<p id="message">{{.Message}}</p>
<p><a href="/auth/login">Sign in</a> · <a href="/">Home</a></p>
</body></html>`))

var devTemplate = template.Must(template.New("dev").Parse(pageHead + `<h1>Sign in (development)</h1>
<p class="warn">Development sign-in: no password, users from the config's <code>directory.users</code>. Never use this mode for real data.</p>
<form method="post" action="/auth/dev">
<input type="hidden" name="next" value="{{.Next}}">
<ul>
{{range .Users}}<li><button type="submit" name="user" value="{{.Name}}" id="user-{{.Name}}">{{.Name}}</button>
<span class="roles">{{range $i, $r := .Roles}}{{if $i}}, {{end}}{{$r}}{{else}}no roles{{end}}</span></li>
{{end}}</ul>
</form>
</body></html>`))

func errorPage(w http.ResponseWriter, status int, title, message string) {
	render(w, status, errorTemplate, map[string]any{"Title": title, "Message": message})
}

func render(w http.ResponseWriter, status int, t *template.Template, data map[string]any) {
	if _, ok := data["Title"]; !ok {
		data["Title"] = "Sign in"
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
