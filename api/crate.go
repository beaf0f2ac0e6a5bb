package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/airlockhq/airlock/connectors"
)

// maxCrateBytes bounds the crate the console reads for a request page.
const maxCrateBytes = 16 << 20

// crateInfo is what the request page shows from a request's RO-Crate: what
// the data is, who publishes it under which licence, and where it came from.
type crateInfo struct {
	Found        bool
	Name         string
	Description  string
	License      string
	Publisher    string
	Contact      string
	ContactEmail string
	Actions      []crateAction // how the files came to be (extractions, uploads)
}

// crateAction is a CreateAction (or another action) of the crate.
type crateAction struct {
	Type        string
	Name        string
	Description string
	Agent       string
	Instrument  string
	Object      string // what was read: a source's name and location
	Start, End  string
	Results     int
}

// readCrate reads and summarises a crate.
func readCrate(ctx context.Context, store connectors.Store, key string) (crateInfo, error) {
	rc, err := store.Open(ctx, key)
	if err != nil {
		return crateInfo{}, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxCrateBytes+1))
	if err != nil {
		return crateInfo{}, fmt.Errorf("reading the crate: %w", err)
	}
	if len(data) > maxCrateBytes {
		return crateInfo{}, fmt.Errorf("the crate is larger than %d bytes: download it from the API instead", maxCrateBytes)
	}
	return parseCrate(data)
}

func isNotFound(err error) bool { return errors.Is(err, connectors.ErrNotFound) }

// parseCrate summarises ro-crate-metadata.json's graph.
func parseCrate(data []byte) (crateInfo, error) {
	var doc struct {
		Graph []map[string]any `json:"@graph"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return crateInfo{}, fmt.Errorf("the crate is not JSON-LD: %w", err)
	}
	byID := map[string]map[string]any{}
	for _, e := range doc.Graph {
		if id, ok := e["@id"].(string); ok {
			byID[id] = e
		}
	}
	info := crateInfo{Found: true}
	root := byID["./"]
	if root == nil {
		return info, fmt.Errorf("the crate has no root dataset (./)")
	}
	str := func(e map[string]any, k string) string {
		if e == nil {
			return ""
		}
		switch v := e[k].(type) {
		case string:
			return v
		case float64:
			return fmt.Sprint(v)
		}
		return ""
	}
	// deref follows {"@id": ...} to its entity.
	deref := func(v any) map[string]any {
		if m, ok := v.(map[string]any); ok {
			if id, ok := m["@id"].(string); ok {
				if e, ok := byID[id]; ok {
					return e
				}
			}
			return m
		}
		return nil
	}
	info.Name = str(root, "name")
	info.Description = str(root, "description")
	if lic := deref(root["license"]); lic != nil {
		info.License = str(lic, "description")
		if info.License == "" {
			info.License = str(lic, "name")
		}
		if info.License == "" {
			info.License = str(lic, "@id")
		}
	} else {
		info.License = str(root, "license")
	}
	if pub := deref(root["publisher"]); pub != nil {
		info.Publisher = str(pub, "name")
	}
	if c := deref(root["contactPoint"]); c != nil {
		info.Contact = str(c, "name")
		if role := str(c, "jobTitle"); role != "" {
			info.Contact += " (" + role + ")"
		}
		info.ContactEmail = str(c, "email")
	}
	for _, e := range doc.Graph {
		types := typesOf(e["@type"])
		kind := ""
		for _, t := range types {
			if t == "CreateAction" || t == "UpdateAction" || t == "TransferAction" {
				kind = t
			}
		}
		if kind == "" || kind == "TransferAction" {
			continue
		}
		a := crateAction{Type: kind, Name: str(e, "name"), Description: str(e, "description"), Start: str(e, "startTime"), End: str(e, "endTime")}
		if ag := deref(e["agent"]); ag != nil {
			a.Agent = str(ag, "name")
		}
		if in := deref(e["instrument"]); in != nil {
			a.Instrument = strings.TrimSpace(str(in, "name") + " " + str(in, "version"))
		}
		if obj := deref(e["object"]); obj != nil {
			a.Object = str(obj, "name")
			if d := str(obj, "description"); d != "" {
				a.Object += " — " + d
			}
		}
		if res, ok := e["result"].([]any); ok {
			a.Results = len(res)
		} else if e["result"] != nil {
			a.Results = 1
		}
		info.Actions = append(info.Actions, a)
	}
	return info, nil
}

// typesOf reads "@type", a string or a list of them.
func typesOf(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
