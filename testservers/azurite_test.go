package testservers

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// TestAzurite starts the emulator, stores and reads back a blob with the
// development key, and checks that Stop ends the process and removes its data.
func TestAzurite(t *testing.T) {
	a := Azurite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.CreateContainer(ctx, "smoke")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateContainer(ctx, "smoke"); err != nil {
		t.Fatalf("creating an existing container again: %v", err)
	}
	want := []byte("hello from azurite")
	if _, err := c.NewBlockBlobClient("dir/hello.txt").UploadBuffer(ctx, want, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := c.NewBlobClient("dir/hello.txt").DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %q, %v; want %q", got, err, want)
	}
	if _, err := c.NewBlobClient("missing").GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		t.Fatalf("a missing blob gave %v, want BlobNotFound", err)
	}
	if entries, err := os.ReadDir(a.Dir); err != nil || len(entries) == 0 {
		t.Fatalf("azurite keeps nothing in its data folder %s (%v): it must persist to disk", a.Dir, err)
	}

	a.Stop()
	if _, err := os.Stat(a.Dir); !os.IsNotExist(err) {
		t.Fatalf("after Stop the data folder %s is still there (%v)", a.Dir, err)
	}
	if err := DialReady(a.Addr)(ctx); err == nil {
		t.Fatal("after Stop the server still accepts connections")
	}
}
