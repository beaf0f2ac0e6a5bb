package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/testservers"
)

// Where the benchmark object lives on both servers.
const (
	benchBucket = "bench" // S3 bucket and Azure container
	benchObject = "object.bin"
)

// Secret keys the Airlock child's connections name; their values reach it
// as AIRLOCK_SECRET_* environment variables, as they reach a worker.
const (
	s3AccessKeyKey     = "bench-s3-access-key-id"
	s3SecretKeyKey     = "bench-s3-secret-access-key"
	azureAccountKeyKey = "bench-azure-account-key"
)

// source is one server holding the benchmark object, and how each tool
// reaches it. Secrets are only in the env fields.
type source struct {
	name string // "s3" or "azureblob", the connection type
	// conn is Airlock's connection (secret key names only); airlockEnv
	// holds the secrets' values.
	conn       model.Connection
	airlockEnv []string
	// rcloneRemote is the object as rclone names it, with rcloneEnv
	// configuring the remote "src".
	rcloneRemote string
	rcloneEnv    []string
	// awsURL, awsEndpoint and awsEnv are for aws s3 cp; empty for a source
	// the AWS CLI cannot read (Azure).
	awsURL      string
	awsEndpoint string
	awsEnv      []string
	stop        func()
}

// makeRandomFile writes size random (incompressible) bytes to path in
// 1 MiB chunks and returns their SHA-256.
func makeRandomFile(path string, size int64) (string, error) {
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("creating the benchmark object %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	gen := mrand.NewChaCha8(seed)
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), io.LimitReader(gen, size), make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("writing the benchmark object %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing the benchmark object %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// startS3 starts versitygw and uploads the file at objectPath to it, with a
// single PUT (the SDK reads the file, it is not held in memory).
func startS3(ctx context.Context, objectPath string, size int64) (*source, error) {
	g, err := testservers.StartVersityGW()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*source, error) { g.Stop(); return nil, err }
	if err := g.CreateBucket(ctx, benchBucket); err != nil {
		return fail(err)
	}
	f, err := os.Open(objectPath)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if _, err := g.Client().PutObject(ctx, &awss3.PutObjectInput{
		Bucket:        aws.String(benchBucket),
		Key:           aws.String(benchObject),
		Body:          f,
		ContentLength: aws.Int64(size),
	}); err != nil {
		return fail(fmt.Errorf("uploading the benchmark object to versitygw %s: %w", g.Endpoint, err))
	}
	return &source{
		name: model.ConnS3,
		conn: model.Connection{
			Type: model.ConnS3, Name: "bench-s3", URL: "s3://" + benchBucket,
			Endpoint: g.Endpoint, Region: g.Region, PathStyle: true,
			Credentials: model.Credentials{AccessKeyIDKey: s3AccessKeyKey, SecretAccessKeyKey: s3SecretKeyKey},
		},
		airlockEnv: []string{
			secrets.EnvVar(s3AccessKeyKey) + "=" + g.AccessKey,
			secrets.EnvVar(s3SecretKeyKey) + "=" + g.SecretKey,
		},
		rcloneRemote: "src:" + benchBucket + "/" + benchObject,
		rcloneEnv: []string{
			"RCLONE_CONFIG_SRC_TYPE=s3",
			"RCLONE_CONFIG_SRC_PROVIDER=Other",
			"RCLONE_CONFIG_SRC_ENV_AUTH=false",
			"RCLONE_CONFIG_SRC_ENDPOINT=" + g.Endpoint,
			"RCLONE_CONFIG_SRC_REGION=" + g.Region,
			"RCLONE_CONFIG_SRC_FORCE_PATH_STYLE=true",
			"RCLONE_CONFIG_SRC_ACCESS_KEY_ID=" + g.AccessKey,
			"RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY=" + g.SecretKey,
		},
		awsURL:      "s3://" + benchBucket + "/" + benchObject,
		awsEndpoint: g.Endpoint,
		awsEnv: []string{
			"AWS_ACCESS_KEY_ID=" + g.AccessKey,
			"AWS_SECRET_ACCESS_KEY=" + g.SecretKey,
			"AWS_DEFAULT_REGION=" + g.Region,
			"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			"AWS_EC2_METADATA_DISABLED=true",
			"AWS_PAGER=",
		},
		stop: g.Stop,
	}, nil
}

// startAzure starts Azurite and uploads the file at objectPath to it as a
// block blob (8 MiB blocks, read from the file as they are sent).
func startAzure(ctx context.Context, objectPath string) (*source, error) {
	az, err := testservers.StartAzurite()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*source, error) { az.Stop(); return nil, err }
	c, err := az.CreateContainer(ctx, benchBucket)
	if err != nil {
		return fail(err)
	}
	f, err := os.Open(objectPath)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if _, err := c.NewBlockBlobClient(benchObject).UploadFile(ctx, f, &blockblob.UploadFileOptions{BlockSize: 8 << 20, Concurrency: 4}); err != nil {
		return fail(fmt.Errorf("uploading the benchmark object to Azurite %s: %w", az.BlobEndpoint, err))
	}
	// rclone 1.60 cannot send an account key to a custom endpoint (its
	// endpoint option is a host suffix, https only, and its emulator mode is
	// fixed to port 10000), so it reads through a container SAS URL signed
	// with the account key.
	sasURL, err := c.GetSASURL(sas.ContainerPermissions{Read: true, List: true}, time.Now().Add(24*time.Hour), nil)
	if err != nil {
		return fail(fmt.Errorf("Azurite %s: signing a SAS URL for rclone: %w", az.BlobEndpoint, err))
	}
	return &source{
		name: model.ConnAzureBlob,
		conn: model.Connection{
			Type: model.ConnAzureBlob, Name: "bench-azure", URL: az.ContainerURL(benchBucket),
			Credentials: model.Credentials{AccountKeyKey: azureAccountKeyKey},
		},
		airlockEnv:   []string{secrets.EnvVar(azureAccountKeyKey) + "=" + az.AccountKey},
		rcloneRemote: "src:" + benchBucket + "/" + benchObject,
		rcloneEnv: []string{
			"RCLONE_CONFIG_SRC_TYPE=azureblob",
			"RCLONE_CONFIG_SRC_SAS_URL=" + sasURL,
		},
		stop: az.Stop,
	}, nil
}
