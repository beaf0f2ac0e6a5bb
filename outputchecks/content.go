package outputchecks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/airlockhq/airlock/model"
)

// textScan is what scanning one file for a pattern found.
type textScan struct {
	binary  bool
	matches int   // lines that match
	lines   []int // the first MaxExamples of them, 1-based
}

// denyContent fails the text files (of those the rule's paths select)
// that hold a line matching the rule's pattern. Binary files are skipped
// and counted.
func denyContent(ctx context.Context, r model.OutputRule, files []model.FileRecord, open OpenFunc) (model.CheckResult, error) {
	var res model.CheckResult
	re, err := regexp.Compile(r.Pattern)
	if err != nil {
		return res, err // Validate has compiled it already
	}
	var found, binaries []string
	read := 0
	for _, f := range files {
		if !selected(r.Paths, f.Path) {
			continue
		}
		var s textScan
		if err := readFile(ctx, open, f.Path, func(rd io.Reader) (err error) {
			s, err = scanText(ctx, re, rd)
			return err
		}); err != nil {
			return res, err
		}
		if s.binary {
			binaries = append(binaries, f.Path)
			continue
		}
		read++
		if s.matches > 0 {
			found = append(found, fmt.Sprintf("%s (%s)", f.Path, describeLines(s)))
			res.Files = append(res.Files, f.Path)
		}
	}
	skipped := ""
	if n := len(binaries); n > 0 {
		verb := "was"
		if n > 1 {
			verb = "were"
		}
		skipped = fmt.Sprintf("; %s %s not read (a NUL byte in the first %d KiB): %s: the checkers should look at them", plural(n, "binary file"), verb, SniffSize>>10, nameSome(binaries))
	}
	if len(found) > 0 {
		res.Message = fmt.Sprintf("%s: found text matching the pattern the rule forbids in %s: %s: remove or replace those values in the workspace, then resubmit%s", ruleLabel(r), plural(len(found), "file"), nameSome(found), skipped)
		return res, nil
	}
	res.Passed = true
	res.Message = fmt.Sprintf("%s: no line of the %s read%s matches the pattern the rule forbids%s", ruleLabel(r), plural(read, "text file"), scope(r), skipped)
	return res, nil
}

// describeLines gives a file's matching lines by number, never their text.
func describeLines(s textScan) string {
	nums := make([]string, len(s.lines))
	for i, n := range s.lines {
		nums[i] = fmt.Sprint(n)
	}
	word := "line"
	if len(s.lines) > 1 {
		word = "lines"
	}
	out := word + " " + strings.Join(nums, ", ")
	if more := s.matches - len(s.lines); more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}

// scanText matches re against every line of r (without its line end), in
// one pass with memory bounded by LineBuffer whatever the file's or the
// lines' length. A file with a NUL byte in its first SniffSize bytes is
// binary and not read further.
func scanText(ctx context.Context, re *regexp.Regexp, r io.Reader) (textScan, error) {
	var s textScan
	br := bufio.NewReaderSize(r, LineBuffer)
	head, err := br.Peek(SniffSize)
	if err != nil && err != io.EOF {
		return s, err
	}
	if bytes.IndexByte(head, 0) >= 0 {
		s.binary = true
		return s, nil
	}
	var long []byte // the start of a line longer than the buffer
	for line := 1; ; line++ {
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return s, err
			}
		}
		b, err := br.ReadSlice('\n')
		if len(b) == 0 && err == io.EOF {
			return s, nil
		}
		var matched bool
		switch err {
		case nil, io.EOF:
			matched = re.Match(trimLineEnd(b))
		case bufio.ErrBufferFull:
			if long == nil {
				long = make([]byte, 0, LineBuffer+utf8.UTFMax)
			}
			lr := &lineRunes{head: append(long[:0], b...), r: br}
			matched = re.MatchReader(lr)
			if err := lr.finish(); err != nil {
				return s, err
			}
		default:
			return s, err
		}
		if matched {
			s.matches++
			if len(s.lines) < MaxExamples {
				s.lines = append(s.lines, line)
			}
		}
		if err == io.EOF {
			return s, nil
		}
	}
}

func trimLineEnd(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// lineRunes reads the rest of one long line as runes: first head (the
// line's start, which filled the buffer), then from r up to the line end
// ("\n" or "\r\n", not returned) or the end of the file.
type lineRunes struct {
	head []byte
	r    *bufio.Reader
	end  bool
	err  error
}

func (l *lineRunes) ReadRune() (rune, int, error) {
	if l.end {
		return 0, 0, io.EOF
	}
	var c rune
	var n int
	if len(l.head) > 0 {
		if !utf8.FullRune(l.head) {
			l.completeRune()
		}
		c, n = utf8.DecodeRune(l.head)
		l.head = l.head[n:]
	} else {
		var err error
		if c, n, err = l.r.ReadRune(); err != nil {
			l.end = true
			if err != io.EOF {
				l.err = err
			}
			return 0, 0, io.EOF
		}
		if c == '\n' {
			l.end = true
			return 0, 0, io.EOF
		}
	}
	if c == '\r' && len(l.head) == 0 {
		if next, err := l.r.Peek(1); err == nil && next[0] == '\n' {
			_, _ = l.r.ReadByte()
			l.end = true
			return 0, 0, io.EOF
		}
	}
	return c, n, nil
}

// completeRune moves the bytes of a rune that the buffer's end split from
// r onto head (which has room for them).
func (l *lineRunes) completeRune() {
	for !utf8.FullRune(l.head) {
		next, err := l.r.Peek(1)
		if err != nil || next[0] == '\n' {
			return
		}
		b, _ := l.r.ReadByte()
		l.head = append(l.head, b)
	}
}

// finish skips what is left of the line (the expression may have matched
// before its end) and returns any read error met.
func (l *lineRunes) finish() error {
	if l.err != nil {
		return l.err
	}
	if l.end {
		return nil
	}
	l.end = true
	for {
		_, err := l.r.ReadSlice('\n')
		switch err {
		case bufio.ErrBufferFull:
			continue
		case nil, io.EOF:
			return nil
		default:
			return err
		}
	}
}
