package s3

import (
	"context"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/secrets"
)

func TestConnectionRefusals(t *testing.T) {
	base := model.Connection{Type: model.ConnS3, Name: "x", URL: "s3://bucket/data", Endpoint: "http://127.0.0.1:9"}
	cases := []struct {
		name string
		edit func(*model.Connection)
		want []string
	}{
		{"wrong type", func(c *model.Connection) { c.Type = model.ConnAzureBlob }, []string{`connection "x"`, `type "azureblob"`}},
		{"no url", func(c *model.Connection) { c.URL = "" }, []string{`connection "x": url: missing`, "s3://bucket[/prefix]"}},
		{"scheme", func(c *model.Connection) { c.URL = "https://bucket/data" }, []string{`connection "x": url "https://bucket/data"`, "expected s3://bucket[/prefix]"}},
		{"no bucket", func(c *model.Connection) { c.URL = "s3:///data" }, []string{"url", "no bucket"}},
		{"port", func(c *model.Connection) { c.URL = "s3://bucket:9000/data" }, []string{"url", "endpoint field"}},
		{"user", func(c *model.Connection) { c.URL = "s3://key:secret@bucket/data" }, []string{"url", "without user information"}},
		{"query", func(c *model.Connection) { c.URL = "s3://bucket/data?x=1" }, []string{"url", "query"}},
		{"bad bucket", func(c *model.Connection) { c.URL = "s3://b/data" }, []string{"url", `bucket "b"`}},
		{"dotdot in url", func(c *model.Connection) { c.URL = "s3://bucket/a/../b" }, []string{"url", "'..'"}},
		{"double slash in url", func(c *model.Connection) { c.URL = "s3://bucket/a//b" }, []string{"url", `prefix "a//b"`}},
		{"dotdot in prefix", func(c *model.Connection) { c.Prefix = "../up" }, []string{`connection "x": prefix "../up"`, "'..'"}},
		{"endpoint scheme", func(c *model.Connection) { c.Endpoint = "ftp://host" }, []string{"endpoint", "http(s)://host[:port]"}},
		{"endpoint user", func(c *model.Connection) { c.Endpoint = "http://me:pw@host" }, []string{"endpoint", "must not carry user information"}},
		{"endpoint host", func(c *model.Connection) { c.Endpoint = "http:///x" }, []string{"endpoint", "no host"}},
		{"access without secret", func(c *model.Connection) { c.Credentials.AccessKeyIDKey = "a" }, []string{"credentials.accessKeyIdKey is set but credentials.secretAccessKeyKey is missing"}},
		{"secret without access", func(c *model.Connection) { c.Credentials.SecretAccessKeyKey = "s" }, []string{"credentials.secretAccessKeyKey is set but credentials.accessKeyIdKey is missing"}},
		{"session alone", func(c *model.Connection) { c.Credentials.SessionTokenKey = "t" }, []string{"credentials.sessionTokenKey needs"}},
		{"foreign credential", func(c *model.Connection) { c.Credentials.PasswordKey = "p" }, []string{"credentials.passwordKey is not used by s3 connections"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.edit(&c)
			_, err := New(context.Background(), c, &secrets.Provider{NoEnv: true}, Options{})
			if err == nil {
				t.Fatal("accepted")
			}
			if !connectors.IsBadInput(err) {
				t.Errorf("not BadInput: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			// A store refuses the same connections the same way.
			if _, serr := NewStore(context.Background(), c, &secrets.Provider{NoEnv: true}, Options{}); serr == nil || serr.Error() != err.Error() {
				t.Errorf("store: %v; source: %v", serr, err)
			}
		})
	}
}

func TestConnectionConventions(t *testing.T) {
	conn := model.Connection{Type: model.ConnS3, Name: "lab", URL: "s3://lab-data/projects/", Prefix: "/p1/raw/", Endpoint: "http://127.0.0.1:9000/", PathStyle: true}
	loc, err := parseLocation(conn)
	if err != nil {
		t.Fatal(err)
	}
	if loc.bucket != "lab-data" || loc.prefix != "projects/p1/raw" || loc.region != "us-east-1" || !loc.pathStyle || loc.endpoint != "http://127.0.0.1:9000" {
		t.Fatalf("parsed %+v", loc)
	}
	if got := loc.key("a/b.csv"); got != "projects/p1/raw/a/b.csv" {
		t.Errorf("key %q", got)
	}
	if got := loc.url(""); got != "s3://lab-data/projects/p1/raw" {
		t.Errorf("url %q", got)
	}
	// Without an endpoint the region is left to the SDK's chain.
	loc, err = parseLocation(model.Connection{Type: model.ConnS3, Name: "aws", URL: "s3://bucket"})
	if err != nil || loc.region != "" || loc.prefix != "" || loc.url("k") != "s3://bucket/k" || loc.key("k") != "k" {
		t.Fatalf("%+v %v", loc, err)
	}
	loc, err = parseLocation(model.Connection{Type: model.ConnS3, Name: "aws", URL: "s3://bucket", Region: "eu-west-2"})
	if err != nil || loc.region != "eu-west-2" {
		t.Fatalf("%+v %v", loc, err)
	}

	s, err := New(context.Background(), conn, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Describe(); d != `s3://lab-data/projects/p1/raw (s3 connection "lab", endpoint http://127.0.0.1:9000)` {
		t.Errorf("Describe %q", d)
	}
	if in := s.Instrument(); in.Name != InstrumentName || in.Version == "" {
		t.Errorf("Instrument %+v", in)
	}
	st, err := NewStore(context.Background(), conn, nil, Options{PartSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if st.PartSize() != MinUploadPartSize {
		t.Errorf("a 1 MiB part size became %d; want S3's minimum %d", st.PartSize(), MinUploadPartSize)
	}
	if u := st.URL("req-1/a.csv"); u != "s3://lab-data/projects/p1/raw/req-1/a.csv" {
		t.Errorf("URL %q", u)
	}
	r := Factories(nil, Options{})
	if _, ok := r[model.ConnS3]; !ok || len(r) != 1 {
		t.Errorf("Factories serves %v", r)
	}
}

func TestMissingSecretNamesTheKey(t *testing.T) {
	const accessValue = "AKIAEXAMPLEVALUE1234"
	p := &secrets.Provider{Getenv: func(k string) string {
		if k == secrets.EnvVar("lab-access") {
			return accessValue
		}
		return ""
	}}
	conn := model.Connection{Type: model.ConnS3, Name: "lab", URL: "s3://bucket", Endpoint: "http://127.0.0.1:9",
		Credentials: model.Credentials{AccessKeyIDKey: "lab-access", SecretAccessKeyKey: "lab-secret"}}
	for _, build := range []func() error{
		func() error { _, err := New(context.Background(), conn, p, Options{}); return err },
		func() error { _, err := NewStore(context.Background(), conn, p, Options{}); return err },
		func() error { _, err := Factories(p, Options{}).Source(context.Background(), conn); return err },
		func() error { _, err := StoreFactory(p, Options{})(context.Background(), conn); return err },
	} {
		err := build()
		if err == nil {
			t.Fatal("built without the secret access key")
		}
		msg := err.Error()
		if !connectors.IsBadInput(err) || !secrets.IsMissing(err) {
			t.Errorf("not a BadInput wrapping a MissingError: %v", err)
		}
		for _, w := range []string{`connection "lab"`, "credentials.secretAccessKeyKey", `"lab-secret"`, "AIRLOCK_SECRET_LAB_SECRET"} {
			if !strings.Contains(msg, w) {
				t.Errorf("%q does not name %s", msg, w)
			}
		}
		if strings.Contains(msg, accessValue) {
			t.Errorf("the error holds a secret value: %q", msg)
		}
	}
}

func TestRelPathRefusesUncleanKeys(t *testing.T) {
	s, err := New(context.Background(), model.Connection{Type: model.ConnS3, Name: "x", URL: "s3://bucket/base", Region: "us-east-1"}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"base/a//b", "base/a/../b", "base/./a", "base/a/.", "base//a", "base/a\\b", "base/a\x01b", "other/a", "base"} {
		if rel, err := s.relPath(key); err == nil {
			t.Errorf("key %q accepted as %q", key, rel)
		}
	}
	for key, want := range map[string]string{"base/a": "a", "base/d/e f.csv": "d/e f.csv", "base/..a/b..": "..a/b.."} {
		if rel, err := s.relPath(key); err != nil || rel != want {
			t.Errorf("key %q: %q, %v; want %q", key, rel, err, want)
		}
	}
}

func TestRangeTotal(t *testing.T) {
	for in, want := range map[string]int64{"bytes 5-9/10": 10, "bytes 0-0/1": 1, "": -1, "bytes 1-2/*": -1} {
		if got := rangeTotal(in); got != want {
			t.Errorf("%q: %d, want %d", in, got, want)
		}
	}
}
