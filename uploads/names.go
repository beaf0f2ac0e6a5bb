package uploads

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/airlockhq/airlock/model"
)

// Limits on an uploaded file's name, in bytes.
const (
	// MaxNameSegment is the longest folder or file name (most file systems'
	// limit).
	MaxNameSegment = 255
	// MaxNameLength is the longest path, folders included.
	MaxNameLength = 1024
)

// crateFile is the RO-Crate metadata file every request's staging area holds
// at its top (activities.CrateFile); an upload may not take its name.
const crateFile = "ro-crate-metadata.json"

// SanitizeName checks the name an uploader gave a file (tus metadata
// filename, or relativePath for a file in a folder) and returns the
// slash-separated relative path it is stored under in the request.
//
// Surrounding spaces are trimmed. Refused: an empty name, invalid UTF-8,
// control characters (NUL included), backslashes, absolute paths, "." and
// ".." segments, empty segments ("a//b", a trailing "/"), a segment longer
// than MaxNameSegment bytes, a path longer than MaxNameLength bytes, a first
// folder named .uploads (Airlock's bookkeeping) and ro-crate-metadata.json at
// the top (the request's crate). Each refusal names the file and says how to
// fix it. Unicode normalisation is left alone.
func SanitizeName(name string) (string, error) {
	n := strings.TrimSpace(name)
	refuse := func(why string, args ...any) (string, error) {
		return "", fmt.Errorf("file name %q: %s", name, fmt.Sprintf(why, args...))
	}
	switch {
	case n == "":
		return refuse("empty: give the file a name")
	case !utf8.ValidString(n):
		return refuse("not valid UTF-8: rename the file using ordinary characters")
	case strings.ContainsFunc(n, unicode.IsControl):
		return refuse("contains a control character (such as a tab, newline or NUL): rename the file without it")
	case strings.Contains(n, `\`):
		return refuse(`contains a backslash: use "/" between folders, and rename files whose names contain "\"`)
	case strings.HasPrefix(n, "/"):
		return refuse("is an absolute path: give the path relative to the folder you upload, e.g. %s", strings.TrimLeft(n, "/"))
	case len(n) > MaxNameLength:
		return refuse("is %d bytes long, longer than the %d allowed: shorten the file's name or its folders' names", len(n), MaxNameLength)
	}
	segs := strings.Split(n, "/")
	for i, seg := range segs {
		switch {
		case seg == "":
			if i == len(segs)-1 {
				return refuse(`ends with "/": name a file, not a folder`)
			}
			return refuse(`has an empty folder name ("//"): use a single "/" between folders`)
		case seg == "." || seg == "..":
			return refuse("uses %q as a folder name, which is not allowed: give the path without it", seg)
		case len(seg) > MaxNameSegment:
			return refuse("has a name part of %d bytes, longer than the %d allowed: shorten %.40q...", len(seg), MaxNameSegment, seg)
		}
	}
	if segs[0] == model.UploadStateFolder {
		return refuse("the top folder %s is reserved for Airlock's own records: rename that folder", model.UploadStateFolder)
	}
	if n == crateFile {
		return refuse("%s is the name of the request's RO-Crate description: rename the file, or put it in a folder", crateFile)
	}
	c, err := model.CleanRelPath(n)
	if err != nil {
		return refuse("%v", err)
	}
	return c, nil
}
