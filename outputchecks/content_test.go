package outputchecks

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/model"
)

const nhsNumber = `\b\d{3} ?\d{3} ?\d{4}\b`

func TestDenyContent(t *testing.T) {
	var many strings.Builder
	for i := 1; i <= 10; i++ {
		if i%2 == 0 {
			many.WriteString("patient 943 476 5919 seen\n")
		} else {
			many.WriteString("nothing here\n")
		}
	}
	w := newWorkspace(t, map[string]string{
		"results/summary.txt": "mean age 54\nmedian 52\n",
		"results/leak.csv":    "id,age\n9434765919,54\n",
		"logs/run.log":        many.String(),
		"empty.txt":           "",
		"figure.png":          "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR 943 476 5919",
	})
	res := runRule(t, w, model.OutputRule{Name: "no-nhs-numbers", Description: "NHS numbers", Kind: model.RuleDenyContent, Pattern: nhsNumber})
	wantFailed(t, res, []string{"logs/run.log", "results/leak.csv"},
		"rule no-nhs-numbers (NHS numbers): found text matching the pattern the rule forbids in 2 files: ",
		"logs/run.log (lines 2, 4, 6 and 2 more), results/leak.csv (line 2)",
		"remove or replace those values in the workspace, then resubmit",
		"1 binary file was not read (a NUL byte in the first 8 KiB): figure.png: the checkers should look at them")
	for _, secret := range []string{"943 476 5919", "9434765919"} {
		if strings.Contains(res.Message, secret) {
			t.Errorf("the message quotes the matched text %q: %s", secret, res.Message)
		}
	}

	// Paths narrow the rule: only the .csv is read.
	res = runRule(t, w, model.OutputRule{Kind: model.RuleDenyContent, Pattern: nhsNumber, Paths: []string{"*.csv"}})
	wantFailed(t, res, []string{"results/leak.csv"}, "forbids in 1 file: results/leak.csv (line 2): remove")
	res = runRule(t, w, model.OutputRule{Kind: model.RuleDenyContent, Pattern: nhsNumber, Paths: []string{"*.txt"}})
	wantPassed(t, res, "no line of the 2 text files read matching *.txt matches the pattern the rule forbids")
	if strings.Contains(res.Message, "binary") {
		t.Errorf("the png is not selected, yet the message counts it: %s", res.Message)
	}
}

// Lines end at "\n" or "\r\n": the anchors see a line without its end.
func TestDenyContentLineEnds(t *testing.T) {
	w := newWorkspace(t, map[string]string{
		"crlf.txt":  "header\r\nsecret\r\nsecret sauce\r\n",
		"no-eol.md": "first\nsecret",
	})
	res := runRule(t, w, model.OutputRule{Kind: model.RuleDenyContent, Pattern: `^secret$`})
	wantFailed(t, res, []string{"crlf.txt", "no-eol.md"}, "crlf.txt (line 2), no-eol.md (line 2)")
}

// A line longer than the buffer is matched whole, across the buffer's
// end, with ^ and $ meaning the line's start and end, and a rune split by
// the buffer's end read whole; the lines after it keep their numbers.
func TestDenyContentLongLines(t *testing.T) {
	pad := strings.Repeat("a", LineBuffer-1)
	w := newWorkspace(t, map[string]string{
		// The match straddles the buffer's end, inside a 200 KiB line.
		"straddle.txt": "short\n" + pad + "XYZ" + strings.Repeat("b", 200<<10) + "\n",
		// "é" is two bytes; the first is the buffer's last.
		"rune.txt": pad + "é!\n",
		// Only the end of this long line is "end", and no line starts
		// with "aaa" where it continues past the buffer.
		"anchors.txt": pad + pad + "end\r\nnext\n",
		// The match is on the line after a long one.
		"after.txt": strings.Repeat("c", 3*LineBuffer) + "\nline two XYZ\n",
		// A long line without an end, the file's last.
		"last.txt": "one\n" + strings.Repeat("d", 2*LineBuffer) + "XYZ",
	})
	res := runRule(t, w, model.OutputRule{Kind: model.RuleDenyContent, Pattern: `aXYZb|XYZ$|é!$|aaaend$|^line two`})
	wantFailed(t, res, []string{"after.txt", "anchors.txt", "last.txt", "rune.txt", "straddle.txt"},
		"after.txt (line 2), anchors.txt (line 1), last.txt (line 2), rune.txt (line 1), straddle.txt (line 2)")

	res = runRule(t, w, model.OutputRule{Kind: model.RuleDenyContent, Pattern: `^aaab|^ddd.*XYZ.+|^b`})
	wantPassed(t, res, "no line of the 5 text files read")
	res = runRule(t, w, model.OutputRule{Kind: model.RuleDenyContent, Pattern: `^next$`})
	wantFailed(t, res, []string{"anchors.txt"}, "anchors.txt (line 2)")
}

// endless is a reader of n bytes of filler with tail at the end.
type endless struct {
	n, done int64
	fill    byte
	tail    []byte
}

func (e *endless) Read(p []byte) (int, error) {
	if e.done >= e.n+int64(len(e.tail)) {
		return 0, io.EOF
	}
	i := 0
	for ; i < len(p) && e.done < e.n; i++ {
		p[i] = e.fill
		e.done++
	}
	for ; i < len(p) && e.done < e.n+int64(len(e.tail)); i++ {
		p[i] = e.tail[e.done-e.n]
		e.done++
	}
	return i, nil
}

// peakHeap runs f and returns the most heap its objects (live or not yet
// collected) took while it ran, sampled every millisecond.
func peakHeap(f func()) uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	base := read()
	stop := make(chan struct{})
	done := make(chan uint64)
	go func() {
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if v := read(); v > peak {
				peak = v
			}
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(stop)
	peak := <-done
	if peak < base {
		return 0
	}
	return peak - base
}

// allocated runs f and returns the bytes it allocated.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A 32 MiB file of one line is scanned with a fixed amount of memory.
func TestDenyContentMemoryBounded(t *testing.T) {
	const size = 32 << 20
	var s textScan
	var err error
	alloc := allocated(func() {
		s, err = scanText(context.Background(), regexp.MustCompile(`needle`), &endless{n: size, fill: 'x', tail: []byte("needle")})
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.binary || s.matches != 1 || len(s.lines) != 1 || s.lines[0] != 1 {
		t.Fatalf("scan = %+v; want the needle found on line 1", s)
	}
	t.Logf("a %d MiB line scanned with %d KiB allocated", size>>20, alloc>>10)
	if alloc > 2<<20 {
		t.Errorf("scanning a %d MiB line allocated %d KiB; want it bounded by the line buffer", size>>20, alloc>>10)
	}
}

func TestScanTextSniffsOnlyTheStart(t *testing.T) {
	// A NUL after the first 8 KiB does not make a file binary.
	data := append(bytes.Repeat([]byte("text line\n"), SniffSize/10+1), 0)
	data = append(data, "\nsecret\n"...)
	s, err := scanText(context.Background(), regexp.MustCompile(`secret`), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if s.binary || s.matches != 1 {
		t.Fatalf("scan = %+v; want text, with one match", s)
	}
}
