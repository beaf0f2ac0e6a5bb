package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"

	"github.com/airlockhq/airlock/requests"
)

// run executes the CLI in-process. Dialling Temporal fails the test: these
// commands must decide without a server.
func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := newApp(&out, &errOut)
	a.dial = func() (client.Client, error) {
		t.Errorf("airlock %s contacted the server; it must not", strings.Join(args, " "))
		return nil, errors.New("no server in this test")
	}
	root := a.rootCmd()
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const fixtures = "../model/testdata/fixtures/"

func TestValidateAcceptsTheFixturesUnchanged(t *testing.T) {
	out, errOut, err := run(t, "validate", "-f", fixtures+"import-databricks.yaml", "-f", fixtures+"uploaded-pvc.yaml", "-f", fixtures+"binding.yaml")
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, errOut)
	}
	for _, want := range []string{"example-data-source-1: valid Import", "ds-782b4a1f07234229980f75f2f651412a: valid Uploaded", "dsb-782b4a1f07234229980f75f2f651412a: valid binding"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestValidateRefusesWithFieldPaths(t *testing.T) {
	data, err := os.ReadFile(fixtures + "import-databricks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bad := write(t, "bad.yaml", strings.Replace(string(data), "type: databricks", "type: dbx", 1))
	_, errOut, err := run(t, "validate", "-f", bad)
	if err == nil {
		t.Fatal("validate accepted an unknown connection type")
	}
	want := `spec.connections[0].type: unknown connection type "dbx" (expected one of: databricks, s3, azureblob, dlt, file, pvc)`
	if !strings.Contains(errOut, want) || !strings.Contains(errOut, "nothing was started") {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}

	out, _, err := run(t, "validate", "-f", bad, "-o", "json")
	if err == nil {
		t.Fatal("validate -o json accepted an invalid document")
	}
	var res struct {
		Valid  bool
		Errors []struct{ Field, Error string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("validate -o json printed no JSON: %v\n%s", err, out)
	}
	if res.Valid || len(res.Errors) == 0 || res.Errors[0].Field != "spec.connections[0].type" {
		t.Errorf("validate -o json = %+v", res)
	}
}

func TestImportRefusesBeforeStartingAnything(t *testing.T) {
	good := "../examples/datasources/sample-file.yaml"
	bad := write(t, "bad.yaml", "apiVersion: xlscsde.nhs.uk/v1\nkind: AnalyticsWorkspaceDataSource\nmetadata: {}\nspec: {type: Import}\n")
	uploaded := fixtures + "uploaded-pvc.yaml"
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"invalid document", []string{"import", "-f", bad, "--workspace", "ws", "--as", "rita"}, "metadata.name"},
		{"no requester", []string{"import", "-f", good}, "--as"},
		{"no workspace", []string{"import", "-f", fixtures + "import-databricks.yaml", "--as", "rita"}, "--workspace"},
		{"workspace contradicts binding", []string{"import", "-f", good, "--workspace", "other-ws", "--as", "rita"}, "contradicts binding"},
		{"bad workspace name", []string{"import", "-f", fixtures + "import-databricks.yaml", "--workspace", "../etc", "--as", "rita"}, "--workspace"},
		{"uploaded data source", []string{"import", "-f", uploaded, "--workspace", "ws", "--as", "rita"}, "only Import data sources are imported"},
		{"no file", []string{"import", "--as", "rita", "--workspace", "ws"}, "-f FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, err := run(t, tc.args...)
			if err == nil {
				t.Fatal("import accepted it")
			}
			if msg := err.Error() + errOut; !strings.Contains(msg, tc.want) {
				t.Errorf("refusal %q does not mention %q", msg, tc.want)
			}
		})
	}
}

func TestDecisionFlagsCheckedBeforeContactingTheServer(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"approve", "id-1", "--as", "dana"}, "--stage"},
		{[]string{"approve", "id-1", "--stage", "s"}, "--as"},
		{[]string{"reject", "id-1", "--stage", "s", "--as", "ian"}, "--comment"},
		{[]string{"cancel", "id-1"}, "--as"},
		{[]string{"status"}, "ID"},
		{[]string{"list", "--state", "SLEEPING"}, `--state "SLEEPING": unknown state`},
		{[]string{"list", "--kind", "export"}, `--kind "export": unknown kind (expected one of: import, upload, egress)`},
		{[]string{"list", "--awaiting-role", "ig' OR 'a'='a"}, "--awaiting-role"},
		{[]string{"list", "--project", "P 1"}, "--project"},
		{[]string{"list", "--limit", "0"}, "--limit 0"},
		{[]string{"status", "x", "-o", "yaml"}, "expected text or json"},
	} {
		_, _, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("airlock %s: error %v, want one mentioning %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

// The requests package's errors read in the CLI's words: a missing request
// says how to find the id, a refused field names its flag.
func TestExplain(t *testing.T) {
	if err := explain(requests.ErrNotFound, "import-x-abcdef"); err == nil || err.Error() != "no request \"import-x-abcdef\" in this namespace: check the id with `airlock list`" {
		t.Errorf("not found: %v", err)
	}
	for field, flag := range map[string]string{"awaiting_role": "--awaiting-role", "requester": "--as", "spec.type": "spec.type"} {
		err := explain(&requests.FieldError{Field: field, Value: "v", Problem: "bad"}, "")
		if want := flag + ` "v": bad`; err == nil || err.Error() != want {
			t.Errorf("field %s: %v, want %s", field, err, want)
		}
	}
	var out, errOut bytes.Buffer
	a := newApp(&out, &errOut)
	err := a.refusal(&requests.RefusedError{Reason: "the requester never approves"}, "id-1")
	var quiet *exitError
	if !errors.As(err, &quiet) || errOut.String() != "refused: the requester never approves\n" {
		t.Errorf("refusal: %v, stderr %q", err, errOut.String())
	}
	errOut.Reset()
	if err := a.refusal(errors.New("connection reset"), "id-1"); errors.As(err, &quiet) || errOut.Len() != 0 {
		t.Errorf("a transport error was shown as a refusal: %v, stderr %q", err, errOut.String())
	}
}
