package model

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// FieldError is one problem with a document, located by its field path
// (for example spec.connections[0].type) and phrased so that a person can fix it.
type FieldError struct {
	File string // the file the document came from, when known
	Line int    // 1-based line in that file, when known
	Path string // field path, e.g. spec.objects[1].table.connection
	Msg  string // what is wrong and how to put it right
}

func (e FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// FieldErrors collects every problem found in a document, so a person can fix
// them all in one pass instead of one per attempt.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// AsFieldErrors returns the field errors inside err, if any.
func AsFieldErrors(err error) (FieldErrors, bool) {
	var fes FieldErrors
	if errors.As(err, &fes) {
		return fes, true
	}
	var fe FieldError
	if errors.As(err, &fe) {
		return FieldErrors{fe}, true
	}
	return nil, false
}

func (es *FieldErrors) add(line int, path, format string, args ...any) {
	*es = append(*es, FieldError{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// rawDocument is one YAML document of a (possibly multi-document) stream.
type rawDocument struct {
	node *yaml.Node // the document's top mapping
	line int
}

// splitDocuments parses a YAML stream into its documents. Malformed YAML is
// reported with the line yaml.v3 gives.
func splitDocuments(data []byte) ([]rawDocument, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []rawDocument
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, FieldErrors{malformed(data, err)}
		}
		if len(n.Content) == 0 {
			continue // empty document
		}
		top := n.Content[0]
		if top.Kind == yaml.ScalarNode && top.Tag == "!!null" && top.Value == "" {
			continue // empty document (e.g. a trailing ---, or only comments): yaml.v3 gives an empty null
		}
		if top.Kind != yaml.MappingNode {
			return nil, FieldErrors{{Line: top.Line, Msg: fmt.Sprintf("a document must be a YAML mapping with apiVersion, kind, metadata and spec, found %s", kindName(top))}}
		}
		docs = append(docs, rawDocument{node: top, line: top.Line})
	}
	return docs, nil
}

// stringField returns the scalar value of key in a mapping node.
func stringField(m *yaml.Node, key string) (string, bool) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode {
			return m.Content[i+1].Value, true
		}
	}
	return "", false
}

var durationType = reflect.TypeOf(Duration(0))

// yamlLineRE finds the line yaml.v3 puts at the start of its messages.
var yamlLineRE = regexp.MustCompile(`^line (\d+): `)

// malformed explains a YAML syntax error, with the line yaml.v3 gives in
// FieldError.Line, and names the usual cause when it can see it: a tab used
// for indentation.
func malformed(data []byte, err error) FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	hint := "check indentation, colons and quoting near that line"
	if line > 0 {
		lines := strings.Split(string(data), "\n")
		if line <= len(lines) {
			text := lines[line-1]
			indent := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
			if strings.Contains(indent, "\t") {
				hint = "the line is indented with a tab: YAML indentation must use spaces"
			}
		}
	}
	return FieldError{Line: line, Msg: "malformed YAML: " + msg + " (" + hint + ")"}
}

// decodeStrict walks node against the Go type of out, refusing unknown fields
// and wrong shapes with the field path named, then decodes it. The yaml.v3
// KnownFields option reports only "field x not found in type y", which does
// not tell a person where in the document the problem is.
//
// The parts with shape errors are left out of the decoding (they read as
// empty), so that the caller can still check the rest of the document's
// meaning and report every problem in one pass; see mergeErrors.
func decodeStrict(node *yaml.Node, out any) FieldErrors {
	var errs FieldErrors
	clean := checkNode(node, reflect.TypeOf(out).Elem(), "", &errs)
	if err := clean.Decode(out); err != nil {
		errs.add(node.Line, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return errs
}

// mergeErrors adds to the shape errors the meaning errors that are about other
// fields: a field refused for its shape was decoded as empty, and "missing"
// for it (or for anything inside it) would only repeat the first error.
func mergeErrors(shape, meaning FieldErrors) FieldErrors {
	out := append(FieldErrors(nil), shape...)
	for _, m := range meaning {
		covered := false
		for _, s := range shape {
			if pathOverlaps(s.Path, m.Path) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, m)
		}
	}
	return out
}

// pathOverlaps reports whether one field path is the other or lies inside it.
func pathOverlaps(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	inside := func(p, root string) bool {
		return p == root || strings.HasPrefix(p, root+".") || strings.HasPrefix(p, root+"[")
	}
	return inside(a, b) || inside(b, a)
}

// checkNode reports every shape problem under n and returns the node to
// decode: n itself when all is well, otherwise a copy without the unknown or
// repeated fields and with wrongly shaped values replaced by null.
func checkNode(n *yaml.Node, t reflect.Type, path string, errs *FieldErrors) *yaml.Node {
	orig := n
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return orig // an empty value; required-field checks come later
	}
	null := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			errs.add(n.Line, path, "expected a duration such as 72h or 30m, found %s", kindName(n))
			return null
		}
		if _, err := time.ParseDuration(n.Value); err != nil {
			errs.add(n.Line, path, "invalid duration %q: use a number with a unit, such as 72h, 90m or 45s", n.Value)
			return null
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			errs.add(n.Line, path, "expected a mapping with fields %s, found %s", strings.Join(fieldNames(t), ", "), kindName(n))
			return null
		}
		fields := structFields(t)
		seen := map[string]bool{}
		changed := false
		content := make([]*yaml.Node, 0, len(n.Content))
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if seen[k.Value] {
				errs.add(k.Line, p, "field given twice; keep one")
				changed = true
				continue
			}
			seen[k.Value] = true
			ft, ok := fields[k.Value]
			if !ok {
				errs.add(k.Line, p, "unknown field %q (expected one of: %s)", k.Value, strings.Join(fieldNames(t), ", "))
				changed = true
				continue
			}
			cv := checkNode(v, ft, p, errs)
			changed = changed || cv != v
			content = append(content, k, cv)
		}
		if changed {
			return withContent(n, content)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			errs.add(n.Line, path, "expected a list (items starting with \"- \"), found %s", kindName(n))
			return null
		}
		changed := false
		content := make([]*yaml.Node, len(n.Content))
		for i, item := range n.Content {
			content[i] = checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
			changed = changed || content[i] != item
		}
		if changed {
			return withContent(n, content)
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			errs.add(n.Line, path, "expected a mapping of keys to values, found %s", kindName(n))
			return null
		}
		changed := false
		content := make([]*yaml.Node, len(n.Content))
		copy(content, n.Content)
		for i := 0; i+1 < len(n.Content); i += 2 {
			content[i+1] = checkNode(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value), errs)
			changed = changed || content[i+1] != n.Content[i+1]
		}
		if changed {
			return withContent(n, content)
		}
	default: // scalars
		if n.Kind != yaml.ScalarNode {
			errs.add(n.Line, path, "expected a single value, found %s", kindName(n))
			return null
		}
		switch t.Kind() {
		case reflect.Int, reflect.Int32, reflect.Int64:
			if n.Tag != "!!int" {
				errs.add(n.Line, path, "expected a whole number, found %q", n.Value)
				return null
			}
		case reflect.Bool:
			if n.Tag != "!!bool" {
				errs.add(n.Line, path, "expected true or false, found %q", n.Value)
				return null
			}
		}
	}
	return orig
}

// withContent is a copy of n with other children.
func withContent(n *yaml.Node, content []*yaml.Node) *yaml.Node {
	c := *n
	c.Content = content
	return &c
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	default:
		return "an alias"
	}
}

// structFields maps each YAML key of t to its field type.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for k := range structFields(t) {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Duration is a time.Duration written in YAML and JSON as "72h", "30m".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a number with a unit, such as 72h", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes a duration string (used by JSON).
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a duration string (used by JSON).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: use a number with a unit, such as 72h", string(b))
	}
	*d = Duration(v)
	return nil
}
