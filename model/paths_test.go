package model

import (
	"strings"
	"testing"
)

func TestCleanRelPathGood(t *testing.T) {
	cases := map[string]string{
		"a.csv":                "a.csv",
		"data/visits.csv":      "data/visits.csv",
		"a/./b.csv":            "a/b.csv",
		"a//b.csv":             "a/b.csv",
		"./a.csv":              "a.csv",
		"dir/":                 "dir",
		".hidden":              ".hidden",
		"...":                  "...",
		"a..b":                 "a..b",
		"..a/b..":              "..a/b..",
		"name with spaces.csv": "name with spaces.csv",
		"ünïcödé/файл.csv":     "ünïcödé/файл.csv",
		"C:/x":                 "C:/x",
	}
	for in, want := range cases {
		got, err := CleanRelPath(in)
		if err != nil || got != want {
			t.Errorf("CleanRelPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestCleanRelPathBad(t *testing.T) {
	cases := []struct {
		in   string
		want string // part of the explanation
	}{
		{"", "empty path"},
		{"/etc/passwd", `absolute path "/etc/passwd": give a path relative to the connection's root, e.g. etc/passwd`},
		{"//server/share", "absolute path"},
		{"..", "escapes its root with '..'"},
		{"../x", "escapes its root with '..'"},
		{"a/../b", "escapes its root"},
		{"a/b/..", "escapes its root"},
		{"a/../../etc/passwd", "escapes its root"},
		{`a\b.csv`, "backslash"},
		{`..\..\windows`, "backslash"},
		{"a\x00b", "control character"},
		{"a\tb", "control character"},
		{"a\nb", "control character"},
		{"a\rb", "control character"},
		{"a\x7fb", "control character"},
		{".", "names the root itself"},
		{"./", "names the root itself"},
		{"a/..", "escapes its root"},
	}
	for _, tc := range cases {
		got, err := CleanRelPath(tc.in)
		if err == nil {
			t.Errorf("CleanRelPath(%q) = %q, want refusal", tc.in, got)
			continue
		}
		if got != "" {
			t.Errorf("CleanRelPath(%q) returned %q with its error", tc.in, got)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CleanRelPath(%q) error %q does not say %q", tc.in, err, tc.want)
		}
	}
}

// Whatever CleanRelPath accepts stays inside its root when joined.
func TestCleanRelPathResultIsClean(t *testing.T) {
	for _, in := range []string{"a/./b", "x//y/", "./q", "deep/er/still/file.txt"} {
		got, err := CleanRelPath(in)
		if err != nil {
			t.Fatalf("CleanRelPath(%q): %v", in, err)
		}
		again, err := CleanRelPath(got)
		if err != nil || again != got {
			t.Errorf("CleanRelPath is not idempotent on %q: %q, %v", got, again, err)
		}
		if strings.HasPrefix(got, "/") || strings.HasPrefix(got, "../") || got == ".." || strings.Contains(got, "/../") {
			t.Errorf("CleanRelPath(%q) = %q escapes", in, got)
		}
	}
}
