package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/workflows"
)

// Config is the worker's configuration file (see deploy/dev/airlock.yaml).
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
	} `yaml:"directory"`
	// MaxConcurrentActivities bounds the activities this worker runs at once.
	MaxConcurrentActivities int `yaml:"maxConcurrentActivities"`
}

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

// LoadConfig reads and checks a worker config file.
func LoadConfig(path string) (*Config, model.PolicyBook, error) {
	var book model.PolicyBook
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, book, fmt.Errorf("reading the worker config: %w (pass --config FILE)", err)
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
	if err := book.Validate(); err != nil {
		return nil, book, fmt.Errorf("%s: %w", path, err)
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
