package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/api/temporalproto"
	"google.golang.org/protobuf/proto"

	"github.com/airlockhq/airlock/connectors/databricks/fakedatabricks"
	"github.com/airlockhq/airlock/connectors/dlt"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/testservers"
)

// clouds are the real object stores of a test: versitygw for S3 and
// Azurite for Azure Blob, each holding a source dataset and a bucket or
// container for Airlock's own stores.
type clouds struct {
	s3        *testservers.VersityGWServer
	az        *testservers.AzuriteServer
	airlockAz *container.Client
	// secrets are the values the worker resolves by reference; no test
	// output, history, log or error may contain them.
	secrets map[string]string
}

const (
	sourceBucket    = "research"       // S3 source, data under clinic/
	sourceContainer = "trial"          // Azure source, data under export/
	storeBucket     = "airlock-stores" // S3 staging and workspaces
	storeContainer  = "airlock-stores" // Azure staging and workspaces
)

func startClouds(t *testing.T) *clouds {
	t.Helper()
	ctx := context.Background()
	c := &clouds{s3: testservers.VersityGW(t), az: testservers.Azurite(t)}
	must(t, c.s3.CreateBucket(ctx, sourceBucket))
	must(t, c.s3.CreateBucket(ctx, storeBucket))
	_, err := c.az.CreateContainer(ctx, sourceContainer)
	must(t, err)
	c.airlockAz, err = c.az.CreateContainer(ctx, storeContainer)
	must(t, err)
	c.secrets = map[string]string{
		"s3-access-key":   c.s3.AccessKey,
		"s3-secret-key":   c.s3.SecretKey,
		"azure-key":       c.az.AccountKey,
		"azure-store-key": c.az.AccountKey,
	}
	return c
}

// workerEnv passes the secrets as AIRLOCK_SECRET_* variables.
func (c *clouds) workerEnv() []string {
	var env []string
	for k, v := range c.secrets {
		env = append(env, secrets.EnvVar(k)+"="+v)
	}
	return env
}

func (c *clouds) putS3(t *testing.T, key string, data []byte) {
	t.Helper()
	_, err := c.s3.Client().PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(sourceBucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	must(t, err)
}

func (c *clouds) putAzure(t *testing.T, name string, data []byte) {
	t.Helper()
	cl, err := c.az.ContainerClient(sourceContainer)
	must(t, err)
	_, err = cl.NewBlockBlobClient(name).UploadBuffer(context.Background(), data, nil)
	must(t, err)
}

// storesYAML is the worker config's stores section for a store kind.
func (c *clouds) storesYAML(kind string) string {
	switch kind {
	case "s3":
		conn := func(prefix string) string {
			return fmt.Sprintf(`{type: s3, url: "s3://%s/%s", endpoint: %q, pathStyle: true, credentials: {accessKeyIdKey: s3-access-key, secretAccessKeyKey: s3-secret-key}}`, storeBucket, prefix, c.s3.Endpoint)
		}
		return "stores:\n  staging: " + conn("staging") + "\n  workspaces: " + conn("workspaces")
	case "azureblob":
		conn := func(prefix string) string {
			return fmt.Sprintf(`{type: azureblob, url: "%s/%s", credentials: {accountKeyKey: azure-store-key}}`, c.az.ContainerURL(storeContainer), prefix)
		}
		return "stores:\n  staging: " + conn("staging") + "\n  workspaces: " + conn("workspaces")
	}
	return localStores
}

// readStore reads a released file back from a store, with the servers' own
// clients (not Airlock's), to check what landed.
func (c *clouds) readStore(t *testing.T, e *env, kind, key string) []byte {
	t.Helper()
	ctx := context.Background()
	switch kind {
	case "s3":
		out, err := c.s3.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(storeBucket), Key: aws.String("workspaces/" + key)})
		must(t, err)
		defer out.Body.Close()
		data, err := io.ReadAll(out.Body)
		must(t, err)
		return data
	case "azureblob":
		resp, err := c.airlockAz.NewBlobClient("workspaces/"+key).DownloadStream(ctx, nil)
		must(t, err)
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		must(t, err)
		return data
	}
	data, err := os.ReadFile(filepath.Join(e.workspaces, filepath.FromSlash(key)))
	must(t, err)
	return data
}

// listStore lists what a store holds under a prefix of a zone, partial data included.
func (c *clouds) stagingLeft(t *testing.T, e *env, kind, id string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	switch kind {
	case "s3":
		res, err := c.s3.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(storeBucket), Prefix: aws.String("staging/" + id)})
		must(t, err)
		for _, o := range res.Contents {
			out = append(out, *o.Key)
		}
		up, err := c.s3.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(storeBucket), Prefix: aws.String("staging/" + id)})
		must(t, err)
		for _, u := range up.Uploads {
			out = append(out, "pending upload "+*u.Key)
		}
	case "azureblob":
		pager := c.airlockAz.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: aws.String("staging/" + id)})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			must(t, err)
			for _, b := range page.Segment.BlobItems {
				out = append(out, *b.Name)
			}
		}
	default:
		out = listFiles(t, e.staging)
	}
	return out
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestImportFromEachSourceIntoEachStore imports one data source with a
// connection of every kind (S3, Azure Blob, Databricks tables and volumes,
// dlt pipelines, a mounted directory) into each
// kind of store (local folders, S3, Azure Blob), approves it, and checks
// that the released bytes equal the sources, that staging is emptied, and
// that no secret value appears in the workflow's history, the worker's log
// or the CLI's output.
func TestImportFromEachSourceIntoEachStore(t *testing.T) {
	needServer(t)
	cl := startClouds(t)

	// The sources: expected crate path -> bytes.
	want := map[string][]byte{}
	put := func(where, crate string, data []byte) {
		want[crate] = data
		switch where {
		case "s3":
			cl.putS3(t, "clinic/"+crate, data)
		case "azure":
			cl.putAzure(t, "export/"+crate, data)
		}
	}
	put("s3", "visits.csv", []byte(strings.Repeat("V1,P1,2024-01-02,cardiology\n", 2000)))
	put("s3", "labs/2024.bin", randomBytes(1, 20<<20+12345)) // several parts: the ranged, parallel path
	put("s3", "labs/2025.bin", randomBytes(2, 777))
	put("azure", "outcomes/q1.bin", randomBytes(3, 18<<20+1))
	put("azure", "outcomes/q2.csv", []byte("id,outcome\n1,recovered\n"))
	put("azure", "codes.csv", []byte("code,label\nA,alpha\n"))

	// A dlt REST API source that wants a bearer token, given by reference.
	token := "dlt-token-" + fmt.Sprint(rand.Uint64())
	cl.secrets["api-token"] = token
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `[{"id": 1, "site": "north", "visits": 120}, {"id": 2, "site": "south", "visits": 98}]`)
	}))
	t.Cleanup(api.Close)
	python := dltPython(t)

	// Databricks cannot run here: its fake, written to the documented API,
	// serves a table in three result chunks (external links) and a volume.
	dbxToken := "dapi-" + fmt.Sprint(rand.Uint64())
	cl.secrets["dbx-token"] = dbxToken
	dbx, err := fakedatabricks.New(fakedatabricks.Options{
		Token:       dbxToken,
		WarehouseID: "wh-integration",
		ChunkRows:   1000,
		Tables: map[string]*fakedatabricks.Table{"main.clinic.admissions": {
			Columns: []fakedatabricks.Column{{Name: "id", Type: "BIGINT"}, {Name: "ward", Type: "STRING"}, {Name: "los_days", Type: "DOUBLE"}},
			Rows:    2500,
			Value: func(row int64, col int) any {
				switch col {
				case 0:
					return row + 1
				case 1:
					return []string{"north", "south", "east"}[row%3]
				}
				return float64(row%17) / 2
			},
		}},
		Files: map[string][]byte{"/Volumes/main/clinic/landing/dictionary/admissions.md": []byte("# Admissions\nid, ward, los_days\n")},
	})
	must(t, err)
	t.Cleanup(dbx.Close)
	want["dictionary/admissions.md"] = []byte("# Admissions\nid, ward, los_days\n")

	for _, kind := range []string{"local", "s3", "azureblob"} {
		t.Run("into "+kind, func(t *testing.T) {
			e := newEnvConfig(t, "  checkpointEvery: 1s", cl.storesYAML(kind), "connectors: {s3: {partSize: 8388608}, azureblob: {partSize: 8388608}}")
			e.workerEnv = cl.workerEnv()
			files := map[string][]byte{"notes/readme.md": []byte("# Notes\n")}
			for p, d := range files {
				want[p] = d
			}
			makeSQLite(t, python, filepath.Join(e.sourceRoot, "db", "clinic.db"),
				"CREATE TABLE patients (id INTEGER PRIMARY KEY, year_of_birth INTEGER, sex TEXT); INSERT INTO patients VALUES (1, 1970, 'F'), (2, 1981, 'M'), (3, 1990, 'F');")
			doc := e.writeSource("every-source", files, `  - prefix: {path: notes/, connection: src}
  - file: {path: visits.csv, connection: bucket}
  - prefix: {path: labs/, connection: bucket}
  - prefix: {path: outcomes, connection: container}
  - file: {path: codes.csv, connection: container}
  - table: {name: patients, connection: clinic-db}
  - table: {name: sites, connection: api}
  - table: {name: main.clinic.admissions, connection: dbx}
  - file: {path: dictionary/admissions.md, connection: dbx}
`)
			addConnections(t, doc, fmt.Sprintf(`  - type: s3
    name: bucket
    url: s3://%s/clinic
    endpoint: %s
    pathStyle: true
    credentials: {accessKeyIdKey: s3-access-key, secretAccessKeyKey: s3-secret-key}
  - type: azureblob
    name: container
    url: %s/export
    credentials: {accountKeyKey: azure-key}
  - type: dlt
    name: clinic-db
    url: sql_database+sqlite:///db/clinic.db
  - type: dlt
    name: api
    url: rest_api+%s
    credentials: {tokenKey: api-token}
  - type: databricks
    name: dbx
    url: %s/sql/1.0/warehouses/wh-integration
    prefix: /Volumes/main/clinic/landing
    credentials: {tokenKey: dbx-token}
`, sourceBucket, cl.s3.Endpoint, cl.az.ContainerURL(sourceContainer), api.URL, dbx.URL))
			w := e.startWorker(e.config)

			var cliOut strings.Builder
			out := airlockOK(t, "import", "-f", doc, "--workspace", "ws-clouds", "--as", "rita", "--wait")
			cliOut.WriteString(out)
			id := strings.TrimSpace(out)
			st := status(t, id)
			if st.State != model.StateAwaitingApproval {
				t.Fatalf("after --wait the request is %s (error %q), want AWAITING_APPROVAL", st.State, st.Error)
			}
			// Files copied from a source match it; files a dlt pipeline
			// produced are checked against what was released below.
			produced := map[string]string{}
			for _, f := range st.Files {
				if strings.HasPrefix(f.Path, "patients/") || strings.HasPrefix(f.Path, "sites/") || f.Path == "main.clinic.admissions.parquet" {
					produced[f.Path] = f.SHA256
					continue
				}
				if f.SHA256 != sha(want[f.Path]) || f.Size != int64(len(want[f.Path])) {
					t.Errorf("staged %s: %d bytes sha256 %s; the source has %d bytes sha256 %s", f.Path, f.Size, f.SHA256, len(want[f.Path]), sha(want[f.Path]))
				}
			}
			if len(st.Files)-len(produced) != len(want) {
				t.Fatalf("staged %d files (%v), want the %d source files and the pipelines' output", len(st.Files), st.Files, len(want))
			}
			for _, table := range []string{"patients/patients/", "sites/sites/", "main.clinic.admissions"} {
				found := false
				for p := range produced {
					found = found || (strings.HasPrefix(p, table) && strings.HasSuffix(p, ".parquet"))
				}
				if !found {
					t.Errorf("no Parquet file under %s among the pipelines' files %v", table, produced)
				}
			}
			cliOut.WriteString(airlockOK(t, "approve", id, "--stage", "data-engineering", "--as", "dana"))
			cliOut.WriteString(airlockOK(t, "approve", id, "--stage", "information-governance", "--as", "ian"))
			st = waitState(t, id, model.StateCompleted, 60*time.Second)
			cliOut.WriteString(airlockOK(t, "status", id, "-o", "json"))

			for p, data := range want {
				if got := cl.readStore(t, e, kind, path.Join("ws-clouds", "every-source", id, p)); sha(got) != sha(data) {
					t.Errorf("released %s: sha256 %s, source %s", p, sha(got), sha(data))
				}
			}
			for p, digest := range produced {
				if got := cl.readStore(t, e, kind, path.Join("ws-clouds", "every-source", id, p)); sha(got) != digest {
					t.Errorf("released %s: sha256 %s, staged %s", p, sha(got), digest)
				}
			}
			crate := string(cl.readStore(t, e, kind, path.Join("ws-clouds", "every-source", id, "ro-crate-metadata.json")))
			for _, wantText := range []string{"Rows of table patients (3 rows", `"name": "year_of_birth"`, "Tables: sites (2 rows", "load_id=",
				"Rows of table main.clinic.admissions (2500 rows in the table, 3 columns)", `"name": "los_days"`, "statement_id="} {
				if !strings.Contains(crate, wantText) {
					t.Errorf("the crate lacks %q", wantText)
				}
			}
			if left := cl.stagingLeft(t, e, kind, id); len(left) != 0 {
				t.Errorf("staging still holds %v after release", left)
			}
			assertNoSecrets(t, id, "api-token", cl.secrets, w.log.String(), cliOut.String())
		})
	}
}

// dltPython is the dlt virtualenv's python (deploy/tools/install.sh dlt).
func dltPython(t *testing.T) string {
	t.Helper()
	p := dlt.DefaultPython()
	if _, err := os.Stat(p); err != nil {
		testservers.Unavailable(t, fmt.Errorf("the dlt virtualenv's python %s is missing: run deploy/tools/install.sh dlt", p))
	}
	return p
}

// makeSQLite creates a SQLite database with python's sqlite3 module.
func makeSQLite(t *testing.T, python, file, script string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(file), 0o755))
	cmd := exec.Command(python, "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.stdin.read()); c.commit()", file)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("creating %s: %v\n%s", file, err, out)
	}
}

// addConnections appends connections to a data source document written by
// writeSource (whose connections list ends the connections block).
func addConnections(t *testing.T, doc, conns string) {
	t.Helper()
	data, err := os.ReadFile(doc)
	must(t, err)
	s := strings.Replace(string(data), "  objects:\n", conns+"  objects:\n", 1)
	must(t, os.WriteFile(doc, []byte(s), 0o644))
}

// assertNoSecrets fetches the workflow's whole history through the Temporal
// API and fails if any secret value appears in it, or in the other texts
// (worker log, CLI output). The history is searched in its protobuf wire
// form, where every string and every payload's bytes appear verbatim
// whatever their encoding, and in Temporal's JSON form.
func assertNoSecrets(t *testing.T, id, secretKey string, values map[string]string, texts ...string) {
	t.Helper()
	hist := fetchHistory(t, needServer(t), id)
	if len(hist.Events) == 0 {
		t.Fatal("the history has no events")
	}
	wire, err := proto.Marshal(hist)
	must(t, err)
	js, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(hist)
	must(t, err)
	where := map[string]string{"workflow history": string(wire), "workflow history (JSON)": string(js)}
	for i, s := range texts {
		where[fmt.Sprintf("output %d", i)] = s
	}
	for name, text := range where {
		for key, v := range values {
			if strings.Contains(text, v) {
				t.Errorf("the %s contains the value of secret %q", name, key)
			}
		}
	}
	// The document names the keys, so the history must show them: the
	// check above would pass vacuously if the history were not the run's.
	if !strings.Contains(string(wire), secretKey) {
		t.Errorf("the history does not name the secret key %s; is it the right run?", secretKey)
	}
}

// TestSecretsStayOutOfFailures fails imports on purpose: a secret the worker
// does not have, and S3 and Azure credentials the servers reject (a SAS
// token whose signature is wrong). Each request fails with a reason that
// names the key or says the credentials were refused, and no secret value
// appears in the history, the status, or the worker's log.
func TestSecretsStayOutOfFailures(t *testing.T) {
	needServer(t)
	cl := startClouds(t)
	cl.putS3(t, "clinic/a.csv", []byte("a\n1\n"))
	cl.putAzure(t, "export/a.csv", []byte("a\n1\n"))
	cl.secrets["wrong-s3-secret"] = "WrongSecretKey-" + fmt.Sprint(rand.Uint64())
	cl.secrets["forged-sas"] = "sv=2021-08-06&ss=b&srt=sco&sp=rl&se=2099-01-01T00:00:00Z&sig=Forged" + fmt.Sprint(rand.Uint64())
	e := newEnvConfig(t, "  checkpointEvery: 1s", localStores, "")
	e.workerEnv = cl.workerEnv()
	w := e.startWorker(e.config)

	for _, tc := range []struct {
		name, conn, wantErr, key string
	}{
		{"missing secret", fmt.Sprintf(`  - {type: s3, name: src2, url: "s3://%s/clinic", endpoint: %q, pathStyle: true, credentials: {accessKeyIdKey: s3-access-key, secretAccessKeyKey: not-provisioned}}
`, sourceBucket, cl.s3.Endpoint), `"not-provisioned"`, "not-provisioned"},
		{"wrong s3 secret", fmt.Sprintf(`  - {type: s3, name: src2, url: "s3://%s/clinic", endpoint: %q, pathStyle: true, credentials: {accessKeyIdKey: s3-access-key, secretAccessKeyKey: wrong-s3-secret}}
`, sourceBucket, cl.s3.Endpoint), "credentials", "wrong-s3-secret"},
		{"forged sas", fmt.Sprintf(`  - {type: azureblob, name: src2, url: "%s/export", credentials: {sasTokenKey: forged-sas}}
`, cl.az.ContainerURL(sourceContainer)), "403", "forged-sas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := e.writeSource("secret-fail", nil, "  - file: {path: a.csv, connection: src2}\n")
			addConnections(t, doc, tc.conn)
			out, errOut, _ := airlock(t, "import", "-f", doc, "--workspace", "ws-x", "--as", "rita", "--wait")
			id := strings.TrimSpace(out)
			st := waitState(t, id, model.StateFailed, 60*time.Second)
			if !strings.Contains(st.Error, tc.wantErr) {
				t.Errorf("the request failed with %q; want a reason mentioning %s", st.Error, tc.wantErr)
			}
			t.Logf("%s: %s", tc.name, st.Error)
			statusJSON := airlockOK(t, "status", id, "-o", "json")
			assertNoSecrets(t, id, tc.key, cl.secrets, w.log.String(), out, errOut, statusJSON)
		})
	}
}
