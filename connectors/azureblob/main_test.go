package azureblob

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/testservers"
)

// One Azurite serves every test of the package; each test uses its own
// container.
var (
	azurite    *testservers.AzuriteServer
	azuriteErr error
	containers atomic.Int64
)

func TestMain(m *testing.M) {
	if _, err := testservers.Tool(testservers.AzuriteTool); err != nil {
		azuriteErr = err
	} else if azurite, err = testservers.StartAzurite(); err != nil {
		fmt.Fprintln(os.Stderr, "start azurite:", err)
		os.Exit(1)
	}
	code := m.Run()
	if azurite != nil {
		azurite.Stop()
	}
	os.Exit(code)
}

// server returns the shared Azurite, or skips (fails under CI) without it.
func server(t *testing.T) *testservers.AzuriteServer {
	t.Helper()
	if azurite == nil {
		testservers.Unavailable(t, azuriteErr)
	}
	return azurite
}

// newContainer creates a container of its own for a test.
func newContainer(t *testing.T) (string, *container.Client) {
	t.Helper()
	a := server(t)
	name := fmt.Sprintf("test-%03d", containers.Add(1))
	c, err := a.CreateContainer(testCtx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return name, c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// provider serves secrets from a map of key to value.
func provider(values map[string]string) *secrets.Provider {
	env := map[string]string{}
	for k, v := range values {
		env[secrets.EnvVar(k)] = v
	}
	return &secrets.Provider{Getenv: func(name string) string { return env[name] }}
}

// keyConn is an azureblob connection to container (plus a path) with the
// development account's shared key, and the provider that holds the key.
func keyConn(container, sub string) (model.Connection, *secrets.Provider) {
	u := azurite.ContainerURL(container)
	if sub != "" {
		u += "/" + sub
	}
	conn := model.Connection{Type: model.ConnAzureBlob, Name: "blobs", URL: u, Credentials: model.Credentials{AccountKeyKey: "azure-key"}}
	return conn, provider(map[string]string{"azure-key": azurite.AccountKey})
}

// put stores data as blob name.
func put(t *testing.T, c *container.Client, name string, data []byte, metadata map[string]*string) {
	t.Helper()
	if _, err := c.NewBlockBlobClient(name).UploadBuffer(testCtx(t), data, &blockblob.UploadBufferOptions{Metadata: metadata}); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func readAll(t *testing.T, r io.ReadCloser, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustEqual(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d (equal prefix %d)", what, len(got), len(want), commonPrefix(got, want))
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
