// Package s3 is the connector for Amazon S3 and S3-compatible object stores
// (versitygw, MinIO, Ceph RGW, ...): a Source that reads the objects of an
// "s3" connection, and a Store (staging or workspaces) that writes objects
// with multipart uploads so a copy resumes after a crash.
//
// A connection names its place with
//
//	url: s3://BUCKET[/some/prefix]
//	prefix: more/prefix        # optional, joined after the url's path
//	endpoint: http://host:9000 # optional: an S3-compatible store
//	region: eu-west-2          # optional: us-east-1 with an endpoint, else the SDK's chain
//	pathStyle: true            # optional: https://host/BUCKET/key addressing
//	credentials:               # optional: without them, the SDK's default chain
//	  accessKeyIdKey: KEY_NAME
//	  secretAccessKeyKey: KEY_NAME
//	  sessionTokenKey: KEY_NAME  # optional
//
// Credentials are secret references, resolved through a secrets.Provider
// when the source or store is built, inside the worker; they never appear in
// errors, Describe or URL.
//
// Big objects are read with parallel ranged GETs (package rangereader) and
// written with parallel part uploads; memory stays bounded by PartSize ×
// Concurrency (+1 part for writes) whatever the object's size. Nothing here
// computes digests of the data: Airlock hashes in-stream in its activities.
package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

// Defaults for the zero fields of Options.
const (
	DefaultPartSize     = 16 << 20
	DefaultConcurrency  = 3
	DefaultListPageSize = 1000
	// MinUploadPartSize is S3's smallest part of a multipart upload (all
	// but the last); a store's PartSize is raised to it.
	MinUploadPartSize = 5 << 20
	// MaxUploadParts is S3's largest number of parts in an upload: a store
	// writes files of at most PartSize × MaxUploadParts bytes (156 GiB with
	// the default part size).
	MaxUploadParts = 10000
)

// Options tunes the connector. The zero value uses the defaults.
type Options struct {
	// PartSize is the size of each ranged GET of a big object, and of each
	// part of a multipart upload (DefaultPartSize, 16 MiB, when 0; a store
	// raises it to MinUploadPartSize, 5 MiB). Objects no larger than one
	// part are read with a single GET.
	PartSize int64
	// Concurrency is how many parts are fetched or uploaded at once
	// (DefaultConcurrency, 3, when 0). Reads hold at most PartSize ×
	// Concurrency bytes; writes PartSize × (Concurrency+1).
	Concurrency int
	// ListPageSize is how many keys each ListObjectsV2 request asks for
	// (DefaultListPageSize, 1000, S3's maximum, when 0). Tests make it small
	// to exercise paging.
	ListPageSize int32
	// HTTPClient sends the requests; nil means the SDK's default client.
	HTTPClient *http.Client
}

func (o Options) withDefaults() Options {
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ListPageSize <= 0 {
		o.ListPageSize = DefaultListPageSize
	}
	return o
}

// location is where a connection points: a bucket and a key prefix, on AWS
// or an S3-compatible endpoint.
type location struct {
	bucket string
	// prefix is "" or a clean relative path without a trailing slash; keys
	// sit below prefix + "/".
	prefix    string
	endpoint  string
	region    string
	pathStyle bool
}

// key returns the full object key of rel, a clean path below the prefix.
func (l location) key(rel string) string {
	if l.prefix == "" {
		return rel
	}
	return l.prefix + "/" + rel
}

// dir is the key prefix that every key below the location starts with ("" or
// "prefix/").
func (l location) dir() string {
	if l.prefix == "" {
		return ""
	}
	return l.prefix + "/"
}

// url is s3://bucket/prefix/rel, for messages and Describe.
func (l location) url(rel string) string {
	u := "s3://" + l.bucket
	if k := l.key(rel); k != "" {
		u += "/" + strings.TrimSuffix(k, "/")
	}
	return u
}

// bucketRE is what a bucket name may look like: S3's legacy rules, which
// S3-compatible stores follow too (AWS's current rules are stricter).
var bucketRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$`)

// parseLocation checks conn's url, prefix and endpoint fields.
func parseLocation(conn model.Connection) (location, error) {
	var loc location
	name := conn.Name
	if conn.URL == "" {
		return loc, connectors.BadInput("connection %q: url: missing: expected s3://bucket[/prefix]", name)
	}
	bad := func(why string, args ...any) error {
		return connectors.BadInput("connection %q: url %q: %s", name, conn.URL, fmt.Sprintf(why, args...))
	}
	u, err := url.Parse(conn.URL)
	switch {
	case err != nil:
		return loc, bad("not a valid URL (%v): expected s3://bucket[/prefix]", errors.Unwrap(err))
	case u.Scheme != "s3":
		return loc, bad("expected s3://bucket[/prefix]; put an S3-compatible store's address in the endpoint field")
	case u.User != nil:
		return loc, bad("expected s3://bucket[/prefix] without user information; name credentials by secret key under credentials")
	case u.Port() != "":
		return loc, bad("expected s3://bucket[/prefix]: a port belongs in the endpoint field (e.g. http://host:9000)")
	case u.Host == "":
		return loc, bad("no bucket: expected s3://bucket[/prefix]")
	case !bucketRE.MatchString(u.Host):
		return loc, bad("bucket %q is not a valid bucket name: expected s3://bucket[/prefix] with a bucket name of letters, digits, '.', '-' and '_'", u.Host)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return loc, bad("expected s3://bucket[/prefix] without a query or fragment; percent-encode '?' as %%3F and '#' as %%23 in the prefix")
	}
	loc.bucket = u.Host
	var parts []string
	for _, p := range []struct{ field, value string }{{"url", u.Path}, {"prefix", conn.Prefix}} {
		v := strings.Trim(p.value, "/")
		if v == "" {
			continue
		}
		c, err := model.CleanRelPath(v)
		if err != nil || c != v {
			why := "write it as folder/names separated by single '/'"
			if err != nil {
				why = err.Error()
			}
			if p.field == "url" {
				return loc, bad("prefix %q: %s", v, why)
			}
			return loc, connectors.BadInput("connection %q: prefix %q: %s", name, conn.Prefix, why)
		}
		parts = append(parts, c)
	}
	loc.prefix = strings.Join(parts, "/")
	if conn.Endpoint != "" {
		e, err := url.Parse(conn.Endpoint)
		switch {
		case err != nil:
			return loc, connectors.BadInput("connection %q: endpoint: not a valid URL (%v): expected http(s)://host[:port]", name, errors.Unwrap(err))
		case e.Scheme != "http" && e.Scheme != "https":
			return loc, connectors.BadInput("connection %q: endpoint %q: expected http(s)://host[:port] of an S3-compatible store", name, conn.Endpoint)
		case e.User != nil:
			return loc, connectors.BadInput("connection %q: endpoint: must not carry user information; name credentials by secret key under credentials", name)
		case e.Host == "":
			return loc, connectors.BadInput("connection %q: endpoint %q: no host: expected http(s)://host[:port]", name, conn.Endpoint)
		case e.RawQuery != "" || e.Fragment != "":
			return loc, connectors.BadInput("connection %q: endpoint %q: expected http(s)://host[:port] without a query or fragment", name, conn.Endpoint)
		}
		loc.endpoint = strings.TrimSuffix(conn.Endpoint, "/")
	}
	loc.region = conn.Region
	if loc.region == "" && loc.endpoint != "" {
		loc.region = "us-east-1"
	}
	loc.pathStyle = conn.PathStyle
	return loc, nil
}

// credentialFields are the credentials an s3 connection may name.
var credentialFields = map[string]bool{"accessKeyIdKey": true, "secretAccessKeyKey": true, "sessionTokenKey": true}

// checkCredentials refuses credential references an s3 connection cannot use.
func checkCredentials(conn model.Connection) error {
	c := conn.Credentials
	for field := range c.Keys() {
		if !credentialFields[field] {
			return connectors.BadInput("connection %q: credentials.%s is not used by s3 connections: name the secret keys in credentials.accessKeyIdKey and credentials.secretAccessKeyKey (and credentials.sessionTokenKey for temporary credentials), or leave credentials out to use the worker's AWS credential chain", conn.Name, field)
		}
	}
	switch {
	case c.AccessKeyIDKey != "" && c.SecretAccessKeyKey == "":
		return connectors.BadInput("connection %q: credentials.accessKeyIdKey is set but credentials.secretAccessKeyKey is missing: name the secret key that holds the secret access key too", conn.Name)
	case c.AccessKeyIDKey == "" && c.SecretAccessKeyKey != "":
		return connectors.BadInput("connection %q: credentials.secretAccessKeyKey is set but credentials.accessKeyIdKey is missing: name the secret key that holds the access key id too", conn.Name)
	case c.SessionTokenKey != "" && c.AccessKeyIDKey == "":
		return connectors.BadInput("connection %q: credentials.sessionTokenKey needs credentials.accessKeyIdKey and credentials.secretAccessKeyKey as well", conn.Name)
	}
	return nil
}

// newClient checks conn and builds an S3 client for it, resolving its
// secret references through p.
func newClient(ctx context.Context, conn model.Connection, p *secrets.Provider, opts Options) (*s3.Client, location, error) {
	if conn.Type != model.ConnS3 {
		return nil, location{}, connectors.BadInput("connection %q has type %q: the s3 connector serves only %s connections", conn.Name, conn.Type, model.ConnS3)
	}
	loc, err := parseLocation(conn)
	if err != nil {
		return nil, loc, err
	}
	if err := checkCredentials(conn); err != nil {
		return nil, loc, err
	}
	var lo []func(*config.LoadOptions) error
	if loc.region != "" {
		lo = append(lo, config.WithRegion(loc.region))
	}
	if keys := conn.Credentials.Keys(); len(keys) > 0 {
		if p == nil {
			p = &secrets.Provider{}
		}
		v, err := p.Resolve(ctx, conn.Name, keys)
		if err != nil {
			if ctx.Err() != nil {
				return nil, loc, ctx.Err()
			}
			// The message names the field and the key, never a value.
			return nil, loc, connectors.BadInput("%w", err)
		}
		lo = append(lo, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(v["accessKeyIdKey"], v["secretAccessKeyKey"], v["sessionTokenKey"])))
	}
	if loc.endpoint != "" {
		// Recent SDKs send CRC32 checksums with every upload and ask for
		// them on downloads (RequestChecksumCalculation and
		// ResponseChecksumValidation "when_supported"). S3-compatible
		// stores often mishandle them: versitygw 1.8.0 then refuses
		// CompleteMultipartUpload with InvalidPart, and every ranged GET
		// logs "Response has no supported checksum". So for a custom
		// endpoint checksums are sent only where the API requires them
		// (DeleteObjects). Integrity does not depend on them: Airlock
		// hashes every file with SHA-256 in-stream and compares sizes.
		lo = append(lo,
			config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, loc, connectors.BadInput("connection %q: loading the AWS configuration (environment, shared config files): %v", conn.Name, err)
	}
	if cfg.Region == "" {
		return nil, loc, connectors.BadInput("connection %q: region: missing: set the connection's region (e.g. eu-west-2) or AWS_REGION on the worker", conn.Name)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if loc.endpoint != "" {
			o.BaseEndpoint = aws.String(loc.endpoint)
		}
		o.UsePathStyle = loc.pathStyle
		if opts.HTTPClient != nil {
			// Set here rather than through config.WithHTTPClient, which
			// fails when AWS_CA_BUNDLE is set and the client is not the
			// SDK's own: the given client's transport decides trust.
			o.HTTPClient = opts.HTTPClient
		}
	})
	return client, loc, nil
}

// describe is `s3://bucket/prefix (s3 connection "name", endpoint ...)`.
func describe(kind string, conn model.Connection, loc location) string {
	d := fmt.Sprintf("%s (%s %q", loc.url(""), kind, conn.Name)
	if loc.endpoint != "" {
		d += ", endpoint " + loc.endpoint
	}
	return d + ")"
}

// apiStatus returns the HTTP status and S3 error code of err (0 and "" when
// it is not an S3 response).
func apiStatus(err error) (int, string) {
	status, code := 0, ""
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}

// isNotFound reports whether err says the key (not the bucket) is missing.
func isNotFound(err error) bool {
	var nk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nk) || errors.As(err, &nf) {
		return true
	}
	status, code := apiStatus(err)
	return status == http.StatusNotFound && code != "NoSuchBucket" && code != "NoSuchUpload"
}

// isNoSuchUpload reports whether err says a multipart upload is gone.
func isNoSuchUpload(err error) bool {
	var nu *types.NoSuchUpload
	if errors.As(err, &nu) {
		return true
	}
	_, code := apiStatus(err)
	return code == "NoSuchUpload"
}

// isChanged reports whether err is a failed If-Match: the object was
// replaced since its ETag was read.
func isChanged(err error) bool {
	status, code := apiStatus(err)
	return status == http.StatusPreconditionFailed || code == "PreconditionFailed"
}

// retryable says whether a failed ranged GET is worth another try: network
// errors, short bodies and server errors are; answers that will not change
// (a missing or replaced object, access denied) are not.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	status, _ := apiStatus(err)
	if status >= 400 && status < 500 {
		return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
	}
	return true
}

// explain turns an S3 error about what (an op and the URL it was on) into
// one that says what to fix, marking the ones that retrying cannot fix as
// BadInput. who starts the message (`connection "x"` or `s3 store ...`).
func explain(who, op, what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	status, code := apiStatus(err)
	var nb *types.NoSuchBucket
	switch {
	case errors.As(err, &nb) || code == "NoSuchBucket":
		return connectors.BadInput("%s: %s %s: the bucket does not exist: check the bucket in the url (and the endpoint, for an S3-compatible store)", who, op, what)
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "InvalidToken" || code == "ExpiredToken":
		return connectors.BadInput("%s: %s %s: the store rejected the credentials (%s): check the values behind credentials.accessKeyIdKey, credentials.secretAccessKeyKey and credentials.sessionTokenKey, and the region", who, op, what, code)
	case code == "AccessDenied" || status == http.StatusForbidden:
		return connectors.BadInput("%s: %s %s: access denied: grant the credentials permission to %s there", who, op, what, op)
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || status == http.StatusMovedPermanently:
		return connectors.BadInput("%s: %s %s: the bucket is in another region (%s): set the connection's region to the bucket's", who, op, what, code)
	}
	return fmt.Errorf("%s: %s %s: %w", who, op, what, err)
}
