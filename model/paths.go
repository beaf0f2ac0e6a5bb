package model

import (
	"fmt"
	"path"
	"strings"
)

// CleanRelPath checks that p is a relative, slash-separated path that stays
// inside its root, and returns it cleaned. Absolute paths, ".." segments,
// backslashes and control characters are refused: a path that could escape a
// staging or workspace folder never reaches a store.
func CleanRelPath(p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("empty path: name a file relative to the connection's root, e.g. data/visits.csv")
	case strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("absolute path %q: give a path relative to the connection's root, e.g. %s", p, strings.TrimLeft(p, "/"))
	case strings.Contains(p, `\`):
		return "", fmt.Errorf("path %q contains a backslash: use '/' between folders", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("path %q contains a control character: rename the file", p)
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", fmt.Errorf("path %q escapes its root with '..': give a path inside the connection's root", p)
		}
	}
	c := path.Clean(p)
	if c == "." {
		return "", fmt.Errorf("path %q names the root itself: name a file inside it", p)
	}
	return c, nil
}
