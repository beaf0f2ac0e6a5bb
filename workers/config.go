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

// StoreConfig locates a store. Only local folders exist so far.
type StoreConfig struct {
	Path string `yaml:"path"`
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
	if c.Stores.Staging.Path == "" {
		return nil, book, fmt.Errorf("%s: stores.staging.path: missing: name the folder that holds the quarantine", path)
	}
	if c.Stores.Workspaces.Path == "" {
		return nil, book, fmt.Errorf("%s: stores.workspaces.path: missing: name the folder that holds the workspaces", path)
	}
	c.Stores.Staging.Path = abs(c.Stores.Staging.Path)
	c.Stores.Workspaces.Path = abs(c.Stores.Workspaces.Path)
	c.Sources.FileRoot = abs(c.Sources.FileRoot)
	c.Sources.PVCRoot = abs(c.Sources.PVCRoot)
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
