package model

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// readFixture returns a fixture exactly as the platform writes it.
func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "fixtures", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return data
}

// mustParse parses documents that must be accepted.
func mustParse(t *testing.T, file string, data []byte) Documents {
	t.Helper()
	docs, err := ParseDocuments(file, data)
	if err != nil {
		t.Fatalf("ParseDocuments(%s) refused a valid document:\n%v", file, err)
	}
	return docs
}

// refusal parses a document that must be refused and returns its field errors.
func refusal(t *testing.T, file, doc string) FieldErrors {
	t.Helper()
	docs, err := ParseDocuments(file, []byte(doc))
	if err == nil {
		t.Fatalf("ParseDocuments accepted a document it must refuse:\n%s", doc)
	}
	if len(docs.DataSources) != 0 || len(docs.Bindings) != 0 {
		t.Errorf("on error nothing is returned, got %+v", docs)
	}
	fes, ok := AsFieldErrors(err)
	if !ok {
		t.Fatalf("error is %T, want FieldErrors: %v", err, err)
	}
	if len(fes) == 0 {
		t.Fatalf("empty FieldErrors returned as an error")
	}
	return fes
}

// errorAt returns the error with the given field path.
func errorAt(t *testing.T, fes FieldErrors, path string) FieldError {
	t.Helper()
	for _, fe := range fes {
		if fe.Path == path {
			return fe
		}
	}
	t.Fatalf("no error at path %q; got:\n%v", path, fes)
	return FieldError{}
}

func assertContains(t *testing.T, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q\n  does not contain %q", s, sub)
		}
	}
}

// mutate replaces old (which must occur exactly once) in doc.
func mutate(t *testing.T, doc, old, new string) string {
	t.Helper()
	if n := strings.Count(doc, old); n != 1 {
		t.Fatalf("mutation anchor %q occurs %d times in the base document, want 1", old, n)
	}
	return strings.Replace(doc, old, new, 1)
}

func TestFixtureImportDatabricks(t *testing.T) {
	docs := mustParse(t, "import-databricks.yaml", readFixture(t, "import-databricks.yaml"))
	if len(docs.DataSources) != 1 || len(docs.Bindings) != 0 {
		t.Fatalf("want 1 data source and no binding, got %d and %d", len(docs.DataSources), len(docs.Bindings))
	}
	ds := docs.DataSources[0]
	if ds.APIVersion != APIVersion || ds.Kind != KindDataSource {
		t.Errorf("identity = %s %s", ds.APIVersion, ds.Kind)
	}
	if ds.Metadata.Name != "example-data-source-1" {
		t.Errorf("metadata.name = %q", ds.Metadata.Name)
	}
	if got := ds.Metadata.Labels["xlscsde.nhs.uk/type"]; got != "import" {
		t.Errorf("label xlscsde.nhs.uk/type = %q", got)
	}
	s := ds.Spec
	if s.Type != TypeImport {
		t.Errorf("spec.type = %q", s.Type)
	}
	if s.Publisher.Organisation != "NHS Greater Manchester ICB" ||
		s.Publisher.Contact.Name != "Data Engineer One" || s.Publisher.Contact.Role != "AWMS Developer" {
		t.Errorf("publisher = %+v", s.Publisher)
	}
	if s.Project.ID != "d4e6" {
		t.Errorf("project.id = %q", s.Project.ID)
	}
	if s.DisplayName != "NWSDE Data Engineering Team Sample Dataset - GM Attendances" {
		t.Errorf("displayName = %q", s.DisplayName)
	}
	assertContains(t, s.Description, "Contains two sample tables", "All data is synthetic")
	assertContains(t, s.License, "This sample data may ONLY be used")

	if len(s.Connections) != 1 {
		t.Fatalf("want 1 connection, got %+v", s.Connections)
	}
	c := s.Connections[0]
	if c.Type != ConnDatabricks || c.Name != "databricks" ||
		c.URL != "https://example-databricks-instance.xlscsde.nhs.uk/path/to/datasource.location" {
		t.Errorf("connection = %+v", c)
	}
	if c.Credentials.UserKey != "DatabricksUsername" || c.Credentials.PasswordKey != "DatabricksPassword" {
		t.Errorf("credentials = %+v", c.Credentials)
	}
	wantKeys := map[string]string{"userKey": "DatabricksUsername", "passwordKey": "DatabricksPassword"}
	if got := c.Credentials.Keys(); !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("Credentials.Keys() = %v, want %v", got, wantKeys)
	}
	if got, ok := ds.Connection("databricks"); !ok || got.Type != ConnDatabricks {
		t.Errorf("Connection(databricks) = %+v, %v", got, ok)
	}
	if _, ok := ds.Connection("nope"); ok {
		t.Errorf("Connection(nope) found a connection")
	}

	if len(s.Objects) != 2 {
		t.Fatalf("want 2 objects, got %+v", s.Objects)
	}
	for i, want := range []string{"patients", "attendances"} {
		o := s.Objects[i]
		if o.Table == nil || o.File != nil || o.Prefix != nil {
			t.Fatalf("objects[%d] should be a table only: %+v", i, o)
		}
		if o.Table.Name != want || o.Table.Connection != "databricks" {
			t.Errorf("objects[%d].table = %+v", i, *o.Table)
		}
		if o.ConnectionName() != "databricks" || o.Describe() != "table "+want {
			t.Errorf("objects[%d]: ConnectionName %q, Describe %q", i, o.ConnectionName(), o.Describe())
		}
	}
}

func TestFixtureUploadedPVC(t *testing.T) {
	docs := mustParse(t, "uploaded-pvc.yaml", readFixture(t, "uploaded-pvc.yaml"))
	if len(docs.DataSources) != 1 || len(docs.Bindings) != 0 {
		t.Fatalf("want 1 data source and no binding, got %d and %d", len(docs.DataSources), len(docs.Bindings))
	}
	ds := docs.DataSources[0]
	if ds.Metadata.Name != "ds-782b4a1f07234229980f75f2f651412a" || ds.Spec.Type != TypeUploaded {
		t.Errorf("name %q type %q", ds.Metadata.Name, ds.Spec.Type)
	}
	if len(ds.Spec.Connections) != 1 {
		t.Fatalf("want 1 connection, got %+v", ds.Spec.Connections)
	}
	c := ds.Spec.Connections[0]
	if c.Type != ConnPVC || c.Name != "pvc-782b4a1f07234229980f75f2f651412a" || c.URL != "" {
		t.Errorf("connection = %+v", c)
	}
	if len(c.Credentials.Keys()) != 0 {
		t.Errorf("pvc connection has no credentials, got %v", c.Credentials.Keys())
	}
	if len(ds.Spec.Objects) != 0 {
		t.Errorf("an uploaded data source lists no objects, got %+v", ds.Spec.Objects)
	}
	if ds.Spec.Project.ID != "d4e6" || ds.Spec.Publisher.Organisation != "Some Organisation" {
		t.Errorf("spec = %+v", ds.Spec)
	}
}

func TestFixtureBinding(t *testing.T) {
	docs := mustParse(t, "binding.yaml", readFixture(t, "binding.yaml"))
	if len(docs.DataSources) != 0 || len(docs.Bindings) != 1 {
		t.Fatalf("want no data source and 1 binding, got %d and %d", len(docs.DataSources), len(docs.Bindings))
	}
	b := docs.Bindings[0]
	want := DataBinding{
		APIVersion: APIVersion,
		Kind:       KindDataBinding,
		Metadata:   ObjectMeta{Name: "dsb-782b4a1f07234229980f75f2f651412a"},
		Spec:       DataBindingSpec{Workspace: "advanced-generic-workspace", DataSource: "ds-782b4a1f07234229980f75f2f651412a"},
	}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("binding = %+v, want %+v", b, want)
	}
}

func TestMultiDocumentStream(t *testing.T) {
	stream := string(readFixture(t, "uploaded-pvc.yaml")) + "---\n" + string(readFixture(t, "binding.yaml"))
	docs := mustParse(t, "upload.yaml", []byte(stream))
	if len(docs.DataSources) != 1 || len(docs.Bindings) != 1 {
		t.Fatalf("want 1 data source and 1 binding, got %d and %d", len(docs.DataSources), len(docs.Bindings))
	}
	if docs.Bindings[0].Spec.DataSource != docs.DataSources[0].Metadata.Name {
		t.Errorf("binding names %q, data source is %q", docs.Bindings[0].Spec.DataSource, docs.DataSources[0].Metadata.Name)
	}

	// A leading and a trailing separator make empty documents, which are skipped.
	docs = mustParse(t, "upload.yaml", []byte("---\n"+stream+"---\n"))
	if len(docs.DataSources) != 1 || len(docs.Bindings) != 1 {
		t.Errorf("with empty documents: %d data sources, %d bindings", len(docs.DataSources), len(docs.Bindings))
	}

	// Two data sources in one stream.
	two := string(readFixture(t, "uploaded-pvc.yaml")) + "---\n" + string(readFixture(t, "import-databricks.yaml"))
	docs = mustParse(t, "two.yaml", []byte(two))
	if len(docs.DataSources) != 2 || docs.DataSources[1].Metadata.Name != "example-data-source-1" {
		t.Errorf("two data sources: %+v", docs.DataSources)
	}
}

func TestMultiDocumentErrorsNameTheDocument(t *testing.T) {
	stream := string(readFixture(t, "uploaded-pvc.yaml")) + "---\n" +
		strings.Replace(string(readFixture(t, "binding.yaml")), "workspace: advanced-generic-workspace", "workspace: Advanced Workspace", 1)
	fes := refusal(t, "upload.yaml", stream)
	if len(fes) != 1 {
		t.Fatalf("want 1 error, got:\n%v", fes)
	}
	fe := errorAt(t, fes, "spec.workspace")
	assertContains(t, fe.Msg, "document 2: ", `"Advanced Workspace"`)
	if fe.File != "upload.yaml" {
		t.Errorf("File = %q", fe.File)
	}
}

func TestEmptyInputRefused(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n", "---\n"} {
		fes := refusal(t, "empty.yaml", in)
		assertContains(t, fes.Error(), "empty.yaml: no documents found", KindDataSource)
	}
}

// baseDataSource is a valid Import data source with two connections and two
// objects; each refusal case changes one thing.
const baseDataSource = `apiVersion: xlscsde.nhs.uk/v1
kind: AnalyticsWorkspaceDataSource
metadata:
  name: sample-source
spec:
  type: Import
  publisher:
    organisation: Example Trust
    contact:
      name: Dana Engineer
  project:
    id: d4e6
  displayName: Sample data
  connections:
  - type: databricks
    name: warehouse
    url: https://dbx.example.org
    credentials:
      userKey: DatabricksUsername
      passwordKey: DatabricksPassword
  - type: file
    name: files
    url: file:///sample-data
  objects:
  - table:
      name: patients
      connection: warehouse
  - file:
      path: data/visits.csv
      connection: files
`

func TestBaseDataSourceIsValid(t *testing.T) {
	docs := mustParse(t, "ds.yaml", []byte(baseDataSource))
	o := docs.DataSources[0].Spec.Objects[1]
	if o.File == nil || o.File.Path != "data/visits.csv" || o.Describe() != "file data/visits.csv" || o.ConnectionName() != "files" {
		t.Errorf("file object = %+v", o)
	}
}

func TestDataSourceRefusals(t *testing.T) {
	cases := []struct {
		name      string
		old, new  string // mutation of baseDataSource
		path      string // the field path the error names
		contains  []string
		wantCount int // how many errors in all
	}{
		{
			name: "unknown connection type",
			old:  "  - type: databricks\n", new: "  - type: dbx\n",
			path:      "spec.connections[0].type",
			contains:  []string{`unknown connection type "dbx" (expected one of: databricks, s3, azureblob, dlt, file, pvc)`},
			wantCount: 1,
		},
		{
			name: "object names a missing connection",
			old:  "      connection: warehouse\n", new: "      connection: lakehouse\n",
			path:      "spec.objects[0].table.connection",
			contains:  []string{`no connection named "lakehouse" in spec.connections (expected one of: files, warehouse)`},
			wantCount: 1,
		},
		{
			name: "missing metadata.name",
			old:  "  name: sample-source\n", new: "  labels:\n    team: de\n",
			path:      "metadata.name",
			contains:  []string{"missing", "give the data source a name", NameRule},
			wantCount: 1,
		},
		{
			name: "invalid metadata.name",
			old:  "  name: sample-source\n", new: "  name: Sample_Source\n",
			path:      "metadata.name",
			contains:  []string{`invalid name "Sample_Source"`, NameRule},
			wantCount: 1,
		},
		{
			name: "wrong apiVersion",
			old:  "apiVersion: xlscsde.nhs.uk/v1\n", new: "apiVersion: xlscsde.nhs.uk/v2\n",
			path:      "apiVersion",
			contains:  []string{`unsupported apiVersion "xlscsde.nhs.uk/v2" (expected xlscsde.nhs.uk/v1)`},
			wantCount: 1,
		},
		{
			name: "wrong kind",
			old:  "kind: AnalyticsWorkspaceDataSource\n", new: "kind: AnalyticsWorkspaceDataSet\n",
			path:      "kind",
			contains:  []string{`unsupported kind "AnalyticsWorkspaceDataSet"`, KindDataSource, KindDataBinding},
			wantCount: 1,
		},
		{
			name: "unknown field at top level",
			old:  "kind: AnalyticsWorkspaceDataSource\n", new: "kind: AnalyticsWorkspaceDataSource\nstatus: ready\n",
			path:      "status",
			contains:  []string{`unknown field "status" (expected one of: apiVersion, kind, metadata, spec)`},
			wantCount: 1,
		},
		{
			name: "unknown field in spec",
			old:  "  displayName: Sample data\n", new: "  displayName: Sample data\n  colour: blue\n",
			path:      "spec.colour",
			contains:  []string{`unknown field "colour" (expected one of: connections, description, displayName, license, objects, project, publisher, type)`},
			wantCount: 1,
		},
		{
			name: "unknown field in a connection",
			old:  "    url: https://dbx.example.org\n", new: "    url: https://dbx.example.org\n    warehouseId: abc123\n",
			path:      "spec.connections[0].warehouseId",
			contains:  []string{`unknown field "warehouseId" (expected one of: credentials, endpoint, name, pathStyle, prefix, region, type, url)`},
			wantCount: 1,
		},
		{
			name: "unknown field in credentials",
			old:  "      passwordKey: DatabricksPassword\n", new: "      passwordKey: DatabricksPassword\n      password: hunter2\n",
			path: "spec.connections[0].credentials.password",
			contains: []string{`unknown field "password" (expected one of: `,
				"accessKeyIdKey", "clientIdKey", "passwordKey", "tokenKey", "userKey"},
			wantCount: 1,
		},
		{
			name: "field given twice",
			old:  "    name: warehouse\n", new: "    name: warehouse\n    name: lakehouse\n",
			path:      "spec.connections[0].name",
			contains:  []string{"field given twice"},
			wantCount: 1,
		},
		{
			name:      "list where a mapping is expected",
			old:       "  publisher:\n    organisation: Example Trust\n    contact:\n      name: Dana Engineer\n",
			new:       "  publisher:\n  - Example Trust\n  - Dana Engineer\n",
			path:      "spec.publisher",
			contains:  []string{"expected a mapping with fields contact, organisation, found a list"},
			wantCount: 1,
		},
		{
			name:      "mapping where a list is expected",
			old:       "  objects:\n  - table:\n      name: patients\n      connection: warehouse\n  - file:\n      path: data/visits.csv\n      connection: files\n",
			new:       "  objects:\n    table:\n      name: patients\n      connection: warehouse\n",
			path:      "spec.objects",
			contains:  []string{`expected a list (items starting with "- "), found a mapping`},
			wantCount: 1,
		},
		{
			name: "mapping where a single value is expected",
			old:  "  displayName: Sample data\n", new: "  displayName:\n    en: Sample data\n",
			path:      "spec.displayName",
			contains:  []string{"expected a single value, found a mapping"},
			wantCount: 1,
		},
		{
			name:      "object with both table and file",
			old:       "  - table:\n      name: patients\n      connection: warehouse\n",
			new:       "  - table:\n      name: patients\n      connection: warehouse\n    file:\n      path: patients.csv\n      connection: files\n",
			path:      "spec.objects[0]",
			contains:  []string{"give exactly one of table, file or prefix (found 2)"},
			wantCount: 1,
		},
		{
			name:      "object with nothing",
			old:       "  - table:\n      name: patients\n      connection: warehouse\n",
			new:       "  - {}\n",
			path:      "spec.objects[0]",
			contains:  []string{"give exactly one of table, file or prefix (found 0)"},
			wantCount: 1,
		},
		{
			name: "duplicate connection names",
			old:  "    name: files\n", new: "    name: warehouse\n",
			path:     "spec.connections[1].name",
			contains: []string{`duplicate connection name "warehouse" (also spec.connections[0])`, "give each connection its own name"},
		},
		{
			name: "file path escaping with ..",
			old:  "      path: data/visits.csv\n", new: "      path: ../x\n",
			path:      "spec.objects[1].file.path",
			contains:  []string{`path "../x" escapes its root with '..'`},
			wantCount: 1,
		},
		{
			name: "absolute file path",
			old:  "      path: data/visits.csv\n", new: "      path: /etc/passwd\n",
			path:      "spec.objects[1].file.path",
			contains:  []string{`absolute path "/etc/passwd"`, "relative to the connection's root, e.g. etc/passwd"},
			wantCount: 1,
		},
		{
			name: "prefix path escaping",
			old:  "  - file:\n      path: data/visits.csv\n", new: "  - prefix:\n      path: ../../\n",
			path:      "spec.objects[1].prefix.path",
			contains:  []string{"escapes its root"},
			wantCount: 1,
		},
		{
			name: "invalid project id",
			old:  "    id: d4e6\n", new: "    id: Project 4\n",
			path:      "spec.project.id",
			contains:  []string{`invalid project id "Project 4"`, NameRule},
			wantCount: 1,
		},
		{
			name: "missing project id",
			old:  "    id: d4e6\n", new: "    id: \"\"\n",
			path:      "spec.project.id",
			contains:  []string{"missing"},
			wantCount: 1,
		},
		{
			name: "unknown spec.type",
			old:  "  type: Import\n", new: "  type: Export\n",
			path:      "spec.type",
			contains:  []string{`unknown type "Export" (expected one of: Import, Uploaded)`},
			wantCount: 1,
		},
		{
			name:      "import without objects",
			old:       "  objects:\n  - table:\n      name: patients\n      connection: warehouse\n  - file:\n      path: data/visits.csv\n      connection: files\n",
			new:       "",
			path:      "spec.objects",
			contains:  []string{"missing", "Import"},
			wantCount: 1,
		},
		{
			name: "databricks connection without url",
			old:  "    url: https://dbx.example.org\n", new: "",
			path:      "spec.connections[0].url",
			contains:  []string{"missing", "databricks"},
			wantCount: 1,
		},
		{
			name: "file connection with a non-file url",
			old:  "    url: file:///sample-data\n", new: "    url: /sample-data\n",
			path:      "spec.connections[1].url",
			contains:  []string{"file: URL"},
			wantCount: 1,
		},
		{
			name: "credential holding a value",
			old:  "      passwordKey: DatabricksPassword\n", new: "      passwordKey: correct horse battery staple\n",
			path:      "spec.connections[0].credentials.passwordKey",
			contains:  []string{"must name a secret key"},
			wantCount: 1,
		},
		{
			name: "whole number where text is expected is fine, text where a bool is expected is not",
			old:  "    url: file:///sample-data\n", new: "    url: file:///sample-data\n    pathStyle: maybe\n",
			path:      "spec.connections[1].pathStyle",
			contains:  []string{`expected true or false, found "maybe"`},
			wantCount: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := mutate(t, baseDataSource, tc.old, tc.new)
			fes := refusal(t, "ds.yaml", doc)
			fe := errorAt(t, fes, tc.path)
			assertContains(t, fe.Msg, tc.contains...)
			if fe.File != "ds.yaml" {
				t.Errorf("File = %q, want ds.yaml", fe.File)
			}
			if tc.wantCount > 0 && len(fes) != tc.wantCount {
				t.Errorf("want %d errors, got %d:\n%v", tc.wantCount, len(fes), fes)
			}
			// Secret values never appear in errors.
			if strings.Contains(fes.Error(), "hunter2") || strings.Contains(fes.Error(), "horse battery") {
				t.Errorf("error repeats a secret value: %v", fes)
			}
		})
	}
}

func TestUnknownConnectionTypeExactMessage(t *testing.T) {
	doc := mutate(t, baseDataSource, "  - type: databricks\n", "  - type: dbx\n")
	_, err := ParseDocuments("sources/sample.yaml", []byte(doc))
	want := `sources/sample.yaml: spec.connections[0].type: unknown connection type "dbx" (expected one of: databricks, s3, azureblob, dlt, file, pvc)`
	if err == nil || err.Error() != want {
		t.Fatalf("error =\n  %v\nwant\n  %s", err, want)
	}
	// The same message on the fixture the platform writes, changed only in its type.
	fixture := strings.Replace(string(readFixture(t, "import-databricks.yaml")), "- type: databricks", "- type: dbx", 1)
	_, err = ParseDocuments("import-databricks.yaml", []byte(fixture))
	fes, ok := AsFieldErrors(err)
	if !ok {
		t.Fatalf("want field errors, got %v", err)
	}
	if got := errorAt(t, fes, "spec.connections[0].type").Error(); got != strings.Replace(want, "sources/sample.yaml", "import-databricks.yaml", 1) {
		t.Errorf("fixture error = %s", got)
	}
}

func TestMalformedYAML(t *testing.T) {
	cases := []struct {
		name     string
		old, new string
		line     int
		contains []string
	}{
		{
			name: "tab indentation",
			old:  "    organisation: Example Trust\n", new: "\torganisation: Example Trust\n",
			line:     8,
			contains: []string{"malformed YAML", "indented with a tab", "use spaces"},
		},
		{
			name: "unclosed double quote",
			old:  "  displayName: Sample data\n", new: "  displayName: \"Sample data\n",
			contains: []string{"malformed YAML", "quoting"},
		},
		{
			name: "unclosed single quote",
			old:  "  displayName: Sample data\n", new: "  displayName: 'Sample data\n",
			contains: []string{"malformed YAML", "quoting"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fes := refusal(t, "broken.yaml", mutate(t, baseDataSource, tc.old, tc.new))
			if len(fes) != 1 {
				t.Fatalf("want 1 error, got:\n%v", fes)
			}
			fe := fes[0]
			assertContains(t, fe.Msg, tc.contains...)
			if fe.File != "broken.yaml" {
				t.Errorf("File = %q", fe.File)
			}
			if fe.Line <= 0 {
				t.Errorf("the line of a syntax error is known, got Line %d: %v", fe.Line, fe)
			}
			if tc.line > 0 && fe.Line != tc.line {
				t.Errorf("Line = %d, want %d: %v", fe.Line, tc.line, fe)
			}
			if regexp.MustCompile(`line \d`).MatchString(fe.Msg) {
				t.Errorf("the line belongs in Line, not repeated in the message: %q", fe.Msg)
			}
			if !strings.HasPrefix(fe.Error(), "broken.yaml:") {
				t.Errorf("Error() = %q", fe.Error())
			}
		})
	}
}

func TestDocumentMustBeAMapping(t *testing.T) {
	fes := refusal(t, "list.yaml", "- apiVersion: xlscsde.nhs.uk/v1\n- kind: AnalyticsWorkspaceDataSource\n")
	assertContains(t, fes.Error(), "list.yaml:1: ", "must be a YAML mapping", "found a list")
}

func TestAllProblemsReportedAtOnce(t *testing.T) {
	t.Run("three meaning errors", func(t *testing.T) {
		doc := mutate(t, baseDataSource, "  - type: databricks\n", "  - type: dbx\n")
		doc = mutate(t, doc, "  name: sample-source\n", "  labels: {}\n")
		doc = mutate(t, doc, "    id: d4e6\n", "    id: D4E6\n")
		fes := refusal(t, "ds.yaml", doc)
		if len(fes) != 3 {
			t.Fatalf("want 3 errors, got %d:\n%v", len(fes), fes)
		}
		for _, p := range []string{"spec.connections[0].type", "metadata.name", "spec.project.id"} {
			errorAt(t, fes, p)
		}
		if n := strings.Count(fes.Error(), "\n") + 1; n != 3 {
			t.Errorf("FieldErrors.Error() gives one line per problem, got %d lines:\n%v", n, fes)
		}
	})
	t.Run("shape and meaning errors together", func(t *testing.T) {
		// An unknown field (a shape error) must not hide the other problems.
		doc := mutate(t, baseDataSource, "  - type: databricks\n", "  - type: dbx\n")
		doc = mutate(t, doc, "  displayName: Sample data\n", "  colour: blue\n")
		doc = mutate(t, doc, "      connection: warehouse\n", "      connection: lakehouse\n")
		fes := refusal(t, "ds.yaml", doc)
		for _, p := range []string{"spec.colour", "spec.connections[0].type", "spec.displayName", "spec.objects[0].table.connection"} {
			errorAt(t, fes, p)
		}
		if len(fes) != 4 {
			t.Errorf("want 4 errors, got %d:\n%v", len(fes), fes)
		}
	})
	t.Run("several shape errors", func(t *testing.T) {
		doc := mutate(t, baseDataSource, "kind: AnalyticsWorkspaceDataSource\n", "kind: AnalyticsWorkspaceDataSource\nstatus: {}\n")
		doc = mutate(t, doc, "    url: https://dbx.example.org\n", "    url: https://dbx.example.org\n    token: x\n")
		doc = mutate(t, doc, "      passwordKey: DatabricksPassword\n", "      passwordKey: DatabricksPassword\n      secret: y\n")
		fes := refusal(t, "ds.yaml", doc)
		if len(fes) != 3 {
			t.Fatalf("want 3 errors, got %d:\n%v", len(fes), fes)
		}
		for _, p := range []string{"status", "spec.connections[0].token", "spec.connections[0].credentials.secret"} {
			if errorAt(t, fes, p).Line <= 0 {
				t.Errorf("%s: shape errors carry their line", p)
			}
		}
	})
	t.Run("a wrongly shaped field is reported once", func(t *testing.T) {
		doc := mutate(t, baseDataSource, "  project:\n    id: d4e6\n", "  project: d4e6\n")
		fes := refusal(t, "ds.yaml", doc)
		if len(fes) != 1 || fes[0].Path != "spec.project" {
			t.Errorf("want one error at spec.project, got:\n%v", fes)
		}
	})
	t.Run("errors come in a stable order", func(t *testing.T) {
		doc := mutate(t, baseDataSource, "      userKey: DatabricksUsername\n      passwordKey: DatabricksPassword\n",
			"      userKey: my user\n      passwordKey: my password\n      tokenKey: my token\n")
		first := refusal(t, "ds.yaml", doc).Error()
		for i := 0; i < 20; i++ {
			if again := refusal(t, "ds.yaml", doc).Error(); again != first {
				t.Fatalf("errors changed order between runs:\n%s\n---\n%s", first, again)
			}
		}
	})
}

func TestErrorsCarryTheFileName(t *testing.T) {
	const file = "configs/sources/sample.yaml"
	docs := []string{
		mutate(t, baseDataSource, "    id: d4e6\n", "    id: D4E6\n"),                         // meaning
		mutate(t, baseDataSource, "  type: Import\n", "  type: Import\n  extra: 1\n"),         // shape
		mutate(t, baseDataSource, "  displayName: Sample data\n", "  displayName: 'Sample\n"), // syntax
		mutate(t, baseDataSource, "apiVersion: xlscsde.nhs.uk/v1\n", "apiVersion: v1\n"),      // identity
		"", // nothing
	}
	for i, doc := range docs {
		_, err := ParseDocuments(file, []byte(doc))
		fes, ok := AsFieldErrors(err)
		if !ok {
			t.Fatalf("case %d: want field errors, got %v", i, err)
		}
		for _, fe := range fes {
			if fe.File != file || !strings.HasPrefix(fe.Error(), file+":") {
				t.Errorf("case %d: error does not name the file: %#v", i, fe)
			}
		}
	}
}

func TestFieldErrorFormatting(t *testing.T) {
	cases := []struct {
		fe   FieldError
		want string
	}{
		{FieldError{File: "a.yaml", Line: 3, Path: "spec.type", Msg: "bad"}, "a.yaml:3: spec.type: bad"},
		{FieldError{File: "a.yaml", Path: "spec.type", Msg: "bad"}, "a.yaml: spec.type: bad"},
		{FieldError{Path: "spec.type", Msg: "bad"}, "spec.type: bad"},
		{FieldError{Msg: "bad"}, "bad"},
	}
	for _, tc := range cases {
		if got := tc.fe.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	es := FieldErrors{cases[0].fe, cases[2].fe}
	if got := es.Error(); got != "a.yaml:3: spec.type: bad\nspec.type: bad" {
		t.Errorf("FieldErrors.Error() = %q", got)
	}

	// AsFieldErrors sees through wrapping, and accepts a single FieldError.
	if got, ok := AsFieldErrors(wrapErr{es}); !ok || len(got) != 2 {
		t.Errorf("AsFieldErrors(wrapped FieldErrors) = %v, %v", got, ok)
	}
	if got, ok := AsFieldErrors(cases[1].fe); !ok || len(got) != 1 || got[0] != cases[1].fe {
		t.Errorf("AsFieldErrors(FieldError) = %v, %v", got, ok)
	}
	if _, ok := AsFieldErrors(errors.New("plain")); ok {
		t.Errorf("AsFieldErrors(plain error) = ok")
	}
}

type wrapErr struct{ err error }

func (w wrapErr) Error() string { return "wrapped: " + w.err.Error() }
func (w wrapErr) Unwrap() error { return w.err }

func TestBindingRefusals(t *testing.T) {
	base := string(readFixture(t, "binding.yaml"))
	cases := []struct {
		name, old, new, path string
		contains             []string
	}{
		{"missing workspace", "  workspace: advanced-generic-workspace\n", "", "spec.workspace", []string{"missing or invalid workspace"}},
		{"invalid data source", "  datasource: ds-782b4a1f07234229980f75f2f651412a\n", "  datasource: DS 1\n", "spec.datasource", []string{`"DS 1"`}},
		{"unknown field", "  workspace: advanced-generic-workspace\n", "  workspace: advanced-generic-workspace\n  zone: x\n", "spec.zone", []string{`unknown field "zone" (expected one of: datasource, workspace)`}},
		{"missing name", "  name: dsb-782b4a1f07234229980f75f2f651412a\n", "  name: \"\"\n", "metadata.name", []string{"missing: give the binding a name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fes := refusal(t, "binding.yaml", mutate(t, base, tc.old, tc.new))
			assertContains(t, errorAt(t, fes, tc.path).Msg, tc.contains...)
		})
	}
}

func TestValidName(t *testing.T) {
	good := []string{"a", "d4e6", "ds-782b4a1f07234229980f75f2f651412a", strings.Repeat("a", 63)}
	bad := []string{"", "-a", "a-", "A", "a_b", "a.b", "a b", strings.Repeat("a", 64)}
	for _, s := range good {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range bad {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

// TestExampleDataSourcesValidate parses every document in examples/datasources,
// as airlock validate and import do: each file holds at least one data source,
// and its bindings bind a data source of the same file.
func TestExampleDataSourcesValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "datasources", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// sample-file, s3, azureblob, dlt-filesystem, databricks-table, databricks-volume
	if len(files) < 6 {
		t.Fatalf("found %d example data sources in ../examples/datasources, want at least 6: %v", len(files), files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs := mustParse(t, f, data)
			if len(docs.DataSources) == 0 {
				t.Fatalf("%s holds no %s", f, KindDataSource)
			}
			names := map[string]bool{}
			for _, ds := range docs.DataSources {
				names[ds.Metadata.Name] = true
			}
			if len(docs.Bindings) == 0 {
				t.Errorf("%s holds no %s: give the example one, as sample-file.yaml does", f, KindDataBinding)
			}
			for _, b := range docs.Bindings {
				if !names[b.Spec.DataSource] {
					t.Errorf("%s: binding %s names data source %q, which is not in the file", f, b.Metadata.Name, b.Spec.DataSource)
				}
			}
		})
	}
}
