// Package model is Airlock's domain model: the data source documents the
// platform writes, the approval policies that govern them, and the state of a
// request as it moves through the airlock. It has no I/O beyond parsing bytes,
// so workflows, activities, the CLI and the API can all share it.
package model

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// The document identity Airlock accepts, exactly as the platform writes it.
const (
	APIVersion      = "xlscsde.nhs.uk/v1"
	KindDataSource  = "AnalyticsWorkspaceDataSource"
	KindDataBinding = "AnalyticsWorkspaceDataBinding"

	// TypeImport is automated ingress: Airlock pulls from the connections.
	TypeImport = "Import"
	// TypeUploaded is manual ingress: a person uploads the files.
	TypeUploaded = "Uploaded"
)

// Connection types a data source may name.
const (
	ConnDatabricks = "databricks"
	ConnS3         = "s3"
	ConnAzureBlob  = "azureblob"
	ConnDLT        = "dlt"
	ConnFile       = "file"
	ConnPVC        = "pvc"
)

// ConnectionTypes lists every connection type, in the order error messages give them.
var ConnectionTypes = []string{ConnDatabricks, ConnS3, ConnAzureBlob, ConnDLT, ConnFile, ConnPVC}

// ObjectMeta is the Kubernetes-style metadata of a document.
type ObjectMeta struct {
	Name        string            `yaml:"name" json:"name"`
	Namespace   string            `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// DataSource is an AnalyticsWorkspaceDataSource document.
type DataSource struct {
	APIVersion string         `yaml:"apiVersion" json:"apiVersion"`
	Kind       string         `yaml:"kind" json:"kind"`
	Metadata   ObjectMeta     `yaml:"metadata" json:"metadata"`
	Spec       DataSourceSpec `yaml:"spec" json:"spec"`
}

// DataSourceSpec describes what the data is, who publishes it and where it lives.
type DataSourceSpec struct {
	Type        string       `yaml:"type" json:"type"`
	Publisher   Publisher    `yaml:"publisher" json:"publisher"`
	Project     Project      `yaml:"project" json:"project"`
	DisplayName string       `yaml:"displayName" json:"displayName"`
	Description string       `yaml:"description,omitempty" json:"description,omitempty"`
	License     string       `yaml:"license,omitempty" json:"license,omitempty"`
	Connections []Connection `yaml:"connections" json:"connections"`
	Objects     []Object     `yaml:"objects,omitempty" json:"objects,omitempty"`
}

// Publisher is the organisation that provides the data.
type Publisher struct {
	Organisation string  `yaml:"organisation" json:"organisation"`
	Contact      Contact `yaml:"contact" json:"contact"`
}

// Contact is the person to ask about the data.
type Contact struct {
	Name  string `yaml:"name" json:"name"`
	Role  string `yaml:"role,omitempty" json:"role,omitempty"`
	Email string `yaml:"email,omitempty" json:"email,omitempty"`
}

// Project is the research project the data is for.
type Project struct {
	ID string `yaml:"id" json:"id"`
}

// Connection is a place data comes from. Credentials name secret keys, never
// values; a secret provider resolves them inside the worker.
type Connection struct {
	Type        string      `yaml:"type" json:"type"`
	Name        string      `yaml:"name" json:"name"`
	URL         string      `yaml:"url,omitempty" json:"url,omitempty"`
	Credentials Credentials `yaml:"credentials,omitempty" json:"credentials,omitempty"`
	// Extensions for connection types whose URL does not say everything.
	Endpoint  string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	Region    string `yaml:"region,omitempty" json:"region,omitempty"`
	Prefix    string `yaml:"prefix,omitempty" json:"prefix,omitempty"`
	PathStyle bool   `yaml:"pathStyle,omitempty" json:"pathStyle,omitempty"`
}

// Credentials holds the names of secret keys a connection needs. Each field is
// the key under which the secret provider holds the value.
type Credentials struct {
	UserKey             string `yaml:"userKey,omitempty" json:"userKey,omitempty"`
	PasswordKey         string `yaml:"passwordKey,omitempty" json:"passwordKey,omitempty"`
	TokenKey            string `yaml:"tokenKey,omitempty" json:"tokenKey,omitempty"`
	ClientIDKey         string `yaml:"clientIdKey,omitempty" json:"clientIdKey,omitempty"`
	ClientSecretKey     string `yaml:"clientSecretKey,omitempty" json:"clientSecretKey,omitempty"`
	TenantIDKey         string `yaml:"tenantIdKey,omitempty" json:"tenantIdKey,omitempty"`
	AccessKeyIDKey      string `yaml:"accessKeyIdKey,omitempty" json:"accessKeyIdKey,omitempty"`
	SecretAccessKeyKey  string `yaml:"secretAccessKeyKey,omitempty" json:"secretAccessKeyKey,omitempty"`
	SessionTokenKey     string `yaml:"sessionTokenKey,omitempty" json:"sessionTokenKey,omitempty"`
	AccountKeyKey       string `yaml:"accountKeyKey,omitempty" json:"accountKeyKey,omitempty"`
	SASTokenKey         string `yaml:"sasTokenKey,omitempty" json:"sasTokenKey,omitempty"`
	ConnectionStringKey string `yaml:"connectionStringKey,omitempty" json:"connectionStringKey,omitempty"`
}

// Keys returns the secret key names the credentials refer to, by field name.
func (c Credentials) Keys() map[string]string {
	out := map[string]string{}
	add := func(field, key string) {
		if key != "" {
			out[field] = key
		}
	}
	add("userKey", c.UserKey)
	add("passwordKey", c.PasswordKey)
	add("tokenKey", c.TokenKey)
	add("clientIdKey", c.ClientIDKey)
	add("clientSecretKey", c.ClientSecretKey)
	add("tenantIdKey", c.TenantIDKey)
	add("accessKeyIdKey", c.AccessKeyIDKey)
	add("secretAccessKeyKey", c.SecretAccessKeyKey)
	add("sessionTokenKey", c.SessionTokenKey)
	add("accountKeyKey", c.AccountKeyKey)
	add("sasTokenKey", c.SASTokenKey)
	add("connectionStringKey", c.ConnectionStringKey)
	return out
}

// Object is one thing to bring in: exactly one of a table, a single file, or
// every file under a prefix.
type Object struct {
	Table  *TableObject `yaml:"table,omitempty" json:"table,omitempty"`
	File   *FileObject  `yaml:"file,omitempty" json:"file,omitempty"`
	Prefix *FileObject  `yaml:"prefix,omitempty" json:"prefix,omitempty"`
}

// TableObject is a table read through a SQL endpoint.
type TableObject struct {
	Name       string `yaml:"name" json:"name"`
	Connection string `yaml:"connection" json:"connection"`
	Query      string `yaml:"query,omitempty" json:"query,omitempty"`
	Format     string `yaml:"format,omitempty" json:"format,omitempty"`
}

// FileObject is a file, or a folder prefix, within a connection.
type FileObject struct {
	Path       string `yaml:"path" json:"path"`
	Connection string `yaml:"connection" json:"connection"`
}

// ConnectionName returns the connection the object reads from.
func (o Object) ConnectionName() string {
	switch {
	case o.Table != nil:
		return o.Table.Connection
	case o.File != nil:
		return o.File.Connection
	case o.Prefix != nil:
		return o.Prefix.Connection
	}
	return ""
}

// Describe names the object for people: "table patients", "file visits.csv".
func (o Object) Describe() string {
	switch {
	case o.Table != nil:
		return "table " + o.Table.Name
	case o.File != nil:
		return "file " + o.File.Path
	case o.Prefix != nil:
		return "prefix " + o.Prefix.Path
	}
	return "empty object"
}

// Connection returns the named connection of the data source.
func (ds DataSource) Connection(name string) (Connection, bool) {
	for _, c := range ds.Spec.Connections {
		if c.Name == name {
			return c, true
		}
	}
	return Connection{}, false
}

// DataBinding is an AnalyticsWorkspaceDataBinding: it binds a data source to
// the workspace it was brought in for.
type DataBinding struct {
	APIVersion string          `yaml:"apiVersion" json:"apiVersion"`
	Kind       string          `yaml:"kind" json:"kind"`
	Metadata   ObjectMeta      `yaml:"metadata" json:"metadata"`
	Spec       DataBindingSpec `yaml:"spec" json:"spec"`
}

// DataBindingSpec names the two ends of a binding.
type DataBindingSpec struct {
	Workspace  string `yaml:"workspace" json:"workspace"`
	DataSource string `yaml:"datasource" json:"datasource"`
}

// Documents is everything found in one or more YAML files.
type Documents struct {
	DataSources []DataSource
	Bindings    []DataBinding
}

// ParseDocuments reads a YAML stream of data source and binding documents.
// file names the source in error messages. Every problem is reported, each
// with its field path; on any problem nothing is returned.
func ParseDocuments(file string, data []byte) (Documents, error) {
	var out Documents
	raws, err := splitDocuments(data)
	if err != nil {
		return out, withFile(err.(FieldErrors), file)
	}
	if len(raws) == 0 {
		return out, withFile(FieldErrors{{Msg: "no documents found: expected an " + KindDataSource + " (apiVersion " + APIVersion + ")"}}, file)
	}
	var errs FieldErrors
	for i, raw := range raws {
		prefix := ""
		if len(raws) > 1 {
			prefix = fmt.Sprintf("document %d: ", i+1)
		}
		api, _ := stringField(raw.node, "apiVersion")
		kind, _ := stringField(raw.node, "kind")
		var docErrs FieldErrors
		switch {
		case api != APIVersion:
			docErrs.add(raw.line, "apiVersion", "unsupported apiVersion %q (expected %s)", api, APIVersion)
		case kind == KindDataSource:
			var ds DataSource
			docErrs = mergeErrors(decodeStrict(raw.node, &ds), ds.Validate())
			out.DataSources = append(out.DataSources, ds)
		case kind == KindDataBinding:
			var b DataBinding
			docErrs = mergeErrors(decodeStrict(raw.node, &b), b.Validate())
			out.Bindings = append(out.Bindings, b)
		default:
			docErrs.add(raw.line, "kind", "unsupported kind %q (expected %s or %s)", kind, KindDataSource, KindDataBinding)
		}
		for _, e := range docErrs {
			e.Msg = prefix + e.Msg
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return Documents{}, withFile(errs, file)
	}
	return out, nil
}

func withFile(errs FieldErrors, file string) FieldErrors {
	for i := range errs {
		errs[i].File = file
	}
	return errs
}

// nameRE is a Kubernetes DNS-1123 label: safe as a path segment and a search
// attribute, and what the platform's names already are.
var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidName reports whether s can name a data source, workspace, project,
// policy or stage: lower-case letters, digits and '-', at most 63 characters.
func ValidName(s string) bool { return len(s) <= 63 && nameRE.MatchString(s) }

// NameRule is the sentence error messages use to say what a valid name is.
const NameRule = "use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"

// Validate checks a data source's meaning (its shape is checked while parsing).
func (ds DataSource) Validate() FieldErrors {
	var errs FieldErrors
	if ds.APIVersion != APIVersion {
		errs.add(0, "apiVersion", "unsupported apiVersion %q (expected %s)", ds.APIVersion, APIVersion)
	}
	if ds.Kind != KindDataSource {
		errs.add(0, "kind", "expected %s, found %q", KindDataSource, ds.Kind)
	}
	switch {
	case ds.Metadata.Name == "":
		errs.add(0, "metadata.name", "missing: give the data source a name (%s)", NameRule)
	case !ValidName(ds.Metadata.Name):
		errs.add(0, "metadata.name", "invalid name %q: %s", ds.Metadata.Name, NameRule)
	}
	s := ds.Spec
	switch s.Type {
	case TypeImport, TypeUploaded:
	case "":
		errs.add(0, "spec.type", "missing: set it to %s (Airlock pulls the data) or %s (a person uploads it)", TypeImport, TypeUploaded)
	default:
		errs.add(0, "spec.type", "unknown type %q (expected one of: %s, %s)", s.Type, TypeImport, TypeUploaded)
	}
	if strings.TrimSpace(s.Publisher.Organisation) == "" {
		errs.add(0, "spec.publisher.organisation", "missing: name the organisation that publishes the data")
	}
	if strings.TrimSpace(s.Publisher.Contact.Name) == "" {
		errs.add(0, "spec.publisher.contact.name", "missing: name the person to contact about the data")
	}
	switch {
	case s.Project.ID == "":
		errs.add(0, "spec.project.id", "missing: give the id of the project the data is for")
	case !ValidName(s.Project.ID):
		errs.add(0, "spec.project.id", "invalid project id %q: %s", s.Project.ID, NameRule)
	}
	if strings.TrimSpace(s.DisplayName) == "" {
		errs.add(0, "spec.displayName", "missing: give the dataset a human-readable name")
	}
	if len(s.Connections) == 0 {
		errs.add(0, "spec.connections", "missing: list at least one connection (type and name)")
	}
	names := map[string]int{}
	for i, c := range s.Connections {
		p := fmt.Sprintf("spec.connections[%d]", i)
		if !contains(ConnectionTypes, c.Type) {
			if c.Type == "" {
				errs.add(0, p+".type", "missing (expected one of: %s)", strings.Join(ConnectionTypes, ", "))
			} else {
				errs.add(0, p+".type", "unknown connection type %q (expected one of: %s)", c.Type, strings.Join(ConnectionTypes, ", "))
			}
		}
		switch {
		case c.Name == "":
			errs.add(0, p+".name", "missing: objects refer to a connection by its name")
		default:
			if j, dup := names[c.Name]; dup {
				errs.add(0, p+".name", "duplicate connection name %q (also spec.connections[%d]); give each connection its own name", c.Name, j)
			}
			names[c.Name] = i
		}
		keys := c.Credentials.Keys()
		for _, field := range sortedKeys(keys) { // sorted: the same errors in the same order every time
			if strings.ContainsAny(keys[field], " \t\n") {
				errs.add(0, p+".credentials."+field, "must name a secret key (letters, digits, '-', '_' or '.'), not hold a value")
			}
		}
		if (c.Type == ConnDatabricks || c.Type == ConnAzureBlob) && c.URL == "" {
			errs.add(0, p+".url", "missing: a %s connection needs the URL of the service", c.Type)
		}
		if c.Type == ConnFile && c.URL != "" && !strings.HasPrefix(c.URL, "file:") {
			errs.add(0, p+".url", "a file connection's url must be a file: URL such as file:///sample-data (resolved inside the worker's file root), found %q", c.URL)
		}
	}
	if s.Type == TypeImport && len(s.Objects) == 0 {
		errs.add(0, "spec.objects", "missing: an Import data source lists the objects to bring in (table, file or prefix)")
	}
	for i, o := range s.Objects {
		p := fmt.Sprintf("spec.objects[%d]", i)
		set := 0
		for _, present := range []bool{o.Table != nil, o.File != nil, o.Prefix != nil} {
			if present {
				set++
			}
		}
		if set != 1 {
			errs.add(0, p, "give exactly one of table, file or prefix (found %d)", set)
			continue
		}
		var sub, conn string
		switch {
		case o.Table != nil:
			sub, conn = "table", o.Table.Connection
			if o.Table.Name == "" {
				errs.add(0, p+".table.name", "missing: name the table to read")
			}
			switch o.Table.Format {
			case "", "parquet", "csv":
			default:
				errs.add(0, p+".table.format", "unknown format %q (expected parquet or csv)", o.Table.Format)
			}
		case o.File != nil:
			sub, conn = "file", o.File.Connection
			if err := checkRelPath(o.File.Path); err != "" {
				errs.add(0, p+".file.path", "%s", err)
			}
		default:
			sub, conn = "prefix", o.Prefix.Connection
			if o.Prefix.Path != "" && o.Prefix.Path != "/" {
				if err := checkRelPath(strings.TrimSuffix(o.Prefix.Path, "/")); err != "" {
					errs.add(0, p+".prefix.path", "%s", err)
				}
			}
		}
		if conn == "" {
			errs.add(0, p+"."+sub+".connection", "missing: name one of the connections in spec.connections (%s)", strings.Join(sortedKeys(names), ", "))
		} else if _, ok := names[conn]; !ok {
			errs.add(0, p+"."+sub+".connection", "no connection named %q in spec.connections (expected one of: %s)", conn, strings.Join(sortedKeys(names), ", "))
		}
	}
	return errs
}

// checkRelPath explains why p cannot name a file inside a connection, or returns "".
func checkRelPath(p string) string {
	if _, err := CleanRelPath(p); err != nil {
		return err.Error()
	}
	return ""
}

// Validate checks a binding.
func (b DataBinding) Validate() FieldErrors {
	var errs FieldErrors
	if b.Metadata.Name == "" {
		errs.add(0, "metadata.name", "missing: give the binding a name (%s)", NameRule)
	} else if !ValidName(b.Metadata.Name) {
		errs.add(0, "metadata.name", "invalid name %q: %s", b.Metadata.Name, NameRule)
	}
	if !ValidName(b.Spec.Workspace) {
		errs.add(0, "spec.workspace", "missing or invalid workspace %q: %s", b.Spec.Workspace, NameRule)
	}
	if !ValidName(b.Spec.DataSource) {
		errs.add(0, "spec.datasource", "missing or invalid data source name %q: %s", b.Spec.DataSource, NameRule)
	}
	return errs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	// The keys are sorted below, so the map's iteration order never shows.
	//workflowcheck:ignore
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
