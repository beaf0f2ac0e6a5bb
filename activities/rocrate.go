package activities

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/version"
)

// RO-Crate and profile identifiers the crates conform to.
const (
	ROCrateContext   = "https://w3id.org/ro/crate/1.2/context"
	ROCrateSpec      = "https://w3id.org/ro/crate/1.2"
	FiveSafesSpec    = "https://w3id.org/5s-crate/0.4"
	fiveSafesSignOff = "https://w3id.org/shp#SignOff"
	// fiveSafesCheck types the automatic checks of a request's files, the
	// profile's "check phase" (integrity, completeness, file-level checks).
	fiveSafesCheck = "https://w3id.org/shp#CheckValue"
	sha256Term     = "https://www.iana.org/assignments/named-information#sha-256"
)

// UploadInstrumentName names the software that receives uploads, for an
// upload's CreateAction.
const UploadInstrumentName = "Airlock upload (tus)"

// UploadInstrument is the instrument of an upload's CreateAction.
func UploadInstrument() connectors.Instrument {
	return connectors.Instrument{Name: UploadInstrumentName, Version: version.Version}
}

// CrateInput is everything a crate describes. Release is set once the
// request has been approved and released.
type CrateInput struct {
	Request     model.RequestStatus `json:"request"`
	DataSource  model.DataSource    `json:"datasource"`
	Extractions []Extraction        `json:"extractions"`
	// Upload is set for an upload: how its files arrived.
	Upload  *CrateUpload  `json:"upload,omitempty"`
	Release *CrateRelease `json:"release,omitempty"`
}

// CrateUpload describes how an upload's files arrived: the request opened
// for uploads at StartedAt, the uploader confirmed the files at ConfirmedAt
// (through Via) and they passed their checks at CheckedAt.
type CrateUpload struct {
	StartedAt   time.Time `json:"started_at"`
	ConfirmedAt time.Time `json:"confirmed_at"`
	CheckedAt   time.Time `json:"checked_at"`
	Via         string    `json:"via,omitempty"`
}

// CrateRelease describes the release into a workspace.
type CrateRelease struct {
	Workspace string    `json:"workspace"`
	Binding   string    `json:"binding"` // the binding document's name
	At        time.Time `json:"at"`
	Location  string    `json:"location"`
}

type entity map[string]any

func ref(id string) entity { return entity{"@id": id} }

func refs(ids []string) []entity {
	out := make([]entity, len(ids))
	for i, id := range ids {
		out[i] = ref(id)
	}
	return out
}

// BuildCrate renders ro-crate-metadata.json (RO-Crate 1.2): the root Dataset
// from the data source document, its publisher, contact and project, a File
// per file with contentSize, encodingFormat and sha256, a CreateAction per
// extracted object (or, for an upload, one for the upload by the requester),
// and the review record in the Five Safes RO-Crate vocabulary: an
// AssessAction per automatic check of the files (an upload's checks) and,
// once decided, one per decision, naming its agent, time, comment and the
// manifest digest it approved.
func BuildCrate(in CrateInput) ([]byte, error) {
	r, ds := in.Request, in.DataSource
	spec := ds.Spec
	files := sortedFiles(r.Files)
	var graph []entity

	graph = append(graph, entity{
		"@id":        CrateFile,
		"@type":      "CreativeWork",
		"conformsTo": []entity{ref(ROCrateSpec), ref(FiveSafesSpec)},
		"about":      ref("./"),
	})

	fileIDs := make([]string, len(files))
	for i, f := range files {
		fileIDs[i] = f.Path
	}
	published := r.CreatedAt
	if r.ExtractedAt != nil {
		published = *r.ExtractedAt
	}
	if in.Upload != nil && !in.Upload.CheckedAt.IsZero() {
		published = in.Upload.CheckedAt
	}
	orgID := "#organisation-" + slug(spec.Publisher.Organisation)
	contactID := "#person-" + slug(spec.Publisher.Contact.Name)
	projectID := "#project-" + spec.Project.ID
	root := entity{
		"@id":           "./",
		"@type":         "Dataset",
		"identifier":    r.ID,
		"name":          spec.DisplayName,
		"description":   strings.TrimSpace(spec.Description),
		"datePublished": published.UTC().Format(time.RFC3339),
		"publisher":     ref(orgID),
		"contactPoint":  ref(contactID),
		"hasPart":       refs(fileIDs),
		"alternateName": ds.Metadata.Name,
		"keywords":      []string{"airlock", string(r.Kind), "project:" + spec.Project.ID},
	}
	root["isPartOf"] = ref(projectID)
	if strings.TrimSpace(spec.License) != "" {
		root["license"] = ref("#license")
	}
	var mentions []string
	for _, e := range in.Extractions {
		mentions = append(mentions, fmt.Sprintf("#extraction-%d", e.Index))
	}
	if in.Upload != nil {
		mentions = append(mentions, "#upload")
	}
	checkIDs := checkIDs(r)
	mentions = append(mentions, checkIDs...)
	decisionIDs := decisionIDs(r)
	mentions = append(mentions, decisionIDs...)
	if in.Release != nil {
		mentions = append(mentions, "#release")
	}
	if len(mentions) > 0 {
		root["mentions"] = refs(mentions)
	}
	graph = append(graph, root)

	if strings.TrimSpace(spec.License) != "" {
		graph = append(graph, entity{"@id": "#license", "@type": "CreativeWork", "name": "Licence for " + spec.DisplayName, "description": strings.TrimSpace(spec.License)})
	}
	graph = append(graph,
		entity{"@id": orgID, "@type": "Organization", "name": spec.Publisher.Organisation, "contactPoint": ref(contactID)},
		personEntity(contactID, spec.Publisher.Contact),
		entity{"@id": projectID, "@type": "Project", "identifier": spec.Project.ID, "name": "Project " + spec.Project.ID},
	)
	tables := tablesByFile(in.Extractions)
	for _, f := range files {
		e := entity{"@id": f.Path, "@type": "File", "name": lastSegment(f.Path), "contentSize": strconv.FormatInt(f.Size, 10), "sha256": f.SHA256}
		if f.EncodingFormat != "" {
			e["encodingFormat"] = f.EncodingFormat
		}
		if t, ok := tables[f.Path]; ok {
			// A table's columns as schema.org variableMeasured: one
			// PropertyValue per column, its type as the source names it.
			e["description"] = fmt.Sprintf("Rows of table %s (%d rows in the table, %d columns)", t.Name, t.Rows, len(t.Columns))
			var cols []entity
			for _, c := range t.Columns {
				cols = append(cols, entity{"@type": "PropertyValue", "name": c.Name, "propertyID": c.Name, "description": c.Type})
			}
			if len(cols) > 0 {
				e["variableMeasured"] = cols
			}
		}
		graph = append(graph, e)
	}

	requesterID := "#user-" + slug(r.Requester)
	people := map[string]bool{requesterID: true}
	graph = append(graph, entity{"@id": requesterID, "@type": "Person", "name": r.Requester})
	instruments := map[string]bool{}
	for _, e := range in.Extractions {
		instID := "#instrument-" + slug(e.Instrument.Name)
		if !instruments[instID] {
			instruments[instID] = true
			graph = append(graph, entity{"@id": instID, "@type": "SoftwareApplication", "name": e.Instrument.Name, "version": e.Instrument.Version})
		}
		srcID := fmt.Sprintf("#source-%d", e.Index)
		graph = append(graph,
			entity{"@id": srcID, "@type": "CreativeWork", "name": e.Object, "description": e.Source},
			entity{
				"@id": fmt.Sprintf("#extraction-%d", e.Index), "@type": "CreateAction",
				"name":         "Extract " + e.Object + " into quarantine",
				"agent":        ref(requesterID),
				"instrument":   ref(instID),
				"object":       ref(srcID),
				"result":       refs(e.Files),
				"startTime":    e.StartedAt.UTC().Format(time.RFC3339Nano),
				"endTime":      e.EndedAt.UTC().Format(time.RFC3339Nano),
				"actionStatus": "http://schema.org/CompletedActionStatus",
			})
		if d := extractionDescription(e); d != "" {
			graph[len(graph)-1]["description"] = d
		}
	}

	if in.Upload != nil {
		graph = append(graph, uploadEntities(in.Upload, requesterID, fileIDs)...)
	}
	if len(checkIDs) > 0 {
		graph = append(graph, checkEntities(r, in.Upload, checkIDs)...)
	}

	if len(decisionIDs) > 0 {
		manifestID := "#manifest"
		graph = append(graph, entity{"@id": manifestID, "@type": "PropertyValue", "name": "manifest digest",
			"description": "SHA-256 over the files sorted by path, one \"path<TAB>size<TAB>sha256\\n\" line each",
			"value":       r.ManifestDigest})
		policyID := "#policy-" + slug(r.Policy)
		graph = append(graph, entity{"@id": policyID, "@type": "CreativeWork", "name": "Approval policy " + r.Policy})
		i := 0
		for _, s := range r.Stages {
			for _, d := range s.Decisions {
				agentID := "#user-" + slug(d.By)
				if !people[agentID] {
					people[agentID] = true
					graph = append(graph, entity{"@id": agentID, "@type": "Person", "name": d.By})
				}
				status := "http://schema.org/CompletedActionStatus"
				if d.Decision == model.Reject {
					status = "http://schema.org/FailedActionStatus"
				}
				e := entity{
					"@id": decisionIDs[i], "@type": "AssessAction",
					"additionalType": ref(fiveSafesSignOff),
					"name":           fmt.Sprintf("Stage %s (role %s): %s by %s", s.Name, s.Role, d.Decision, d.By),
					"agent":          ref(agentID),
					"object":         []entity{ref("./"), ref(manifestID)},
					"instrument":     ref(policyID),
					"endTime":        d.At.UTC().Format(time.RFC3339Nano),
					"actionStatus":   status,
					"result":         entity{"@type": "PropertyValue", "name": "approved manifest digest", "value": d.ManifestDigest},
					"description":    fmt.Sprintf("%s (via %s)", d.Comment, d.Via),
				}
				if d.Comment == "" {
					e["description"] = "no comment (via " + d.Via + ")"
				}
				graph = append(graph, e)
				i++
			}
		}
	}
	if in.Release != nil {
		graph = append(graph, entity{
			"@id": "#release", "@type": "TransferAction",
			"name":         fmt.Sprintf("Release into workspace %s (binding %s)", in.Release.Workspace, in.Release.Binding),
			"object":       ref("./"),
			"toLocation":   in.Release.Location,
			"endTime":      in.Release.At.UTC().Format(time.RFC3339Nano),
			"actionStatus": "http://schema.org/CompletedActionStatus",
			"result":       ref(BindingFile),
		}, entity{"@id": BindingFile, "@type": "File", "name": "AnalyticsWorkspaceDataBinding " + in.Release.Binding, "encodingFormat": "application/yaml"})
	}
	return json.MarshalIndent(entity{"@context": ROCrateContext, "@graph": graph}, "", "  ")
}

// tablesByFile maps each file a producer wrote to the table it holds.
func tablesByFile(exts []Extraction) map[string]connectors.Table {
	out := map[string]connectors.Table{}
	for _, e := range exts {
		byName := map[string]connectors.Table{}
		for _, t := range e.Tables {
			byName[t.Name] = t
		}
		for file, table := range e.TableFiles {
			if t, ok := byName[table]; ok {
				out[file] = t
			}
		}
	}
	return out
}

// extractionDescription says what a producer made (tables and row counts)
// and the facts of its run, e.g. "Tables: patients (120 rows). statement_id=...".
func extractionDescription(e Extraction) string {
	var parts []string
	if len(e.Tables) > 0 {
		var ts []string
		for _, t := range e.Tables {
			ts = append(ts, fmt.Sprintf("%s (%d rows, %d columns)", t.Name, t.Rows, len(t.Columns)))
		}
		parts = append(parts, "Tables: "+strings.Join(ts, ", ")+".")
	}
	for _, k := range slices.Sorted(maps.Keys(e.Properties)) {
		parts = append(parts, k+"="+e.Properties[k])
	}
	return strings.Join(parts, " ")
}

// uploadEntities are an upload's CreateAction and its instrument: the
// requester made the files, through Airlock's resumable (tus) uploads.
func uploadEntities(u *CrateUpload, requesterID string, fileIDs []string) []entity {
	inst := UploadInstrument()
	instID := "#instrument-" + slug(inst.Name)
	via := u.Via
	if via == "" {
		via = "update"
	}
	return []entity{
		{"@id": instID, "@type": "SoftwareApplication", "name": inst.Name, "version": inst.Version},
		{
			"@id": "#upload", "@type": "CreateAction",
			"name":         "Upload into quarantine",
			"description":  fmt.Sprintf("The requester uploaded %d files with resumable (tus) uploads straight into the staging store, and confirmed them (via %s).", len(fileIDs), via),
			"agent":        ref(requesterID),
			"instrument":   ref(instID),
			"result":       refs(fileIDs),
			"startTime":    u.StartedAt.UTC().Format(time.RFC3339Nano),
			"endTime":      u.ConfirmedAt.UTC().Format(time.RFC3339Nano),
			"actionStatus": "http://schema.org/CompletedActionStatus",
		},
	}
}

// checkEntities are the AssessActions of a request's automatic checks, made
// by Airlock itself.
func checkEntities(r model.RequestStatus, u *CrateUpload, ids []string) []entity {
	agentID := "#airlock"
	out := []entity{{"@id": agentID, "@type": "SoftwareApplication", "name": "Airlock", "version": version.Version}}
	sha := false
	for i, c := range r.Checks {
		status, outcome := "http://schema.org/CompletedActionStatus", "passed"
		if !c.Passed {
			status, outcome = "http://schema.org/FailedActionStatus", "failed"
		}
		e := entity{
			"@id": ids[i], "@type": "AssessAction",
			"additionalType": ref(fiveSafesCheck),
			"name":           fmt.Sprintf("Check %s: %s", c.Name, outcome),
			"description":    c.Message,
			"agent":          ref(agentID),
			"object":         ref("./"),
			"actionStatus":   status,
		}
		if u != nil {
			e["startTime"] = u.ConfirmedAt.UTC().Format(time.RFC3339Nano)
			e["endTime"] = u.CheckedAt.UTC().Format(time.RFC3339Nano)
		}
		if c.Name == CheckSHA256 {
			e["instrument"] = ref(sha256Term)
			sha = true
		}
		out = append(out, e)
	}
	if sha {
		out = append(out, entity{"@id": sha256Term, "@type": "DefinedTerm", "name": "sha-256 algorithm"})
	}
	return out
}

func checkIDs(r model.RequestStatus) []string {
	ids := make([]string, len(r.Checks))
	for i, c := range r.Checks {
		ids[i] = fmt.Sprintf("#check-%d-%s", i+1, slug(c.Name))
	}
	return ids
}

func decisionIDs(r model.RequestStatus) []string {
	var ids []string
	for _, s := range r.Stages {
		for j := range s.Decisions {
			ids = append(ids, fmt.Sprintf("#decision-%s-%d", s.Name, j+1))
		}
	}
	return ids
}

func personEntity(id string, c model.Contact) entity {
	e := entity{"@id": id, "@type": "Person", "name": c.Name}
	if c.Role != "" {
		e["jobTitle"] = c.Role
	}
	if c.Email != "" {
		e["email"] = c.Email
	}
	return e
}

func lastSegment(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[i+1:]
	}
	return p
}

// slug makes a fragment identifier from a name.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '.' || r == '@' || r == '_' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
