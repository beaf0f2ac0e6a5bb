package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/requests"
)

func TestEgressFlagsCheckedBeforeContactingTheServer(t *testing.T) {
	req := []string{"egress", "request", "--workspace", "ws1", "--project", "d4e6", "--destination", "outbox",
		"--file", "out/t1.csv", "--justification", "tables", "--as", "rita"}
	without := func(flag string) []string {
		var out []string
		for i := 0; i < len(req); i++ {
			if req[i] == flag {
				i++
				continue
			}
			out = append(out, req[i])
		}
		return out
	}
	with := func(extra ...string) []string { return append(append([]string(nil), req...), extra...) }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"egress"}, "name a subcommand: request, review, resubmit, withdraw or verify"},
		{without("--as"), "--as: missing"},
		{without("--workspace"), "--workspace: missing"},
		{without("--project"), "--project: missing"},
		{without("--destination"), "--destination: missing"},
		{without("--file"), "--file: missing: list at least one file"},
		{without("--justification"), "--justification: missing"},
		{with("--file", "/etc/passwd"), "--file: absolute path \"/etc/passwd\""},
		{with("--file", "out/t1.csv"), "--file: out/t1.csv is listed twice"},
		{with("--file", "out//t2.csv"), `send it as "out/t2.csv"`},
		{with("--policy", "Two Checkers"), `--policy "Two Checkers"`},
		{with("--id", "x/y"), `--id "x/y": not a request id`},
		{[]string{"egress", "review", "egress-ws1-abcdef", "--approve-all"}, "--as: missing"},
		{[]string{"egress", "review", "egress-ws1-abcdef", "--as", "olga"}, "no verdict given"},
		{[]string{"egress", "review", "--as", "olga", "--approve-all"}, "ID"},
		{[]string{"egress", "resubmit", "egress-ws1-abcdef"}, "--as: missing"},
		{[]string{"egress", "withdraw", "egress-ws1-abcdef"}, "--as: missing"},
		{[]string{"revoke", "egress-ws1-abcdef", "--reason", "r"}, "--as: missing"},
		{[]string{"revoke", "egress-ws1-abcdef", "--as", "rita"}, "--reason: missing"},
		{[]string{"revoke"}, "ID"},
		{[]string{"egress", "verify", t.TempDir()}, "--public-key: missing"},
		{[]string{"egress", "verify", t.TempDir(), "--public-key", "/no/such/key.pem"}, "--public-key /no/such/key.pem"},
		{[]string{"egress", "verify"}, "DIR"},
	} {
		_, errOut, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error()+errOut, tc.want) {
			t.Errorf("airlock %s: error %v, want one mentioning %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

// Every egress command and revoke shows an example in --help.
func TestEgressHelpHasExamples(t *testing.T) {
	a := newApp(&bytes.Buffer{}, &bytes.Buffer{})
	root := a.rootCmd()
	for _, path := range [][]string{{"egress"}, {"egress", "request"}, {"egress", "review"}, {"egress", "resubmit"}, {"egress", "withdraw"}, {"egress", "verify"}, {"revoke"}} {
		cmd, _, err := root.Find(path)
		if err != nil || cmd.Name() != path[len(path)-1] {
			t.Errorf("airlock %s: not found (%v)", strings.Join(path, " "), err)
			continue
		}
		if !strings.Contains(cmd.Example, "airlock "+strings.Join(path, " ")) && !(path[0] == "egress" && len(path) == 1 && strings.Contains(cmd.Example, "airlock egress request")) {
			t.Errorf("airlock %s --help has no example of itself:\n%s", strings.Join(path, " "), cmd.Example)
		}
	}
}

// egressStatus is an egress of three files in turn 2, waiting on its
// output-checking stage: table1.csv changed and is open, figure1.png was
// approved in turn 1, raw.csv was rejected then.
func egressStatus() model.RequestStatus {
	at := time.Date(2025, 5, 1, 9, 0, 0, 0, time.UTC)
	file := func(p string, turn int, verdict string) model.EgressFile {
		return model.EgressFile{FileRecord: model.FileRecord{Path: p, Size: 100, SHA256: strings.Repeat("a", 64)}, Turn: turn, Verdict: verdict}
	}
	st := model.RequestStatus{
		ID: "egress-ws1-abcdef", Kind: model.KindEgress, State: model.StateAwaitingApproval, Project: "d4e6", Workspace: "ws1",
		Requester: "rita", Policy: "egress-standard@1", CreatedAt: at,
		Stages: []model.StageStatus{{Name: "output-checking", Role: "output-checker", Required: 2, State: model.StageWaiting, Decisions: []model.DecisionRecord{}}},
		Checks: []model.CheckResult{
			{Name: "limits", Passed: true, Message: "3 files, 300 B"},
			{Name: "no-identifiers", Passed: false, OnFail: model.OnFailFlag, Message: "out/table1.csv line 4 matches", Files: []string{"out/table1.csv"}},
		},
		Egress: &model.EgressStatus{
			Destination: "partner-outbox", Justification: "Tables\nfor the paper", Turn: 2, ReviewsIn: 1, ReviewsNeeded: 2,
			Paths: []string{"out/figure1.png", "out/raw.csv", "out/table1.csv"},
			Files: []model.EgressFile{file("out/figure1.png", 1, model.VerdictApprove), file("out/raw.csv", 1, model.VerdictReject), file("out/table1.csv", 2, model.VerdictPending)},
			Turns: []model.EgressTurn{
				{Turn: 1, By: "rita", At: at, Changed: []string{"out/figure1.png", "out/raw.csv", "out/table1.csv"}},
				{Turn: 2, By: "rita", At: at.Add(time.Hour), Comment: "counts suppressed", Changed: []string{"out/table1.csv"}},
			},
			Reviews: []model.EgressReviewRecord{
				{Stage: "output-checking", By: "olga", Turn: 1, At: at, Via: "cli", Files: []model.FileReview{
					{Path: "out/figure1.png", Verdict: model.VerdictApprove}, {Path: "out/raw.csv", Verdict: model.VerdictReject, Comment: "row-level"},
					{Path: "out/table1.csv", Verdict: model.VerdictRequestChanges, Comment: "suppress small counts"}}},
			},
		},
	}
	st.Egress.Files[2].Flags = []string{"no-identifiers"}
	st.Files = st.Egress.FileRecords()
	st.ManifestDigest = model.ManifestDigest(st.Files)
	return st
}

func TestPrintEgressStatus(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, egressStatus())
	out := b.String()
	for _, want := range []string{
		"waiting on stage output-checking (role output-checker, 1 of 2 reviews of turn 2)",
		"Destination    partner-outbox",
		"Justification  Tables for the paper",
		"Turn           2 (1 of 2 reviews in)",
		"out/table1.csv   100   2     pending  no-identifiers",
		"out/raw.csv      100   1     reject   -",
		"no-identifiers: FLAGGED for the checkers: out/table1.csv line 4 matches",
		"limits: passed",
		`2. by rita at`,
		`1 file(s) new or changed: "counts suppressed"`,
		"turn 1, stage output-checking, by olga",
		`request-changes out/table1.csv: "suppress small counts"`,
		"(1 review(s) of turn 2 held back until all 2 are in",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "PATH  SIZE  SHA256") {
		t.Errorf("an egress's files are listed twice:\n%s", out)
	}

	st := egressStatus()
	st.State = model.StateRevoked
	st.Egress.Release = &model.EgressRelease{Location: "file:///outbox/egress-ws1-abcdef", ManifestURL: "file:///outbox/egress-ws1-abcdef/release-manifest.json",
		ManifestSHA256: "ab", SignatureURL: "file:///outbox/egress-ws1-abcdef/release-manifest.json.sig", KeyID: "ed25519:12", Files: 1, Bytes: 100}
	st.Egress.Revocation = &model.RevocationRecord{By: "olga", Reason: "agreement ended", Via: "cli", Removed: 4, Note: "nothing else"}
	b.Reset()
	printStatus(&b, st)
	for _, want := range []string{"Location   file:///outbox/egress-ws1-abcdef", "(key ed25519:12)", `Revoked by olga at`, `"agreement ended"; 4 removed`, "note: nothing else"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("released status lacks %q:\n%s", want, b.String())
		}
	}
}

func TestReviewVerdicts(t *testing.T) {
	st := egressStatus()
	st.Egress.Files[0].Verdict = model.VerdictPending // figure1.png open too
	get := func(rf reviewFlags) ([]model.FileReview, error) { return rf.verdicts(st) }

	got, err := get(reviewFlags{approveAll: true, changes: []string{"out/table1.csv=suppress counts under 10"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []model.FileReview{
		{Path: "out/table1.csv", Verdict: model.VerdictRequestChanges, Comment: "suppress counts under 10"},
		{Path: "out/figure1.png", Verdict: model.VerdictApprove},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("verdicts = %+v, want %+v (raw.csv is settled, so not reviewed)", got, want)
	}
	got, err = get(reviewFlags{reject: []string{"out/table1.csv"}, approve: []string{"out/figure1.png"}, overallComment: true})
	if err != nil || len(got) != 2 || got[1].Verdict != model.VerdictReject || got[1].Comment != "" {
		t.Errorf("a rejection answered by the overall comment: %+v, %v", got, err)
	}
	for _, tc := range []struct {
		rf   reviewFlags
		want string
	}{
		{reviewFlags{approve: []string{"out/figure1.png"}}, "no verdict on out/table1.csv"},
		{reviewFlags{approve: []string{"out/other.csv"}, approveAll: true}, `--approve "out/other.csv": not one of request egress-ws1-abcdef's files`},
		{reviewFlags{approve: []string{"out/table1.csv"}, reject: []string{"out/table1.csv=no"}}, `--reject "out/table1.csv": --approve already names it`},
		{reviewFlags{changes: []string{"out/table1.csv"}, approveAll: true}, "give PATH=COMMENT (or an overall --comment)"},
		{reviewFlags{changes: []string{"=why"}, approveAll: true}, "--request-changes: missing path"},
	} {
		if _, err := get(tc.rf); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error mentioning %q", tc.rf, err, tc.want)
		}
	}
	closed := egressStatus()
	for i := range closed.Egress.Files {
		closed.Egress.Files[i].Verdict = model.VerdictApprove
	}
	if _, err := (reviewFlags{approveAll: true}).verdicts(closed); err == nil || !strings.Contains(err.Error(), "no file open for review in turn 2") {
		t.Errorf("reviewing a turn with nothing open: %v", err)
	}
}

func TestExplainEgress(t *testing.T) {
	for field, want := range map[string]string{
		"files[2]": `--file "x": bad`, "justification": `--justification "x": bad`, "by": `--as "x": bad`,
		"destination": `--destination "x": bad`, "files[0].verdict": `files[0].verdict "x": bad`,
	} {
		if err := explainEgress(&requests.FieldError{Field: field, Value: "x", Problem: "bad"}, ""); err == nil || err.Error() != want {
			t.Errorf("field %s: %v, want %s", field, err, want)
		}
	}
}

// writeRelease writes a signed release of two files into a folder, as a
// release to a local destination does, and returns the folder and the
// public key's PEM file.
func writeRelease(t *testing.T) (dir, pubFile string) {
	t.Helper()
	privPEM, pubPEM, err := releasemanifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := releasemanifest.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	m := releasemanifest.Manifest{Request: "egress-ws1-abcdef", Kind: releasemanifest.KindEgress, Project: "d4e6", Workspace: "ws1",
		Destination: "partner-outbox", Requester: "rita", Justification: "tables", ReleasedAt: time.Now().UTC()}
	for p, content := range map[string]string{"out/table1.csv": "clinic,n\nnorth,120\n", "out/figure1.png": "png bytes"} {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(content))
		m.Files = append(m.Files, releasemanifest.File{Path: p, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]),
			ApprovedBy: []releasemanifest.Approval{{By: "olga", Turn: 1}, {By: "oscar", Turn: 1}}})
	}
	m.ManifestDigest = model.ManifestDigest(m.Records())
	body, sig, err := releasemanifest.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, releasemanifest.FileName), body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, releasemanifest.SignatureFileName), sig, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, write(t, "key.pub.pem", string(pubPEM))
}

func TestEgressVerify(t *testing.T) {
	dir, pub := writeRelease(t)
	out, errOut, err := run(t, "egress", "verify", dir, "--public-key", pub)
	if err != nil {
		t.Fatalf("verify of an intact release: %v\n%s", err, errOut)
	}
	for _, want := range []string{"verified: the signature (key ed25519:", "and all 2 file(s), 28 B", "request      egress-ws1-abcdef (project d4e6, workspace ws1, requested by rita)", "destination  partner-outbox"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, "egress", "verify", dir, "--public-key", pub, "-o", "json")
	var res verifyResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || !res.Valid || !res.SignatureValid || res.Manifest == nil || len(res.Manifest.Files) != 2 {
		t.Errorf("verify -o json of an intact release: %v\n%s", err, out)
	}

	// A changed file: the signature holds, the file does not.
	if err := os.WriteFile(filepath.Join(dir, "out", "table1.csv"), []byte("clinic,n\nnorth,3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err = run(t, "egress", "verify", dir, "--public-key", pub)
	var quiet *exitError
	if !errors.As(err, &quiet) || !strings.Contains(errOut, "NOT VERIFIED: the manifest is signed (key ed25519:") ||
		!strings.Contains(errOut, "out/table1.csv") || !strings.Contains(errOut, "extra.txt") {
		t.Errorf("verify of a changed release: %v\n%s", err, errOut)
	}
	out, _, _ = run(t, "egress", "verify", dir, "--public-key", pub, "-o", "json")
	res = verifyResult{}
	if json.Unmarshal([]byte(out), &res) != nil || res.Valid || !res.SignatureValid || len(res.Problems) != 2 {
		t.Errorf("verify -o json of a changed release: %s", out)
	}

	// Another key: nothing is trusted.
	_, otherPub := writeRelease(t)
	_, errOut, err = run(t, "egress", "verify", dir, "--public-key", otherPub)
	if !errors.As(err, &quiet) || !strings.Contains(errOut, "NOT VERIFIED: ") || !strings.Contains(errOut, "was signed with key") {
		t.Errorf("verify with another key: %v\n%s", err, errOut)
	}
	// A private key given as the public key is refused without echoing it.
	privPEM, _, err := releasemanifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, "egress", "verify", dir, "--public-key", write(t, "priv.pem", string(privPEM)))
	if err == nil || !strings.Contains(err.Error(), "this is a private key") || strings.Contains(err.Error(), string(privPEM[40:60])) {
		t.Errorf("verify with a private key: %v", err)
	}
	if _, _, err := run(t, "egress", "verify", filepath.Join(dir, releasemanifest.FileName), "--public-key", pub); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("verify of a file: %v", err)
	}
}
