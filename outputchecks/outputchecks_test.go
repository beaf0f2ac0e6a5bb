package outputchecks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/model"
)

// workspace is a folder of real files, as a request's staged copies.
type workspace struct {
	dir   string
	files map[string]model.FileRecord
}

func newWorkspace(t *testing.T, files map[string]string) *workspace {
	t.Helper()
	w := &workspace{dir: t.TempDir(), files: map[string]model.FileRecord{}}
	for p, data := range files {
		w.write(t, p, []byte(data))
	}
	return w
}

func (w *workspace) write(t *testing.T, p string, data []byte) {
	t.Helper()
	full := filepath.Join(w.dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	w.files[p] = model.FileRecord{Path: p, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

// records lists the files in an order that is not by path, to show Run
// does not depend on it.
func (w *workspace) records() []model.FileRecord {
	var out []model.FileRecord
	for _, f := range w.files {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path > out[j].Path })
	return out
}

func (w *workspace) open(_ context.Context, p string) (io.ReadCloser, error) {
	return os.Open(filepath.Join(w.dir, filepath.FromSlash(p)))
}

func run(t *testing.T, w *workspace, checks *model.OutputChecks) []model.CheckResult {
	t.Helper()
	res, err := Run(context.Background(), checks, w.records(), w.open)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// runRule runs one rule and returns its result.
func runRule(t *testing.T, w *workspace, r model.OutputRule) model.CheckResult {
	t.Helper()
	if r.Name == "" {
		r.Name = "rule-under-test"
	}
	if r.OnFail == "" {
		r.OnFail = model.OnFailBlock
	}
	res := run(t, w, &model.OutputChecks{Rules: []model.OutputRule{r}})
	if len(res) != 1 || res[0].Name != r.Name || res[0].OnFail != r.OnFail {
		t.Fatalf("results = %+v; want one, named %s, with onFail %s", res, r.Name, r.OnFail)
	}
	return res[0]
}

func wantFailed(t *testing.T, res model.CheckResult, files []string, says ...string) {
	t.Helper()
	if res.Passed {
		t.Fatalf("check %s passed: %q; want it failed", res.Name, res.Message)
	}
	if !reflect.DeepEqual(res.Files, files) {
		t.Errorf("check %s files = %q; want %q", res.Name, res.Files, files)
	}
	for _, s := range says {
		if !strings.Contains(res.Message, s) {
			t.Errorf("check %s says %q; want it to say %q", res.Name, res.Message, s)
		}
	}
}

func wantPassed(t *testing.T, res model.CheckResult, says ...string) {
	t.Helper()
	if !res.Passed || len(res.Files) != 0 {
		t.Fatalf("check %s = %+v; want passed, naming no file", res.Name, res)
	}
	for _, s := range says {
		if !strings.Contains(res.Message, s) {
			t.Errorf("check %s says %q; want it to say %q", res.Name, res.Message, s)
		}
	}
}

func TestRunOrderAndOnFail(t *testing.T) {
	w := newWorkspace(t, map[string]string{
		"results/table.csv": "group,count\na,3\n",
		"notes.txt":         "nothing to see\n",
	})
	checks := &model.OutputChecks{
		Limits: &model.OutputLimits{MaxFiles: 10, OnFail: model.OnFailBlock},
		Types:  &model.OutputTypes{Allowed: []string{".csv", ".txt"}, OnFail: model.OnFailFlag},
		Rules: []model.OutputRule{
			{Name: "small-counts", Kind: model.RuleMinCellCount, Threshold: 10, OnFail: model.OnFailFlag},
			{Name: "no-keys", Kind: model.RuleDenyPath, Paths: []string{"*.key"}, OnFail: model.OnFailBlock},
			{Name: "no-emails", Kind: model.RuleDenyContent, Pattern: `@example\.org`, OnFail: model.OnFailBlock},
		},
	}
	res := run(t, w, checks)
	var got []string
	for _, r := range res {
		got = append(got, r.Name+":"+r.OnFail)
	}
	want := "limits:block types:flag small-counts:flag no-keys:block no-emails:block"
	if strings.Join(got, " ") != want {
		t.Fatalf("results = %s; want %s", strings.Join(got, " "), want)
	}
	wantPassed(t, res[0])
	wantPassed(t, res[1])
	wantFailed(t, res[2], []string{"results/table.csv"})
	wantPassed(t, res[3])
	wantPassed(t, res[4])
}

func TestRunNothingConfigured(t *testing.T) {
	w := newWorkspace(t, map[string]string{"a.csv": "x\n1\n"})
	if res := run(t, w, nil); len(res) != 0 {
		t.Errorf("nil checks gave %+v; want no results", res)
	}
	if res := run(t, w, &model.OutputChecks{}); len(res) != 0 {
		t.Errorf("empty checks gave %+v; want no results", res)
	}
}

func TestRunRefusesInvalidChecks(t *testing.T) {
	w := newWorkspace(t, map[string]string{"a.csv": "x\n1\n"})
	_, err := Run(context.Background(), &model.OutputChecks{Rules: []model.OutputRule{
		{Name: "bad", Kind: model.RuleDenyContent, Pattern: "(unclosed", OnFail: model.OnFailBlock},
	}}, w.records(), w.open)
	fes, ok := model.AsFieldErrors(err)
	if !ok || !strings.Contains(fes.Error(), "spec.checks.rules[0].pattern") {
		t.Fatalf("err = %v; want field errors naming spec.checks.rules[0].pattern", err)
	}
}

func TestRunOpenErrorNamesTheFile(t *testing.T) {
	w := newWorkspace(t, map[string]string{"a.txt": "hello\n"})
	boom := errors.New("connection reset")
	_, err := Run(context.Background(), &model.OutputChecks{Rules: []model.OutputRule{
		{Name: "no-secrets", Kind: model.RuleDenyContent, Pattern: "secret", OnFail: model.OnFailBlock},
	}}, w.records(), func(context.Context, string) (io.ReadCloser, error) { return nil, boom })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "rule no-secrets: opening a.txt") {
		t.Fatalf("err = %v; want the open error, naming the rule and the file", err)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	w := newWorkspace(t, map[string]string{"a.txt": "hello\n"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, &model.OutputChecks{Rules: []model.OutputRule{
		{Name: "no-keys", Kind: model.RuleDenyPath, Paths: []string{"*.key"}, OnFail: model.OnFailBlock},
	}}, w.records(), w.open)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
}

func TestLimits(t *testing.T) {
	w := newWorkspace(t, map[string]string{
		"a.csv":     strings.Repeat("x", 100),
		"b/big.csv": strings.Repeat("x", 3000),
		"c.csv":     strings.Repeat("x", 2000),
	})
	limits := func(l model.OutputLimits) model.CheckResult {
		l.OnFail = model.OnFailFlag
		res := run(t, w, &model.OutputChecks{Limits: &l})
		if len(res) != 1 || res[0].Name != CheckLimits || res[0].OnFail != model.OnFailFlag {
			t.Fatalf("results = %+v; want the limits check, with onFail flag", res)
		}
		return res[0]
	}
	wantPassed(t, limits(model.OutputLimits{MaxFiles: 3, MaxFileSize: 3000, MaxTotalSize: 5100}),
		"3 files, 5.0 KiB in all, within the limits (at most 3 files, at most 2.9 KiB a file, at most 5.0 KiB in all)")
	wantPassed(t, limits(model.OutputLimits{}), "none set")
	wantFailed(t, limits(model.OutputLimits{MaxFiles: 2}), nil,
		"the request holds 3 files but an egress may hold at most 2 (spec.checks.limits.maxFiles): leave out 1")
	wantFailed(t, limits(model.OutputLimits{MaxFileSize: 1000}), []string{"b/big.csv", "c.csv"},
		"larger than the 1000 B a file may be (spec.checks.limits.maxFileSize): b/big.csv (2.9 KiB), c.csv (2.0 KiB)")
	wantFailed(t, limits(model.OutputLimits{MaxTotalSize: 5000}), nil,
		"the files total 5.0 KiB but an egress may hold at most 4.9 KiB (spec.checks.limits.maxTotalSize)")
}

func TestTypes(t *testing.T) {
	w := newWorkspace(t, map[string]string{
		"results/Table.CSV":  "x\n",
		"figures/plot.png":   "png",
		"bundle.tar.gz":      "gz",
		"README":             "readme",
		".env":               "A=1",
		"scripts/run.sh":     "echo",
		"results/model.pkl":  "pickle",
		"results/notes.tar":  "tar",
		"archive/old.tar.gz": "gz",
	})
	types := func(allowed ...string) model.CheckResult {
		res := run(t, w, &model.OutputChecks{Types: &model.OutputTypes{Allowed: allowed, OnFail: model.OnFailBlock}})
		if len(res) != 1 || res[0].Name != CheckTypes || res[0].OnFail != model.OnFailBlock {
			t.Fatalf("results = %+v; want the types check", res)
		}
		return res[0]
	}
	wantFailed(t, types(".csv", ".PNG", ".tar.gz"),
		[]string{".env", "README", "results/model.pkl", "results/notes.tar", "scripts/run.sh"},
		"5 of 9 files are not of a type the policy allows (spec.checks.types.allowed: .csv, .PNG, .tar.gz)",
		".env (no extension), README (no extension), results/model.pkl (.pkl), results/notes.tar (.tar), scripts/run.sh (.sh)",
		"save them as an allowed type, or leave them out")
	w2 := newWorkspace(t, map[string]string{"a.csv": "x", "b.Png": "p"})
	res := run(t, w2, &model.OutputChecks{Types: &model.OutputTypes{Allowed: []string{".csv", ".png"}, OnFail: model.OnFailFlag}})
	wantPassed(t, res[0], "all 2 files are of allowed types (.csv, .png)")
}

func TestDenyPath(t *testing.T) {
	w := newWorkspace(t, map[string]string{
		"certs/server.key":   "k",
		"secrets/token.txt":  "t",
		"x/secrets/note.txt": "n",
		"results/table.csv":  "c",
		"id_rsa":             "r",
	})
	res := runRule(t, w, model.OutputRule{Name: "no-keys", Description: "keys and secrets", Kind: model.RuleDenyPath,
		Paths: []string{"*.key", "secrets/*", "id_rsa*"}})
	// *.key matches the base name; secrets/* the full path only; so
	// x/secrets/note.txt is not caught.
	wantFailed(t, res, []string{"certs/server.key", "id_rsa", "secrets/token.txt"},
		"rule no-keys (keys and secrets): found 3 files on a path the rule forbids (*.key, secrets/*, id_rsa*): ",
		"certs/server.key (matches *.key), id_rsa (matches id_rsa*), secrets/token.txt (matches secrets/*)",
		"remove them from the request")
	wantPassed(t, runRule(t, w, model.OutputRule{Kind: model.RuleDenyPath, Paths: []string{"*.pem"}}),
		"none of the 5 files takes a path the rule forbids (*.pem)")
}

func TestNameSome(t *testing.T) {
	var items []string
	for i := range 12 {
		items = append(items, string(rune('a'+i)))
	}
	if got := nameSome(items); got != "a, b, c, d, e, f, g, h, i, j and 2 more" {
		t.Errorf("nameSome = %q", got)
	}
}
