package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

// tableProducer is a Producer that writes each table object as CSV files
// under "<table>/", the way a dlt pipeline lays out its output. Its files'
// contents are fixed so the test can check their digests.
type tableProducer struct {
	files    map[string]string // path -> content, written as produced
	runs     int
	produced func(dir string)
}

func (p *tableProducer) List(_ context.Context, obj model.Object) ([]connectors.Item, error) {
	return []connectors.Item{{Path: obj.Table.Name + "/", Size: -1}}, nil
}
func (p *tableProducer) Open(context.Context, connectors.Item, int64) (io.ReadCloser, error) {
	return nil, errors.New("a producer's files are never opened from the source")
}
func (p *tableProducer) Instrument() connectors.Instrument {
	return connectors.Instrument{Name: "test producer", Version: "1"}
}
func (p *tableProducer) Describe() string               { return "test producer" }
func (p *tableProducer) Produces(obj model.Object) bool { return obj.Table != nil }
func (p *tableProducer) Produce(_ context.Context, obj model.Object, dir string, progress func(string)) (connectors.Produced, error) {
	p.runs++
	progress("writing " + obj.Table.Name)
	out := connectors.Produced{
		Tables:     []connectors.Table{{Name: obj.Table.Name, Rows: 2, Columns: []connectors.Column{{Name: "id", Type: "bigint"}, {Name: "name", Type: "text"}}}},
		Properties: map[string]string{"load_id": "123"},
	}
	for path, content := range p.files {
		full := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return out, err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return out, err
		}
		out.Files = append(out.Files, connectors.ProducedFile{Path: path, EncodingFormat: "text/csv", Table: obj.Table.Name})
	}
	if p.produced != nil {
		p.produced(dir)
	}
	return out, nil
}

func newTestActivities(t *testing.T, p connectors.Source) *Activities {
	t.Helper()
	staging, err := localstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Activities{
		Staging:    staging,
		Workspaces: staging,
		Sources:    connectors.Registry{model.ConnDLT: func(context.Context, model.Connection) (connectors.Source, error) { return p, nil }},
		WorkDir:    t.TempDir(),
		Secrets:    &secrets.Provider{},
	}
}

func tableObject(name string) model.Object {
	return model.Object{Table: &model.TableObject{Name: name, Connection: "db"}}
}

func runExtract(t *testing.T, a *Activities, in ExtractObjectInput) (ExtractObjectResult, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	val, err := env.ExecuteActivity(a.ExtractObject, in)
	if err != nil {
		return ExtractObjectResult{}, err
	}
	var res ExtractObjectResult
	if err := val.Get(&res); err != nil {
		t.Fatal(err)
	}
	return res, nil
}

func TestExtractProducedObject(t *testing.T) {
	p := &tableProducer{files: map[string]string{
		"patients/1.csv": "id,name\n1,a\n",
		"patients/2.csv": "id,name\n2,b\n",
	}}
	a := newTestActivities(t, p)
	obj := tableObject("patients")
	items, _ := p.List(context.Background(), obj)
	res, err := runExtract(t, a, ExtractObjectInput{RequestID: "req-1", Connection: model.Connection{Type: model.ConnDLT, Name: "db"}, Object: obj, Items: items})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 2 {
		t.Fatalf("files = %+v; want the two produced files", res.Files)
	}
	for _, f := range res.Files {
		sum := sha256.Sum256([]byte(p.files[f.Path]))
		if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(p.files[f.Path])) {
			t.Errorf("%s: size %d sha256 %s; want the produced bytes' size and digest", f.Path, f.Size, f.SHA256)
		}
		rc, err := a.Staging.Open(context.Background(), "req-1/"+f.Path)
		if err != nil {
			t.Fatalf("%s is not in staging: %v", f.Path, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != p.files[f.Path] {
			t.Errorf("staged %s = %q, want %q", f.Path, got, p.files[f.Path])
		}
	}
	ext := res.Extraction
	if len(ext.Tables) != 1 || ext.Tables[0].Rows != 2 || ext.TableFiles["patients/1.csv"] != "patients" || ext.Properties["load_id"] != "123" {
		t.Errorf("extraction = %+v; want the table, its files and the run's properties", ext)
	}
	if _, err := os.Stat(a.workDir("req-1", 0)); !os.IsNotExist(err) {
		t.Errorf("the work folder is still there after success (%v)", err)
	}
	crate, err := BuildCrate(CrateInput{Request: model.RequestStatus{ID: "req-1", Files: res.Files}, Extractions: []Extraction{ext}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"variableMeasured"`, `"name": "id"`, `"description": "bigint"`, "Rows of table patients (2 rows", "load_id=123"} {
		if !strings.Contains(string(crate), want) {
			t.Errorf("crate lacks %s", want)
		}
	}
}

func TestExtractRefusesFilesOutsideThePlan(t *testing.T) {
	p := &tableProducer{files: map[string]string{"elsewhere/x.csv": "x\n"}}
	a := newTestActivities(t, p)
	obj := tableObject("patients")
	items, _ := p.List(context.Background(), obj)
	_, err := runExtract(t, a, ExtractObjectInput{RequestID: "req-2", Connection: model.Connection{Type: model.ConnDLT, Name: "db"}, Object: obj, Items: items})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || !strings.Contains(err.Error(), "produced elsewhere/x.csv, outside what it planned (patients/)") {
		t.Fatalf("err = %v; want a non-retryable refusal naming the file and the plan", err)
	}
	if files, _ := a.Staging.List(context.Background(), "req-2"); len(files) != 0 {
		t.Errorf("staging holds %v after a refused production", files)
	}
	if _, err := os.Stat(a.workDir("req-2", 0)); !os.IsNotExist(err) {
		t.Errorf("the work folder is still there after a non-retryable failure (%v)", err)
	}
}

func TestPlanRefusesAFileInsideAnotherObjectsFolder(t *testing.T) {
	p := &tableProducer{}
	a := newTestActivities(t, p)
	a.Sources[model.ConnFile] = func(context.Context, model.Connection) (connectors.Source, error) {
		return fileList{{Path: "patients/extra.csv", Size: 3}}, nil
	}
	ds := model.DataSource{Spec: model.DataSourceSpec{
		Connections: []model.Connection{{Type: model.ConnDLT, Name: "db"}, {Type: model.ConnFile, Name: "files"}},
		Objects:     []model.Object{tableObject("patients"), {File: &model.FileObject{Path: "patients/extra.csv", Connection: "files"}}},
	}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.PlanImport, PlanImportInput{DataSource: ds})
	if err == nil || !strings.Contains(err.Error(), `spec.objects[1] (file patients/extra.csv) and spec.objects[0] both yield "patients/extra.csv" (as "patients/")`) {
		t.Fatalf("err = %v; want the overlap between the table's folder and the file refused", err)
	}
}

// fileList is a Source that lists fixed items.
type fileList []connectors.Item

func (l fileList) List(context.Context, model.Object) ([]connectors.Item, error) { return l, nil }
func (l fileList) Open(context.Context, connectors.Item, int64) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("abc")), nil
}
func (l fileList) Instrument() connectors.Instrument { return connectors.Instrument{Name: "list"} }
func (l fileList) Describe() string                  { return "list" }

// leakySource fails with an error that quotes the secret it was given, as
// some client libraries do with URLs that carry a token.
type leakySource struct{ fileList }

func (leakySource) List(context.Context, model.Object) ([]connectors.Item, error) {
	return nil, errors.New("GET https://store.example/c?sig=tok-9f8e7d6c5b4a failed: 403")
}

func TestErrorsAreScrubbedOfResolvedSecrets(t *testing.T) {
	a := newTestActivities(t, nil)
	a.Secrets = &secrets.Provider{Getenv: func(k string) string {
		if k == secrets.EnvVar("sas") {
			return "tok-9f8e7d6c5b4a"
		}
		return ""
	}}
	a.Sources[model.ConnDLT] = func(ctx context.Context, conn model.Connection) (connectors.Source, error) {
		if _, err := a.Secrets.Lookup(ctx, "sas"); err != nil {
			return nil, err
		}
		return leakySource{}, nil
	}
	ds := model.DataSource{Spec: model.DataSourceSpec{
		Connections: []model.Connection{{Type: model.ConnDLT, Name: "db"}},
		Objects:     []model.Object{tableObject("patients")},
	}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	_, err := env.ExecuteActivity(a.PlanImport, PlanImportInput{DataSource: ds})
	if err == nil || strings.Contains(err.Error(), "tok-9f8e7d6c5b4a") || !strings.Contains(err.Error(), "sig="+secrets.Redacted) {
		t.Fatalf("err = %v; want the secret replaced by %s", err, secrets.Redacted)
	}
}
