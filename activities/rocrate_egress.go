package activities

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
)

// EgressCrateInput is everything an egress crate describes: the request
// (its turns, automatic checks and reviews) and its release.
type EgressCrateInput struct {
	Request model.RequestStatus `json:"request"`
	Release EgressCrateRelease  `json:"release"`
}

// EgressCrateRelease describes the release to a destination: the files
// released and withheld, and the signed manifest written beside them.
type EgressCrateRelease struct {
	Destination string    `json:"destination"`
	Description string    `json:"description,omitempty"`
	Location    string    `json:"location"`
	At          time.Time `json:"at"`
	// Files are the released files; Withheld the request's others.
	Files          []model.FileRecord         `json:"files"`
	Withheld       []releasemanifest.Withheld `json:"withheld,omitempty"`
	ManifestDigest string                     `json:"manifest_digest"`
	// Manifest and Signature are the manifest and signature files as
	// written (their size and SHA-256).
	Manifest  WriteCrateResult `json:"manifest"`
	Signature WriteCrateResult `json:"signature"`
	KeyID     string           `json:"key_id"`
}

// BuildEgressCrate renders the ro-crate-metadata.json of an egress release
// (RO-Crate 1.2, Five Safes RO-Crate): the root Dataset (the request, its
// justification and project), a File per released file with its sha256,
// the signed manifest and its signature as Files, a CreateAction per turn
// (the requester's snapshot of workspace files), an AssessAction per
// automatic check (as BuildCrate renders an upload's checks), an
// AssessAction sign-off per output checker's review with its per-file
// verdicts, and the release as a TransferAction naming the destination,
// the manifest digest and the signing key's id.
func BuildEgressCrate(in EgressCrateInput) ([]byte, error) {
	r, rel := in.Request, in.Release
	if r.Egress == nil {
		return nil, fmt.Errorf("request %s is not an egress: no egress crate", r.ID)
	}
	e := r.Egress
	files := sortedFiles(rel.Files)
	released := map[string]bool{}
	fileIDs := make([]string, len(files))
	for i, f := range files {
		fileIDs[i] = f.Path
		released[f.Path] = true
	}
	var graph []entity
	graph = append(graph, entity{
		"@id":        CrateFile,
		"@type":      "CreativeWork",
		"conformsTo": []entity{ref(ROCrateSpec), ref(FiveSafesSpec)},
		"about":      ref("./"),
	})

	projectID := "#project-" + r.Project
	requesterID := "#user-" + slug(r.Requester)
	turnIDs := make([]string, len(e.Turns))
	for i, t := range e.Turns {
		turnIDs[i] = fmt.Sprintf("#turn-%d", t.Turn)
	}
	checkIDs := checkIDs(r)
	reviewIDs := make([]string, len(e.Reviews))
	for i, rv := range e.Reviews {
		reviewIDs[i] = fmt.Sprintf("#review-%d-%s-%s", rv.Turn, slug(rv.Stage), slug(rv.By))
	}
	var mentions []string
	mentions = append(mentions, turnIDs...)
	mentions = append(mentions, checkIDs...)
	mentions = append(mentions, reviewIDs...)
	mentions = append(mentions, "#release")
	root := entity{
		"@id":           "./",
		"@type":         "Dataset",
		"identifier":    r.ID,
		"name":          "Egress " + r.ID,
		"description":   strings.TrimSpace(e.Justification),
		"datePublished": rel.At.UTC().Format(time.RFC3339),
		"author":        ref(requesterID),
		"isPartOf":      ref(projectID),
		"hasPart":       refs(append(append([]string{}, fileIDs...), releasemanifest.FileName, releasemanifest.SignatureFileName)),
		"keywords":      []string{"airlock", string(model.KindEgress), "project:" + r.Project, "workspace:" + r.Workspace, "destination:" + rel.Destination},
		"mentions":      refs(mentions),
	}
	graph = append(graph, root,
		entity{"@id": projectID, "@type": "Project", "identifier": r.Project, "name": "Project " + r.Project},
		entity{"@id": requesterID, "@type": "Person", "name": r.Requester},
	)
	for _, f := range files {
		fe := entity{"@id": f.Path, "@type": "File", "name": lastSegment(f.Path), "contentSize": strconv.FormatInt(f.Size, 10), "sha256": f.SHA256}
		if f.EncodingFormat != "" {
			fe["encodingFormat"] = f.EncodingFormat
		}
		if ef, ok := e.File(f.Path); ok && len(ef.Flags) > 0 {
			fe["description"] = "Flagged by the automatic checks " + strings.Join(ef.Flags, ", ") + " and approved by the output checkers"
		}
		graph = append(graph, fe)
	}
	graph = append(graph,
		entity{
			"@id": releasemanifest.FileName, "@type": "File", "name": "Signed release manifest",
			"description":    fmt.Sprintf("Lists every released file with its size, SHA-256 and approvals, and the files withheld; signed with the Ed25519 key %s (signature in %s). Check a copy with: airlock egress verify DIR --public-key FILE", rel.KeyID, releasemanifest.SignatureFileName),
			"encodingFormat": "application/json",
			"contentSize":    strconv.FormatInt(rel.Manifest.Size, 10),
			"sha256":         rel.Manifest.SHA256,
			"conformsTo":     ref("#manifest-format"),
		},
		entity{"@id": "#manifest-format", "@type": "DefinedTerm", "name": releasemanifest.Format},
		entity{
			"@id": releasemanifest.SignatureFileName, "@type": "File", "name": "Ed25519 signature of " + releasemanifest.FileName,
			"description":    "Standard base64 of the 64-byte Ed25519 signature over the exact bytes of " + releasemanifest.FileName,
			"encodingFormat": "text/plain",
			"contentSize":    strconv.FormatInt(rel.Signature.Size, 10),
			"sha256":         rel.Signature.SHA256,
			"about":          ref(releasemanifest.FileName),
		},
	)

	// The requester's turns: each snapshot of workspace files.
	for i, t := range e.Turns {
		var made []string
		for _, f := range e.Files {
			if f.Turn == t.Turn && released[f.Path] {
				made = append(made, f.Path)
			}
		}
		sort.Strings(made)
		desc := fmt.Sprintf("Turn %d: %d files new or changed since the previous turn (%s)", t.Turn, len(t.Changed), strings.Join(t.Changed, ", "))
		if t.Comment != "" {
			desc += ". The requester said: " + t.Comment
		}
		te := entity{
			"@id": turnIDs[i], "@type": "CreateAction",
			"name":         fmt.Sprintf("Snapshot of workspace %s into quarantine (turn %d)", r.Workspace, t.Turn),
			"description":  desc,
			"agent":        ref("#user-" + slug(t.By)),
			"endTime":      t.At.UTC().Format(time.RFC3339Nano),
			"actionStatus": "http://schema.org/CompletedActionStatus",
			"result":       entity{"@type": "PropertyValue", "name": "manifest digest of the turn", "value": t.ManifestDigest},
		}
		if len(made) > 0 {
			te["result"] = append(refs(made), te["result"].(entity))
		}
		graph = append(graph, te)
	}
	people := map[string]bool{requesterID: true}
	person := func(name string) string {
		id := "#user-" + slug(name)
		if !people[id] {
			people[id] = true
			graph = append(graph, entity{"@id": id, "@type": "Person", "name": name})
		}
		return id
	}
	for _, t := range e.Turns {
		person(t.By)
	}

	// Automatic checks, rendered as an upload's are, with what an egress
	// check adds: what a failure does and the files it found.
	if len(checkIDs) > 0 {
		checks := checkEntities(r, nil, checkIDs)
		for i, c := range r.Checks {
			ce := checks[i+1] // checks[0] is Airlock, the checks' agent
			if c.OnFail != "" {
				ce["result"] = entity{"@type": "PropertyValue", "name": "on failure", "value": c.OnFail}
			}
			var objs []string
			for _, p := range c.Files {
				if released[p] {
					objs = append(objs, p)
				}
			}
			if len(objs) > 0 {
				ce["object"] = append([]entity{ref("./")}, refs(objs)...)
			}
		}
		graph = append(graph, checks...)
	}

	// Output checkers' reviews: a sign-off each, with its verdict per file.
	policyID := "#policy-" + slug(r.Policy)
	if len(e.Reviews) > 0 {
		graph = append(graph, entity{"@id": policyID, "@type": "CreativeWork", "name": "Egress policy " + r.Policy})
	}
	for i, rv := range e.Reviews {
		agentID := person(rv.By)
		counts := map[string]int{}
		var results []entity
		var objs []string
		for _, f := range rv.Files {
			counts[f.Verdict]++
			pv := entity{"@type": "PropertyValue", "name": f.Path, "value": f.Verdict}
			if f.Comment != "" {
				pv["description"] = f.Comment
			}
			results = append(results, pv)
			if released[f.Path] {
				objs = append(objs, f.Path)
			}
		}
		results = append(results, entity{"@type": "PropertyValue", "name": "reviewed manifest digest", "value": rv.ManifestDigest})
		var summary []string
		for _, v := range model.Verdicts {
			if counts[v] > 0 {
				summary = append(summary, fmt.Sprintf("%d %s", counts[v], v))
			}
		}
		desc := "no comment"
		if rv.Comment != "" {
			desc = rv.Comment
		}
		graph = append(graph, entity{
			"@id": reviewIDs[i], "@type": "AssessAction",
			"additionalType": ref(fiveSafesSignOff),
			"name":           fmt.Sprintf("Output check by %s (stage %s, turn %d): %s", rv.By, rv.Stage, rv.Turn, strings.Join(summary, ", ")),
			"description":    fmt.Sprintf("%s (via %s)", desc, rv.Via),
			"agent":          ref(agentID),
			"object":         append([]entity{ref("./")}, refs(objs)...),
			"instrument":     ref(policyID),
			"endTime":        rv.At.UTC().Format(time.RFC3339Nano),
			"actionStatus":   "http://schema.org/CompletedActionStatus",
			"result":         results,
		})
	}

	// The release itself.
	desc := fmt.Sprintf("Released %d files to destination %s", len(files), rel.Destination)
	if rel.Description != "" {
		desc += " (" + rel.Description + ")"
	}
	if len(rel.Withheld) > 0 {
		var w []string
		for _, f := range rel.Withheld {
			w = append(w, fmt.Sprintf("%s (%s)", f.Path, f.Verdict))
		}
		desc += fmt.Sprintf("; %d withheld: %s", len(rel.Withheld), strings.Join(w, ", "))
	}
	graph = append(graph,
		entity{"@id": "#manifest", "@type": "PropertyValue", "name": "manifest digest",
			"description": "SHA-256 over the released files sorted by path, one \"path<TAB>size<TAB>sha256\\n\" line each",
			"value":       rel.ManifestDigest},
		entity{"@id": "#signing-key", "@type": "PropertyValue", "name": "Ed25519 signing key id",
			"description": "\"ed25519:\" and the hex SHA-256 of the raw public key that verifies " + releasemanifest.SignatureFileName,
			"value":       rel.KeyID},
		entity{
			"@id": "#release", "@type": "TransferAction",
			"name":         "Release to destination " + rel.Destination,
			"description":  desc,
			"object":       append(refs(fileIDs), ref("#manifest")),
			"instrument":   ref("#signing-key"),
			"toLocation":   rel.Location,
			"endTime":      rel.At.UTC().Format(time.RFC3339Nano),
			"actionStatus": "http://schema.org/CompletedActionStatus",
			"result":       refs([]string{releasemanifest.FileName, releasemanifest.SignatureFileName}),
		})
	return json.MarshalIndent(entity{"@context": ROCrateContext, "@graph": graph}, "", "  ")
}
