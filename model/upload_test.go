package model

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// awaitingUpload is an upload waiting for rita's files.
func awaitingUpload(t *testing.T) *RequestStatus {
	r := awaitingRequest(twoStagePolicy(t))
	r.ID, r.Kind, r.State = "upload-d4e6-abc123", KindUpload, StateAwaitingUpload
	r.Files, r.ManifestDigest = []FileRecord{}, ""
	r.Stages[0].State = StagePending
	return r
}

func confirmation(by string, paths ...string) UploadConfirmation {
	c := UploadConfirmation{By: by, Via: "api"}
	for i, p := range paths {
		c.Files = append(c.Files, ExpectedFile{Path: p, Size: int64(100 * (i + 1))})
	}
	return c
}

func TestCheckConfirmationAccepted(t *testing.T) {
	r := awaitingUpload(t)
	if err := r.CheckConfirmation(confirmation("rita", "visits.csv", "data/2024/patients.parquet")); err != nil {
		t.Fatalf("the requester's confirmation of clean, distinct files is accepted: %v", err)
	}
	c := confirmation("rita", "empty.csv")
	c.Files[0].Size = 0
	if err := r.CheckConfirmation(c); err != nil {
		t.Fatalf("an empty file may be confirmed: %v", err)
	}
}

func TestCheckConfirmationRefusals(t *testing.T) {
	withSize := func(c UploadConfirmation, size int64) UploadConfirmation {
		c.Files[0].Size = size
		return c
	}
	for _, tc := range []struct {
		name string
		c    UploadConfirmation
		want []string
	}{
		{"nobody", confirmation("", "a.csv"), []string{"by: missing", "the requester, rita"}},
		{"someone else", confirmation("dana", "a.csv"), []string{"dana may not confirm request upload-d4e6-abc123", "only its requester (rita)"}},
		{"no files", confirmation("rita"), []string{"files: empty", "upload at least one file"}},
		{"absolute", confirmation("rita", "/etc/passwd"), []string{"files[0].path", "absolute path"}},
		{"escapes", confirmation("rita", "a.csv", "../b.csv"), []string{"files[1].path", "'..'"}},
		{"not clean", confirmation("rita", "data//a.csv"), []string{"files[0].path", `send it as "data/a.csv"`}},
		{"bookkeeping", confirmation("rita", ".uploads/x.json"), []string{"files[0].path", "upload bookkeeping"}},
		{"crate", confirmation("rita", "ro-crate-metadata.json"), []string{"files[0].path", "Airlock writes its own", "put it in a folder"}},
		{"binding", confirmation("rita", "airlock-binding.yaml"), []string{"Airlock writes its own"}},
		{"duplicate", confirmation("rita", "a.csv", "b.csv", "a.csv"), []string{"files[2].path", "listed twice (also files[0])"}},
		{"negative size", withSize(confirmation("rita", "a.csv"), -1), []string{"files[0].size", "negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused(t, awaitingUpload(t).CheckConfirmation(tc.c), tc.want...)
		})
	}
	// Only while the request waits for its files.
	r := awaitingUpload(t)
	r.State = StateChecking
	refused(t, r.CheckConfirmation(confirmation("rita", "a.csv")), "is CHECKING", "wait for the checks")
	for _, st := range []State{StateAwaitingApproval, StateReleasing, StateCompleted, StateExpired, StateCancelled} {
		r.State = st
		refused(t, r.CheckConfirmation(confirmation("rita", "a.csv")), "is "+string(st), "only while it is AWAITING_UPLOAD")
	}
	// A subfolder named like the bookkeeping folder is an ordinary folder.
	if err := awaitingUpload(t).CheckConfirmation(confirmation("rita", "data/.uploads/a.csv", "data/ro-crate-metadata.json")); err != nil {
		t.Errorf("only the top-level names are reserved: %v", err)
	}
}

// With AttestedRoles, a role the entry point attests counts as membership
// for decisions and cancellations; without it only the roster counts.
func TestAttestedRoles(t *testing.T) {
	r := awaitingRequest(twoStagePolicy(t))
	zed := decision("engineering", "zed", Approve)
	zed.Roles = []string{"data-engineer"}
	refused(t, r.CheckDecision(zed, testDirectory), "zed is not a member of role data-engineer in the directory, so cannot decide")

	attesting := testDirectory
	attesting.AttestedRoles = true
	if err := r.CheckDecision(zed, attesting); err != nil {
		t.Fatalf("an attested data-engineer is accepted when the directory trusts attested roles: %v", err)
	}
	other := decision("engineering", "zed", Approve)
	other.Roles = []string{"information-governance"}
	refused(t, r.CheckDecision(other, attesting), "zed is not a member of role data-engineer in the directory nor among the roles their sign-in attests")
	refused(t, r.CheckDecision(decision("engineering", "zed", Approve), attesting), "nor among the roles their sign-in attests")
	// Every other rule still holds: the requester never approves, whatever her roles.
	rita := decision("engineering", "rita", Approve)
	rita.Roles = []string{"data-engineer"}
	refused(t, r.CheckDecision(rita, attesting), "requester never approves")

	cancel := CancelRequest{By: "zed", Roles: []string{"information-governance"}}
	refused(t, r.CheckCancel(cancel, testDirectory), "zed may not cancel", "(data-engineer, information-governance)")
	if err := r.CheckCancel(cancel, attesting); err != nil {
		t.Errorf("an attested member of a stage's role may cancel: %v", err)
	}
	cancel.Roles = []string{"researcher"}
	refused(t, r.CheckCancel(cancel, attesting), "zed may not cancel", "nor among the roles their sign-in attests")

	// The roster still counts when attested roles do.
	if err := r.CheckDecision(decision("engineering", "dave", Approve), attesting); err != nil {
		t.Errorf("a roster member without attested roles is accepted: %v", err)
	}
}

func TestPolicyBookDirectoryAttestedRoles(t *testing.T) {
	p := twoStagePolicy(t)
	book := &PolicyBook{Roster: map[string][]string{"dave": {"data-engineer"}}}
	if book.Directory(p).AttestedRoles {
		t.Errorf("a book without AttestedRoles makes a directory that trusts attested roles")
	}
	book.AttestedRoles = true
	d := book.Directory(p)
	if !d.AttestedRoles || !d.HasRole("dave", "data-engineer") {
		t.Errorf("directory = %+v; want the roster's members and AttestedRoles", d)
	}
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var back Directory
	if err := json.Unmarshal(data, &back); err != nil || !back.AttestedRoles {
		t.Errorf("AttestedRoles does not survive the directory snapshot's JSON: %s (%v)", data, err)
	}
}

// An upload's expiry and checks appear in the status document; an import's
// document has neither key.
func TestStatusUploadFieldsJSON(t *testing.T) {
	imp := awaitingRequest(twoStagePolicy(t))
	data, err := json.Marshal(imp)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"expires_at"`, `"checks"`} {
		if strings.Contains(string(data), key) {
			t.Errorf("an import's status holds %s: %s", key, data)
		}
	}
	up := awaitingUpload(t)
	at := time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)
	up.ExpiresAt = &at
	up.Checks = []CheckResult{{Name: "files", Passed: false, Message: "missing: a.csv"}}
	data, err = json.Marshal(up)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["expires_at"] != "2025-03-02T12:00:00Z" || doc["kind"] != "upload" || doc["state"] != "AWAITING_UPLOAD" {
		t.Errorf("status = %s", data)
	}
	checks, _ := doc["checks"].([]any)
	if len(checks) != 1 || checks[0].(map[string]any)["name"] != "files" || checks[0].(map[string]any)["passed"] != false {
		t.Errorf("checks = %v", doc["checks"])
	}
	d := DecisionRequest{Stage: "s", By: "b", Decision: Approve, ManifestDigest: "sha256:x", Roles: []string{"r"}}
	data, _ = json.Marshal(d)
	assertContains(t, string(data), `"roles":["r"]`)
	data, _ = json.Marshal(DecisionRequest{Stage: "s"})
	if strings.Contains(string(data), "roles") {
		t.Errorf("a decision without roles names them: %s", data)
	}
}
