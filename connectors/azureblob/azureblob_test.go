package azureblob

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/testservers"
)

func TestParseLocation(t *testing.T) {
	for _, tc := range []struct {
		url, prefix string
		pathStyle   bool
		want        location
		container   string
	}{
		{url: "https://acct.blob.core.windows.net/data", want: location{scheme: "https", host: "acct.blob.core.windows.net", account: "acct", container: "data"},
			container: "https://acct.blob.core.windows.net/data"},
		{url: "https://acct.blob.core.windows.net/data/trial/2024/", prefix: "/raw/", want: location{scheme: "https", host: "acct.blob.core.windows.net", account: "acct", container: "data", prefix: "trial/2024/raw"},
			container: "https://acct.blob.core.windows.net/data"},
		{url: "http://127.0.0.1:10000/devstoreaccount1/data/p", want: location{scheme: "http", host: "127.0.0.1:10000", pathStyle: true, account: "devstoreaccount1", container: "data", prefix: "p"},
			container: "http://127.0.0.1:10000/devstoreaccount1/data"},
		{url: "http://localhost:10000/devstoreaccount1/data", want: location{scheme: "http", host: "localhost:10000", pathStyle: true, account: "devstoreaccount1", container: "data"},
			container: "http://localhost:10000/devstoreaccount1/data"},
		{url: "http://azurite:10000/devstoreaccount1/data", pathStyle: true, want: location{scheme: "http", host: "azurite:10000", pathStyle: true, account: "devstoreaccount1", container: "data"},
			container: "http://azurite:10000/devstoreaccount1/data"},
		{url: "https://[::1]:10000/devstoreaccount1/data", want: location{scheme: "https", host: "[::1]:10000", pathStyle: true, account: "devstoreaccount1", container: "data"},
			container: "https://[::1]:10000/devstoreaccount1/data"},
	} {
		got, err := parseLocation(model.Connection{Type: model.ConnAzureBlob, Name: "c", URL: tc.url, Prefix: tc.prefix, PathStyle: tc.pathStyle})
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.url, got, tc.want)
		}
		if got.containerURL() != tc.container {
			t.Errorf("%s: container URL %s, want %s", tc.url, got.containerURL(), tc.container)
		}
	}

	for _, tc := range []struct {
		conn model.Connection
		want string // in the message
	}{
		{model.Connection{}, "url: missing"},
		{model.Connection{URL: "https://acct.blob.core.windows.net/data?sv=2024&sig=SECRETSIG"}, "credentials.sasTokenKey"},
		{model.Connection{URL: "https://acct.blob.core.windows.net/"}, "names no container"},
		{model.Connection{URL: "http://127.0.0.1:10000/devstoreaccount1"}, "names no container"},
		{model.Connection{URL: "https://acct.blob.core.windows.net/Data"}, `"Data" is not a container name`},
		{model.Connection{URL: "https://a.blob.core.windows.net/data"}, `"a" is not a storage account name`},
		{model.Connection{URL: "s3://bucket/data"}, "not an http(s) URL"},
		{model.Connection{URL: "https://user:pw@acct.blob.core.windows.net/data"}, "user information"},
		{model.Connection{URL: "https://acct.blob.core.windows.net/data/a//b"}, "not a clean path"},
		{model.Connection{URL: "https://acct.blob.core.windows.net/data/a/../b"}, "escapes its root"},
		{model.Connection{URL: "https://acct.blob.core.windows.net/data", Prefix: "../up"}, "prefix: "},
		{model.Connection{URL: "https://acct.blob.core.windows.net/data", Endpoint: "https://x"}, "endpoint: not used"},
		{model.Connection{URL: "https://acct.blob.core.windows.net/data", Region: "uksouth"}, "region: not used"},
	} {
		tc.conn.Name = "c"
		_, err := parseLocation(tc.conn)
		switch {
		case err == nil:
			t.Errorf("%+v: accepted", tc.conn)
		case !connectors.IsBadInput(err):
			t.Errorf("%+v: %v is not BadInput", tc.conn, err)
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("%+v: %q does not say %q", tc.conn, err, tc.want)
		case strings.Contains(err.Error(), "SECRETSIG") || strings.Contains(err.Error(), ":pw@"):
			t.Errorf("%+v: %q repeats a secret from the url", tc.conn, err)
		}
	}
}

func TestOptions(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil || o.PartSize != 16<<20 || o.Concurrency != 3 || o.ListPageSize != 5000 {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	for _, bad := range []Options{{PartSize: -1}, {PartSize: MaxPartSize + 1}, {Concurrency: -2}, {ListPageSize: 5001}} {
		if _, err := bad.withDefaults(); !connectors.IsBadInput(err) {
			t.Errorf("%+v: got %v, want BadInput", bad, err)
		}
	}
}

// TestCredentialChoices checks the combinations of credentials refused
// before any request, and that no refusal repeats a secret value.
func TestCredentialChoices(t *testing.T) {
	ctx := context.Background()
	const url = "https://acct.blob.core.windows.net/data"
	values := map[string]string{
		"key": "not base64 s3cr3tk3y!", "sas": "sv=2024-01-01&sp=rl&s3cr3tsas", "cs": "DefaultEndpointsProtocol=https;AccountName=other;AccountKey=czNjcjN0a2V5;EndpointSuffix=core.windows.net",
		"id": "client-id", "secret": "s3cr3tcl13nt", "tenant": "tenant-id",
	}
	p := provider(values)
	for _, tc := range []struct {
		creds model.Credentials
		want  []string
	}{
		{model.Credentials{AccountKeyKey: "key", SASTokenKey: "sas"}, []string{"credentials.accountKeyKey and credentials.sasTokenKey", "one way"}},
		{model.Credentials{ConnectionStringKey: "cs", ClientIDKey: "id", ClientSecretKey: "secret", TenantIDKey: "tenant"}, []string{"credentials.connectionStringKey and credentials.clientIdKey+clientSecretKey+tenantIdKey"}},
		{model.Credentials{ClientIDKey: "id", TenantIDKey: "tenant"}, []string{"credentials.clientIdKey and credentials.tenantIdKey set but credentials.clientSecretKey missing"}},
		{model.Credentials{ClientSecretKey: "secret"}, []string{"credentials.clientSecretKey set but credentials.clientIdKey and credentials.tenantIdKey missing"}},
		{model.Credentials{UserKey: "id"}, []string{"credentials.userKey is not used"}},
		{model.Credentials{AccessKeyIDKey: "id"}, []string{"credentials.accessKeyIdKey is not used"}},
		{model.Credentials{AccountKeyKey: "nowhere"}, []string{`credentials.accountKeyKey`, `secret "nowhere" not found`}},
		{model.Credentials{AccountKeyKey: "key"}, []string{`credentials.accountKeyKey (secret "key")`, "not a storage account key"}},
		{model.Credentials{SASTokenKey: "sas"}, []string{`credentials.sasTokenKey (secret "sas")`, "not a shared access signature"}},
		{model.Credentials{ConnectionStringKey: "cs"}, []string{`credentials.connectionStringKey (secret "cs")`, "https://other.blob.core.windows.net/data", "the url names https://acct.blob.core.windows.net/data"}},
	} {
		conn := model.Connection{Type: model.ConnAzureBlob, Name: "c", URL: url, Credentials: tc.creds}
		_, err := New(ctx, conn, p, Options{})
		if err == nil {
			t.Errorf("%+v: accepted", tc.creds)
			continue
		}
		if !connectors.IsBadInput(err) {
			t.Errorf("%+v: %v is not BadInput", tc.creds, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %q does not say %q", tc.creds, err, w)
			}
		}
		if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "czNjcjN0a2V5") {
			t.Errorf("%+v: %q holds a secret value", tc.creds, err)
		}
	}

	// A service principal and the default credential make no request
	// until used.
	if _, err := New(ctx, model.Connection{Type: model.ConnAzureBlob, Name: "c", URL: url, Credentials: model.Credentials{ClientIDKey: "id", ClientSecretKey: "secret", TenantIDKey: "tenant"}}, p, Options{}); err != nil {
		t.Errorf("service principal: %v", err)
	}
	if _, err := New(ctx, model.Connection{Type: model.ConnAzureBlob, Name: "c", URL: url}, p, Options{}); err != nil {
		t.Errorf("default credential: %v", err)
	}
	if _, err := New(ctx, model.Connection{Type: model.ConnS3, Name: "c", URL: url}, p, Options{}); !connectors.IsBadInput(err) {
		t.Errorf("an s3 connection gave %v, want BadInput", err)
	}
}

// sasFor signs a container SAS with the development key.
func sasFor(t *testing.T, containerName string, perms sas.ContainerPermissions) string {
	t.Helper()
	cred, err := container.NewSharedKeyCredential(azurite.AccountName, azurite.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-time.Minute).UTC(),
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   perms.String(),
		ContainerName: containerName,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

// TestCredentials reads and writes through each kind of credential Azurite
// can check: the account key, a SAS and a connection string.
func TestCredentials(t *testing.T) {
	name, _ := newContainer(t)
	a := server(t)
	all := sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true}
	for _, tc := range []struct {
		what   string
		creds  model.Credentials
		values map[string]string
	}{
		{"account key", model.Credentials{AccountKeyKey: "k"}, map[string]string{"k": a.AccountKey}},
		{"sas", model.Credentials{SASTokenKey: "s"}, map[string]string{"s": "?" + sasFor(t, name, all)}},
		{"sas url", model.Credentials{SASTokenKey: "s"}, map[string]string{"s": a.ContainerURL(name) + "?" + sasFor(t, name, all)}},
		{"connection string", model.Credentials{ConnectionStringKey: "cs"}, map[string]string{"cs": a.ConnectionString}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			ctx := testCtx(t)
			conn := model.Connection{Type: model.ConnAzureBlob, Name: "creds", URL: a.ContainerURL(name), Prefix: tc.what, Credentials: tc.creds}
			p := provider(tc.values)
			st, err := NewStore(ctx, conn, p, Options{})
			if err != nil {
				t.Fatal(err)
			}
			w, err := st.Create(ctx, "dir/file.csv", nil)
			if err != nil {
				t.Fatal(err)
			}
			data := []byte("a,b\n1,2\n")
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			src, err := Factories(p, Options{}).Source(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			items, err := src.List(ctx, model.Object{Prefix: &model.FileObject{Path: "dir"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 1 || items[0].Path != "dir/file.csv" || items[0].Size != int64(len(data)) || items[0].EncodingFormat != "text/csv" {
				t.Fatalf("listed %+v", items)
			}
			r, err := src.Open(ctx, items[0], 0)
			mustEqual(t, "read back", readAll(t, r, err), data)
			for _, s := range []string{src.Describe(), st.URL("dir/file.csv")} {
				for _, v := range tc.values {
					if strings.Contains(s, strings.TrimPrefix(v, "?")) || strings.Contains(s, "sig=") {
						t.Errorf("%q holds the secret", s)
					}
				}
			}
		})
	}
}

// TestSecretsStayOut checks that errors from the service, and from a server
// that does not answer, never carry the key or the SAS.
func TestSecretsStayOut(t *testing.T) {
	name, c := newContainer(t)
	put(t, c, "f.txt", []byte("x"), nil)
	a := server(t)
	wrongKey := "d3JvbmdrZXl3cm9uZ2tleXdyb25na2V5d3Jvbmdrd3Jvbmdr"
	goodSAS := sasFor(t, name, sas.ContainerPermissions{Read: true, List: true})
	sig := goodSAS[strings.Index(goodSAS, "sig=")+4:]
	if i := strings.IndexByte(sig, '&'); i >= 0 {
		sig = sig[:i]
	}
	badSAS := strings.Replace(goodSAS, "sig="+sig, "sig=AAAA"+sig[4:], 1)
	port, err := testservers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + testservers.HostPort(port) + "/" + a.AccountName + "/" + name
	for _, tc := range []struct {
		what     string
		url      string
		creds    model.Credentials
		values   map[string]string
		secrets  []string
		badInput bool
	}{
		{"wrong account key", a.ContainerURL(name), model.Credentials{AccountKeyKey: "k"}, map[string]string{"k": wrongKey}, []string{wrongKey}, true},
		{"wrong sas", a.ContainerURL(name), model.Credentials{SASTokenKey: "s"}, map[string]string{"s": badSAS}, []string{badSAS, "AAAA" + sig[4:]}, true},
		{"sas, no server", deadURL, model.Credentials{SASTokenKey: "s"}, map[string]string{"s": goodSAS}, []string{goodSAS, sig}, false},
	} {
		t.Run(tc.what, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			// One quick retry, so that the refused connection surfaces
			// as the transport's error (which names the URL) before the
			// deadline.
			opts := Options{retry: &policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond}}
			src, err := New(ctx, model.Connection{Type: model.ConnAzureBlob, Name: "c", URL: tc.url, Credentials: tc.creds}, provider(tc.values), opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = src.List(ctx, model.Object{File: &model.FileObject{Path: "f.txt"}})
			if err == nil {
				t.Fatal("no error")
			}
			if connectors.IsBadInput(err) != tc.badInput {
				t.Errorf("BadInput is %v for %v", !tc.badInput, err)
			}
			if tc.badInput && !strings.Contains(err.Error(), "access denied") {
				t.Errorf("%q does not say access was denied", err)
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("%q holds the secret %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "sig=") {
				t.Errorf("%q holds a signature", err)
			}
			if tc.what == "sas, no server" && !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("%q does not say the connection was refused", err)
			}
		})
	}
}
