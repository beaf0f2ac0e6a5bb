// Package config reads Airlock's configuration file, which the worker and
// the API server share (see deploy/dev/airlock.yaml): stores, secrets,
// connectors, policies, the directory, uploads and the API's sign-in.
// Relative paths in it are resolved against the file's folder.
package config

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/connectors/azureblob"
	"github.com/airlockhq/airlock/connectors/localstore"
	"github.com/airlockhq/airlock/connectors/s3"
	"github.com/airlockhq/airlock/secrets"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// Config is Airlock's configuration file (see deploy/dev/airlock.yaml).
// Relative paths are resolved against the folder the file is in.
type Config struct {
	TaskQueue string `yaml:"taskQueue"`
	Stores    struct {
		Staging    StoreConfig `yaml:"staging"`
		Workspaces StoreConfig `yaml:"workspaces"`
	} `yaml:"stores"`
	Sources struct {
		FileRoot string `yaml:"fileRoot"`
		PVCRoot  string `yaml:"pvcRoot"`
	} `yaml:"sources"`
	// Secrets says where the secret references of connections (and of
	// the stores' credentials) are resolved.
	Secrets struct {
		// Dir holds one file per secret key, as Kubernetes mounts a Secret.
		Dir string `yaml:"dir"`
		// Env reads AIRLOCK_SECRET_<KEY> variables too (default true).
		Env *bool `yaml:"env"`
	} `yaml:"secrets"`
	// WorkDir is where producers (Databricks tables, dlt pipelines) make an
	// object's files before they are fingerprinted into staging.
	WorkDir    string `yaml:"workDir"`
	Connectors struct {
		S3         PartsConfig `yaml:"s3"`
		AzureBlob  PartsConfig `yaml:"azureblob"`
		Databricks struct {
			// WarehouseID is the SQL warehouse for tables whose connection URL
			// does not name one (/sql/1.0/warehouses/ID).
			WarehouseID string `yaml:"warehouseId"`
		} `yaml:"databricks"`
		DLT struct {
			// Python runs the dlt runner (default: the virtualenv that
			// deploy/tools/install.sh makes, $AIRLOCK_CACHE/dlt-venv).
			Python string `yaml:"python"`
			// FileRoot confines the local files a dlt source may read
			// (SQLite databases, filesystem sources); default sources.fileRoot.
			FileRoot string `yaml:"fileRoot"`
		} `yaml:"dlt"`
	} `yaml:"connectors"`
	Transfer struct {
		BufferSize        int            `yaml:"bufferSize"`
		CheckpointEvery   model.Duration `yaml:"checkpointEvery"`
		MaxBytesPerSecond int64          `yaml:"maxBytesPerSecond"`
	} `yaml:"transfer"`
	Policies struct {
		Files []string           `yaml:"files"`
		Rules []model.PolicyRule `yaml:"rules"`
	} `yaml:"policies"`
	Directory struct {
		// Users maps a user name to the roles they hold.
		Users map[string][]string `yaml:"users"`
		// AttestedRoles makes the roles the API attests for a signed-in
		// person (from the identity provider's claims) count as directory
		// membership for decisions and cancellations, as well as Users. Set
		// it in production, where the identity provider is the directory.
		AttestedRoles bool `yaml:"attestedRoles"`
	} `yaml:"directory"`
	// MaxConcurrentActivities bounds the activities this worker runs at once.
	MaxConcurrentActivities int `yaml:"maxConcurrentActivities"`
	// Uploads bound manual ingress (upload requests).
	Uploads struct {
		model.UploadLimits `yaml:",inline"`
		// ExpireAfter is how long an upload request waits for its
		// uploader to confirm before it expires and its files are removed
		// (default 24h).
		ExpireAfter model.Duration `yaml:"expireAfter"`
	} `yaml:"uploads"`
	// API configures the HTTP API and web console (api/).
	API struct {
		// Listen is the address the API serves on (default 127.0.0.1:8080).
		Listen string `yaml:"listen"`
		// PublicURL is the API's address as browsers reach it, for sign-in
		// redirects (default http://<listen>).
		PublicURL string `yaml:"publicURL"`
		// TemporalUI is the Temporal UI's base URL, for links from a
		// request to its run (default http://127.0.0.1:8233).
		TemporalUI string      `yaml:"temporalUI"`
		Auth       auth.Config `yaml:"auth"`
	} `yaml:"api"`
	// Egress configures releases out of the workspaces: the only places
	// an egress can release to, and the key its manifests are signed with.
	Egress EgressConfig `yaml:"egress"`
}

// EgressConfig is the egress block.
type EgressConfig struct {
	// SigningKey names the secret (a file in secrets.dir, or an
	// AIRLOCK_SECRET_<KEY> variable) that holds the Ed25519 private key,
	// PKCS#8 PEM as `openssl genpkey -algorithm ed25519` writes it, that
	// release manifests are signed with. make dev writes one.
	SigningKey string `yaml:"signingKey"`
	// Destinations are the places an egress may release to, by name.
	Destinations []DestinationConfig `yaml:"destinations"`
}

// DestinationConfig is one egress destination: its name (a valid name,
// unique), what it is for, and its store given like stores.staging (path
// for a local folder, or type s3/azureblob with url, prefix, endpoint,
// region, pathStyle and credentials by secret reference).
type DestinationConfig struct {
	StoreConfig `yaml:",inline"`
	Description string `yaml:"description"`
	// Revocable says whether released copies may be deleted there (a
	// revocation or the end of retention); default true. Set it false for
	// a write-once destination: deletions then leave the copies and say so.
	Revocable *bool `yaml:"revocable"`
}

// IsRevocable reports whether released copies may be deleted at d.
func (d DestinationConfig) IsRevocable() bool { return d.Revocable == nil || *d.Revocable }

// PartsConfig tunes an object store's transfers: the size of each part
// (multipart upload part, block, ranged read) and how many move at once.
// Memory per transfer is about partSize × (concurrency + 1).
type PartsConfig struct {
	PartSize    int64 `yaml:"partSize"`
	Concurrency int   `yaml:"concurrency"`
}

// Store types a StoreConfig may name.
const (
	StoreLocal = "local"
)

// StoreConfig locates a store: a local folder (path), or an S3 bucket or
// Azure Blob container given like a data source connection (type, url,
// prefix, endpoint, region, pathStyle, credentials by secret reference).
type StoreConfig struct {
	Path             string `yaml:"path"`
	model.Connection `yaml:",inline"`
}

// Load reads and checks a config file, and builds the policy book it names.
func Load(path string) (*Config, model.PolicyBook, error) {
	var book model.PolicyBook
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, book, fmt.Errorf("reading the config: %w (pass --config FILE)", err)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, book, fmt.Errorf("%s: %v", path, err)
	}
	base := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	if c.TaskQueue == "" {
		c.TaskQueue = "airlock"
	}
	for _, st := range []struct {
		field, holds string
		cfg          *StoreConfig
	}{{"stores.staging", "the quarantine", &c.Stores.Staging}, {"stores.workspaces", "the workspaces", &c.Stores.Workspaces}} {
		if err := st.cfg.check(st.field, st.holds); err != nil {
			return nil, book, fmt.Errorf("%s: %w", path, err)
		}
		st.cfg.Path = abs(st.cfg.Path)
	}
	c.Sources.FileRoot = abs(c.Sources.FileRoot)
	c.Sources.PVCRoot = abs(c.Sources.PVCRoot)
	c.Secrets.Dir = abs(c.Secrets.Dir)
	c.WorkDir = abs(c.WorkDir)
	c.Connectors.DLT.Python = abs(c.Connectors.DLT.Python)
	c.Connectors.DLT.FileRoot = abs(c.Connectors.DLT.FileRoot)
	if c.Connectors.DLT.FileRoot == "" {
		c.Connectors.DLT.FileRoot = c.Sources.FileRoot
	}
	book.Policies = map[string]model.Policy{}
	for i, f := range c.Policies.Files {
		p, err := model.LoadPolicy(abs(f))
		if err != nil {
			return nil, book, fmt.Errorf("%s: policies.files[%d]: %w", path, i, err)
		}
		if _, dup := book.Policies[p.Name]; dup {
			return nil, book, fmt.Errorf("%s: policies.files[%d]: a second policy named %q; policy names must be unique", path, i, p.Name)
		}
		book.Policies[p.Name] = p
	}
	book.Rules = c.Policies.Rules
	book.Roster = c.Directory.Users
	book.AttestedRoles = c.Directory.AttestedRoles
	if err := book.Validate(); err != nil {
		return nil, book, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Egress.check(abs, map[string]string{"stores.staging": c.Stores.Staging.Path, "stores.workspaces": c.Stores.Workspaces.Path}); err != nil {
		return nil, book, fmt.Errorf("%s: %w", path, err)
	}
	if c.Uploads.ExpireAfter == 0 {
		c.Uploads.ExpireAfter = model.Duration(workflows.DefaultUploadExpiry)
	}
	if c.Uploads.ExpireAfter < 0 || c.Uploads.MaxFileSize < 0 || c.Uploads.MaxRequestSize < 0 || c.Uploads.MaxFiles < 0 {
		return nil, book, fmt.Errorf("%s: uploads: expireAfter, maxFileSize, maxRequestSize and maxFiles cannot be negative (0 means the default, or no limit)", path)
	}
	if c.API.Listen == "" {
		c.API.Listen = "127.0.0.1:8080"
	}
	if c.API.PublicURL == "" {
		c.API.PublicURL = "http://" + c.API.Listen
	}
	if c.API.TemporalUI == "" {
		c.API.TemporalUI = "http://127.0.0.1:8233"
	}
	if c.Transfer.CheckpointEvery == 0 {
		c.Transfer.CheckpointEvery = model.Duration(2 * time.Second)
	}
	// A copy heartbeats at each checkpoint; it must do so well within the
	// heartbeat timeout or every long copy would time out.
	if limit := workflows.ExtractHeartbeatTimeout / 3; time.Duration(c.Transfer.CheckpointEvery) > limit || c.Transfer.CheckpointEvery < 0 {
		return nil, book, fmt.Errorf("%s: transfer.checkpointEvery: %s is too long: copies heartbeat at each checkpoint and time out after %s without one; use at most %s", path, c.Transfer.CheckpointEvery, workflows.ExtractHeartbeatTimeout, limit)
	}
	return &c, book, nil
}

// check fills in a store's type and refuses a config that names no place.
func (s *StoreConfig) check(field, holds string) error {
	if s.Type == "" && s.Path != "" {
		s.Type = StoreLocal
	}
	s.Name = field
	switch s.Type {
	case StoreLocal:
		if s.Path == "" {
			return fmt.Errorf("%s.path: missing: name the folder that holds %s", field, holds)
		}
	case model.ConnS3, model.ConnAzureBlob:
		if s.Path != "" {
			return fmt.Errorf("%s: give either path (a local folder) or type %s with url, not both", field, s.Type)
		}
		if s.URL == "" {
			return fmt.Errorf("%s.url: missing: name the %s location that holds %s (s3://bucket/prefix, or an Azure container URL)", field, s.Type, holds)
		}
	case "":
		return fmt.Errorf("%s: missing: give path (a local folder) or type (s3, azureblob) and url for %s", field, holds)
	default:
		return fmt.Errorf("%s.type: unknown store type %q (expected %s, %s or %s)", field, s.Type, StoreLocal, model.ConnS3, model.ConnAzureBlob)
	}
	return nil
}

// check validates the egress block: each destination's name (valid,
// unique) and store, and a signing key when there are destinations.
// Destinations' local paths are resolved with abs, and may not overlap a
// local store (by field): a release must never write into the quarantine
// or a workspace.
func (e *EgressConfig) check(abs func(string) string, stores map[string]string) error {
	names := map[string]int{}
	for i := range e.Destinations {
		d := &e.Destinations[i]
		field := fmt.Sprintf("egress.destinations[%d]", i)
		name := d.Name
		switch {
		case name == "":
			return fmt.Errorf("%s.name: missing: name the destination (requesters ask for it by name; %s)", field, model.NameRule)
		case !model.ValidName(name):
			return fmt.Errorf("%s.name: invalid name %q: %s", field, name, model.NameRule)
		}
		if j, dup := names[name]; dup {
			return fmt.Errorf("%s.name: a second destination named %q (also egress.destinations[%d]): destination names must be unique", field, name, j)
		}
		names[name] = i
		if err := d.check(field, "the released outputs of "+name); err != nil {
			return err
		}
		// check names the store after its field; the destination keeps
		// its own name (OpenDestinations names the store by field).
		d.Name = name
		d.Path = abs(d.Path)
		for _, other := range slices.Sorted(maps.Keys(stores)) {
			if d.Path != "" && stores[other] != "" && (within(d.Path, stores[other]) || within(stores[other], d.Path)) {
				return fmt.Errorf("%s.path: %s overlaps %s (%s): a destination must be a folder of its own, outside the quarantine and the workspaces", field, d.Path, other, stores[other])
			}
		}
	}
	if len(e.Destinations) > 0 && strings.TrimSpace(e.SigningKey) == "" {
		return fmt.Errorf("egress.signingKey: missing: name the secret that holds the Ed25519 private key release manifests are signed with (make one with `openssl genpkey -algorithm ed25519`)")
	}
	return nil
}

// within reports whether folder p is dir or inside it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// SecretProvider resolves the secret references of connections and stores
// as the secrets block says.
func (c *Config) SecretProvider() *secrets.Provider {
	return &secrets.Provider{Dir: c.Secrets.Dir, NoEnv: c.Secrets.Env != nil && !*c.Secrets.Env}
}

// S3Options and AzureBlobOptions are the object stores' transfer settings.
func (c *Config) S3Options() s3.Options {
	return s3.Options{PartSize: c.Connectors.S3.PartSize, Concurrency: c.Connectors.S3.Concurrency}
}

// AzureBlobOptions: see S3Options.
func (c *Config) AzureBlobOptions() azureblob.Options {
	return azureblob.Options{PartSize: c.Connectors.AzureBlob.PartSize, Concurrency: c.Connectors.AzureBlob.Concurrency}
}

// OpenStores opens the staging and workspace stores: local folders, S3
// buckets or Azure Blob containers, their credentials resolved now.
func (c *Config) OpenStores(ctx context.Context) (staging, workspaces connectors.Store, err error) {
	open := c.storeOpener(ctx)
	if staging, err = open(c.Stores.Staging); err != nil {
		return nil, nil, err
	}
	if workspaces, err = open(c.Stores.Workspaces); err != nil {
		return nil, nil, err
	}
	return staging, workspaces, nil
}

// OpenDestinations opens the egress destinations' stores, by name, their
// credentials resolved now.
func (c *Config) OpenDestinations(ctx context.Context) (map[string]activities.EgressDestination, error) {
	open := c.storeOpener(ctx)
	out := make(map[string]activities.EgressDestination, len(c.Egress.Destinations))
	for i, d := range c.Egress.Destinations {
		// The store's errors name its field, as the stores' do.
		sc := d.StoreConfig
		sc.Name = fmt.Sprintf("egress.destinations[%d]", i)
		st, err := open(sc)
		if err != nil {
			return nil, fmt.Errorf("destination %s: %w", d.Name, err)
		}
		out[d.Name] = activities.EgressDestination{Store: st, Description: d.Description, Revocable: d.IsRevocable()}
	}
	return out, nil
}

// storeOpener opens stores as the config says: a local folder, or an S3
// or Azure Blob store through its factory.
func (c *Config) storeOpener(ctx context.Context) func(StoreConfig) (connectors.Store, error) {
	provider := c.SecretProvider()
	factories := map[string]connectors.StoreFactory{
		model.ConnS3:        s3.StoreFactory(provider, c.S3Options()),
		model.ConnAzureBlob: azureblob.StoreFactory(provider, c.AzureBlobOptions()),
	}
	return func(sc StoreConfig) (connectors.Store, error) {
		if sc.Type == StoreLocal {
			st, err := localstore.New(sc.Path)
			if err != nil {
				return nil, fmt.Errorf("%s.path: %w", sc.Name, err)
			}
			return st, nil
		}
		f, ok := factories[sc.Type]
		if !ok {
			return nil, fmt.Errorf("%s.type: unknown store type %q (expected %s, %s or %s)", sc.Name, sc.Type, StoreLocal, model.ConnS3, model.ConnAzureBlob)
		}
		st, err := f(ctx, sc.Connection)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sc.Name, err)
		}
		return st, nil
	}
}
