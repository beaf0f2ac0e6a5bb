package testservers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// The account every Azurite serves. The key is Azurite's published
// development key, the same on every installation: it protects nothing.
const (
	AzuriteAccountName = "devstoreaccount1"
	AzuriteAccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzuriteTool is the launcher deploy/tools/install.sh puts in $AIRLOCK_CACHE/bin.
const AzuriteTool = "azurite-blob"

// AzuriteServer is a running Azurite blob service (the Azure Storage emulator),
// keeping its data on disk in a temporary folder so that large blobs do not
// fill memory.
type AzuriteServer struct {
	// Process is the server; Stop (below) also removes its data.
	Process *Process
	// Addr is the host:port the server listens on.
	Addr string
	// BlobEndpoint is the account's service URL in emulator (path) style:
	// http://127.0.0.1:PORT/devstoreaccount1.
	BlobEndpoint string
	// AccountName and AccountKey are the development account's shared key.
	AccountName string
	AccountKey  string
	// ConnectionString is an Azure Storage connection string for the account.
	ConnectionString string
	// Dir is the folder Azurite keeps its blobs and metadata in.
	Dir string
}

// StartAzurite starts Azurite on a free loopback port with its data in a new
// temporary folder. The caller stops it with Stop.
func StartAzurite() (*AzuriteServer, error) {
	bin, err := Tool(AzuriteTool)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "airlock-azurite-")
	if err != nil {
		return nil, fmt.Errorf("azurite: temporary data folder: %w", err)
	}
	port, err := FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("azurite: free port: %w", err)
	}
	args := []string{
		"--blobHost", "127.0.0.1",
		"--blobPort", strconv.Itoa(port),
		"--location", dir,
		"--skipApiVersionCheck", // the SDK may be newer than the emulator
		"--disableTelemetry",
		"--disableProductStyleUrl", // the account is always the first path segment
		"--loose",                  // ignore headers the emulator does not implement
		"--silent",                 // no access log
	}
	p, err := StartProcess("azurite", bin, args, nil, DialReady(HostPort(port)), 60*time.Second)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	endpoint := "http://" + HostPort(port) + "/" + AzuriteAccountName
	return &AzuriteServer{
		Process:      p,
		Addr:         HostPort(port),
		BlobEndpoint: endpoint,
		AccountName:  AzuriteAccountName,
		AccountKey:   AzuriteAccountKey,
		ConnectionString: "DefaultEndpointsProtocol=http;AccountName=" + AzuriteAccountName +
			";AccountKey=" + AzuriteAccountKey + ";BlobEndpoint=" + endpoint + ";",
		Dir: dir,
	}, nil
}

// Azurite starts Azurite for t and stops it when t ends. Without the tool
// it skips t (fails it under CI=true), as Unavailable does.
func Azurite(t testing.TB) *AzuriteServer {
	t.Helper()
	if _, err := Tool(AzuriteTool); err != nil {
		Unavailable(t, err)
	}
	a, err := StartAzurite()
	if err != nil {
		t.Fatalf("starting azurite: %v", err)
	}
	t.Cleanup(a.Stop)
	return a
}

// Stop ends the server and removes its data folder.
func (a *AzuriteServer) Stop() {
	a.Process.Stop()
	os.RemoveAll(a.Dir)
}

// ContainerURL is the URL of container name in the emulator's path style.
func (a *AzuriteServer) ContainerURL(name string) string { return a.BlobEndpoint + "/" + name }

// ContainerClient returns a client for container name, signed with the
// development key.
func (a *AzuriteServer) ContainerClient(name string) (*container.Client, error) {
	return container.NewClientFromConnectionString(a.ConnectionString, name, nil)
}

// CreateContainer creates container name (a container that already exists is
// fine) and returns a client for it.
func (a *AzuriteServer) CreateContainer(ctx context.Context, name string) (*container.Client, error) {
	c, err := a.ContainerClient(name)
	if err != nil {
		return nil, err
	}
	if _, err := c.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("azurite: create container %q: HTTP %d %s", name, re.StatusCode, re.ErrorCode)
		}
		return nil, fmt.Errorf("azurite: create container %q: %w", name, err)
	}
	return c, nil
}
