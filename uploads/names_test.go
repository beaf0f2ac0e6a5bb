package uploads

import (
	"strconv"
	"strings"
	"testing"
)

func TestSanitizeNameAccepts(t *testing.T) {
	long := strings.Repeat("a", MaxNameSegment)
	deep := strings.Repeat(strings.Repeat("d", 9)+"/", 102) + "f.csv" // 102*10+5 = 1025 bytes
	deepOK := deep[len(deep)-MaxNameLength:]                          // exactly the limit
	for _, tc := range []struct{ in, want string }{
		{"visits.csv", "visits.csv"},
		{"  visits.csv  ", "visits.csv"},
		{"\tvisits.csv\n", "visits.csv"},
		{"data/2024/visits.csv", "data/2024/visits.csv"},
		{"my folder/some file (1).csv", "my folder/some file (1).csv"},
		{"données/été.csv", "données/été.csv"},
		{"日本語.txt", "日本語.txt"},
		{".hidden", ".hidden"},
		{"a/.uploads/x", "a/.uploads/x"},                             // reserved only at the top
		{".uploadsx/y", ".uploadsx/y"},                               // not the reserved folder
		{"sub/ro-crate-metadata.json", "sub/ro-crate-metadata.json"}, // the crate is only at the top
		{"ro-crate-metadata.json.bak", "ro-crate-metadata.json.bak"},
		{"...", "..."},
		{"a..b/c", "a..b/c"},
		{long, long},
		{deepOK, deepOK},
		{"C:/x.csv", "C:/x.csv"}, // a drive-like name is an ordinary folder name here
	} {
		got, err := SanitizeName(tc.in)
		if err != nil {
			t.Errorf("SanitizeName(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSanitizeNameRefuses(t *testing.T) {
	deep := strings.Repeat(strings.Repeat("d", 9)+"/", 102) + "f.csv"
	for _, tc := range []struct {
		in string
		// want are parts the message must hold: what is wrong and what to do.
		want []string
	}{
		{"", []string{"empty", "give the file a name"}},
		{"   ", []string{"empty"}},
		{"a\x00b.csv", []string{"control character", "rename"}},
		{"a\nb.csv", []string{"control character", "rename"}},
		{"a\x7fb.csv", []string{"control character"}},
		{"a\u0085b.csv", []string{"control character"}}, // C1 control (NEL)
		{"bad\xff.csv", []string{"UTF-8", "rename"}},
		{`dir\file.csv`, []string{"backslash", `use "/"`}},
		{"/etc/passwd", []string{"absolute path", "etc/passwd"}},
		{"//x", []string{"absolute path"}},
		{"../x.csv", []string{`".."`, "without it"}},
		{"a/../../x.csv", []string{`".."`}},
		{"a/..", []string{`".."`}},
		{"./x.csv", []string{`"."`}},
		{"a/./x.csv", []string{`"."`}},
		{".", []string{`"."`}},
		{"..", []string{`".."`}},
		{"a//b.csv", []string{"empty folder name", "single"}},
		{"folder/", []string{`ends with "/"`, "name a file"}},
		{strings.Repeat("a", MaxNameSegment+1), []string{"256 bytes", "255", "shorten"}},
		{"x/" + strings.Repeat("é", 128) + "/y", []string{"256 bytes"}}, // é is two bytes
		{deep, []string{"1025 bytes", "1024", "shorten"}},
		{".uploads", []string{".uploads", "reserved", "rename"}},
		{".uploads/x.json", []string{".uploads", "reserved"}},
		{"ro-crate-metadata.json", []string{"RO-Crate", "rename the file, or put it in a folder"}},
		{" ro-crate-metadata.json ", []string{"RO-Crate"}},
	} {
		got, err := SanitizeName(tc.in)
		if err == nil {
			t.Errorf("SanitizeName(%q) = %q, want a refusal", tc.in, got)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "file name "+strconv.Quote(tc.in)) {
			t.Errorf("SanitizeName(%q): %q does not name the file", tc.in, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("SanitizeName(%q): %q does not say %q", tc.in, msg, w)
			}
		}
	}
}
