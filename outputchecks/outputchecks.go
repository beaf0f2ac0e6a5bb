// Package outputchecks runs an egress policy's automatic checks
// (spec.checks) over the files of an egress request: limits on their number
// and size, an allow-list of file types, and the policy's rules (paths no
// file may take, text no file may contain, small counts no table may hold).
//
// Each check gives a model.CheckResult that says what it found and what to
// do, names the offending files, and carries the check's onFail (block or
// flag). Files are read through an open function, as streams: memory stays
// bounded whatever their size, and a finding never quotes the file's
// content (it may be the very thing that must not leave), only where it is.
package outputchecks

import (
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/airlockhq/airlock/model"
)

// Names of the checks that are not rules (rules go by their own names).
const (
	// CheckLimits: the number of files, each file's size and their total
	// keep within spec.checks.limits.
	CheckLimits = "limits"
	// CheckTypes: every file has an extension spec.checks.types.allowed
	// lists.
	CheckTypes = "types"
)

// Bounds on what a check reads and reports.
const (
	// SniffSize is how much of a file's start is looked at to tell text
	// from binary: a NUL byte there makes it binary.
	SniffSize = 8 << 10
	// LineBuffer is the longest line matched in one piece; a longer line
	// is streamed through the regular expression rune by rune, so that
	// memory stays bounded whatever the line's length.
	LineBuffer = 64 << 10
	// MaxRecordSize bounds one CSV/TSV record (a row, quoted newlines
	// included); a file with a longer one cannot be checked and fails the
	// rule.
	MaxRecordSize = 1 << 20
	// MaxExamples is how many locations a message gives per file.
	MaxExamples = 3
	// MaxFilesNamed is how many files a message spells out; the result's
	// Files lists them all.
	MaxFilesNamed = 10
)

// OpenFunc opens one of the request's files by its path (as in
// model.FileRecord.Path) for reading from the start.
type OpenFunc = func(ctx context.Context, path string) (io.ReadCloser, error)

// Run runs checks over files, one result per configured check in order:
// limits (if set), types (if set), then each rule by its name. A failed
// check is a result (Passed false), not an error; errors are the policy's
// (its checks do not validate: a model.FieldErrors naming the field), the
// context's, or open's and the reads' (wrapped, naming the file). A nil
// checks runs nothing.
func Run(ctx context.Context, checks *model.OutputChecks, files []model.FileRecord, open OpenFunc) ([]model.CheckResult, error) {
	if checks == nil {
		return []model.CheckResult{}, nil
	}
	if errs := checks.Validate("spec.checks"); len(errs) > 0 {
		return nil, errs
	}
	sorted := append([]model.FileRecord(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	out := []model.CheckResult{}
	if checks.Limits != nil {
		out = append(out, checkLimits(*checks.Limits, sorted))
	}
	if checks.Types != nil {
		out = append(out, checkTypes(*checks.Types, sorted))
	}
	for _, r := range checks.Rules {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var res model.CheckResult
		var err error
		switch r.Kind {
		case model.RuleDenyPath:
			res = denyPath(r, sorted)
		case model.RuleDenyContent:
			res, err = denyContent(ctx, r, sorted, open)
		case model.RuleMinCellCount:
			res, err = minCellCount(ctx, r, sorted, open)
		}
		if err != nil {
			return nil, fmt.Errorf("rule %s: %w", r.Name, err)
		}
		res.Name, res.OnFail = r.Name, r.OnFail
		out = append(out, res)
	}
	return out, nil
}

// checkLimits applies spec.checks.limits to the files' recorded sizes.
func checkLimits(l model.OutputLimits, files []model.FileRecord) model.CheckResult {
	res := model.CheckResult{Name: CheckLimits, OnFail: l.OnFail}
	var problems, big []string
	if l.MaxFiles > 0 && len(files) > l.MaxFiles {
		problems = append(problems, fmt.Sprintf("the request holds %d files but an egress may hold at most %d (spec.checks.limits.maxFiles): leave out %d, or split them across requests", len(files), l.MaxFiles, len(files)-l.MaxFiles))
	}
	var total int64
	for _, f := range files {
		total += f.Size
		if l.MaxFileSize > 0 && f.Size > l.MaxFileSize {
			big = append(big, fmt.Sprintf("%s (%s)", f.Path, model.FormatBytes(f.Size)))
			res.Files = append(res.Files, f.Path)
		}
	}
	if len(big) > 0 {
		problems = append(problems, fmt.Sprintf("larger than the %s a file may be (spec.checks.limits.maxFileSize): %s: split or summarise them, or leave them out", model.FormatBytes(l.MaxFileSize), nameSome(big)))
	}
	if l.MaxTotalSize > 0 && total > l.MaxTotalSize {
		problems = append(problems, fmt.Sprintf("the files total %s but an egress may hold at most %s (spec.checks.limits.maxTotalSize): leave some out, or split them across requests", model.FormatBytes(total), model.FormatBytes(l.MaxTotalSize)))
	}
	if len(problems) > 0 {
		res.Message = strings.Join(problems, "; ")
		return res
	}
	res.Passed = true
	res.Message = fmt.Sprintf("%d files, %s in all, within the limits (%s)", len(files), model.FormatBytes(total), describeLimits(l))
	return res
}

func describeLimits(l model.OutputLimits) string {
	var parts []string
	if l.MaxFiles > 0 {
		parts = append(parts, fmt.Sprintf("at most %d files", l.MaxFiles))
	}
	if l.MaxFileSize > 0 {
		parts = append(parts, "at most "+model.FormatBytes(l.MaxFileSize)+" a file")
	}
	if l.MaxTotalSize > 0 {
		parts = append(parts, "at most "+model.FormatBytes(l.MaxTotalSize)+" in all")
	}
	if len(parts) == 0 {
		return "none set"
	}
	return strings.Join(parts, ", ")
}

// checkTypes applies spec.checks.types: a file passes when its name ends in
// an allowed extension (case-insensitively; ".tar.gz" may be listed) with
// something before it. A file without an extension, such as README or
// .env, fails.
func checkTypes(t model.OutputTypes, files []model.FileRecord) model.CheckResult {
	res := model.CheckResult{Name: CheckTypes, OnFail: t.OnFail}
	allowed := strings.Join(t.Allowed, ", ")
	var bad []string
	for _, f := range files {
		if allowedType(t.Allowed, f.Path) {
			continue
		}
		ext := extension(f.Path)
		if ext == "" {
			ext = "no extension"
		}
		bad = append(bad, fmt.Sprintf("%s (%s)", f.Path, ext))
		res.Files = append(res.Files, f.Path)
	}
	if len(bad) > 0 {
		res.Message = fmt.Sprintf("%d of %d files are not of a type the policy allows (spec.checks.types.allowed: %s): %s: save them as an allowed type, or leave them out", len(bad), len(files), allowed, nameSome(bad))
		return res
	}
	res.Passed = true
	res.Message = fmt.Sprintf("all %d files are of allowed types (%s)", len(files), allowed)
	return res
}

func allowedType(allowed []string, p string) bool {
	base := strings.ToLower(path.Base(p))
	for _, ext := range allowed {
		ext = strings.ToLower(ext)
		if len(base) > len(ext) && strings.HasSuffix(base, ext) {
			return true
		}
	}
	return false
}

// extension is a file's extension for messages: "" for a name without one
// (a dot file such as .env has none).
func extension(p string) string {
	base := path.Base(p)
	ext := path.Ext(base)
	if ext == base {
		return ""
	}
	return ext
}

// denyPath fails the files whose path or base name matches one of the
// rule's globs.
func denyPath(r model.OutputRule, files []model.FileRecord) model.CheckResult {
	var res model.CheckResult
	var bad []string
	for _, f := range files {
		if g, ok := matchingGlob(r.Paths, f.Path); ok {
			bad = append(bad, fmt.Sprintf("%s (matches %s)", f.Path, g))
			res.Files = append(res.Files, f.Path)
		}
	}
	if len(bad) > 0 {
		res.Message = fmt.Sprintf("%s: found %s on a path the rule forbids (%s): %s: remove them from the request, or rename them if the rule caught them by mistake (ask the checkers)", ruleLabel(r), plural(len(bad), "file"), strings.Join(r.Paths, ", "), nameSome(bad))
		return res
	}
	res.Passed = true
	res.Message = fmt.Sprintf("%s: none of the %d files takes a path the rule forbids (%s)", ruleLabel(r), len(files), strings.Join(r.Paths, ", "))
	return res
}

// matchingGlob returns the first glob that matches p's full path or its
// base name. Globs are path.Match patterns, checked by model's Validate.
func matchingGlob(globs []string, p string) (string, bool) {
	base := path.Base(p)
	for _, g := range globs {
		if ok, _ := path.Match(g, p); ok {
			return g, true
		}
		if ok, _ := path.Match(g, base); ok {
			return g, true
		}
	}
	return "", false
}

// selected reports whether a rule with globs applies to p: every file when
// there are none.
func selected(globs []string, p string) bool {
	if len(globs) == 0 {
		return true
	}
	_, ok := matchingGlob(globs, p)
	return ok
}

// ruleLabel names a rule in a message: its name, and its description when
// it has one.
func ruleLabel(r model.OutputRule) string {
	if r.Description != "" {
		return fmt.Sprintf("rule %s (%s)", r.Name, r.Description)
	}
	return "rule " + r.Name
}

// scope says which files a rule reads, for messages.
func scope(r model.OutputRule) string {
	if len(r.Paths) == 0 {
		return ""
	}
	return " matching " + strings.Join(r.Paths, ", ")
}

// nameSome joins the first MaxFilesNamed items and says how many more
// there are.
func nameSome(items []string) string {
	if len(items) <= MaxFilesNamed {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:MaxFilesNamed], ", "), len(items)-MaxFilesNamed)
}

// plural is n and noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// readFile opens p and hands its reader to read, closing it after.
func readFile(ctx context.Context, open OpenFunc, p string, read func(io.Reader) error) error {
	rc, err := open(ctx, p)
	if err != nil {
		return fmt.Errorf("opening %s: %w", p, err)
	}
	defer rc.Close()
	if err := read(rc); err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	return nil
}
