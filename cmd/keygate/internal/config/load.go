package config

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/keygate/keygate/authz"
	"github.com/keygate/keygate/internal/suggest"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem with a configuration file: where it is and what to
// do about it.
type Error struct {
	// File is the file's name as given to Load.
	File string
	// Line is the 1-based line at fault, or 0 when the problem has no line.
	Line int
	// Msg says what is wrong and, when it can, what to write instead.
	Msg string
	// Warning marks a setting that is valid but risky (see
	// [File.Warnings]); its text then reads "FILE:LINE: warning: MSG".
	Warning bool
}

func (e *Error) Error() string {
	msg := e.Msg
	if e.Warning {
		msg = "warning: " + msg
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
	}
	return fmt.Sprintf("%s: %s", e.File, msg)
}

// Errors are the problems found in one file, by line. Load and
// [File.Validate] return them as one error; errors.As extracts them.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
	return es
}

// File is a configuration loaded from YAML: the [Config] and where each
// key was written, so that [File.Validate] can name lines.
type File struct {
	// Name is the file name errors start with.
	Name string
	// Config is the decoded configuration, before defaults.
	Config Config

	lines map[string]int // dotted key path -> line
}

// Line returns the line of the dotted key path, such as "keys.max_stale",
// or of its nearest written parent, or 0.
func (f *File) Line(path string) int {
	for path != "" {
		if l, ok := f.lines[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// Has reports whether the dotted key path was written in the file.
func (f *File) Has(path string) bool {
	_, ok := f.lines[path]
	return ok
}

// LookupEnv looks up an environment variable, like os.LookupEnv.
type LookupEnv func(name string) (string, bool)

// ReadFile reads and loads the named file; see [Load].
func ReadFile(name string, env LookupEnv) (*File, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, Errors{{File: name, Msg: fmt.Sprintf("cannot read the file: %v", errors.Unwrap(err))}}
	}
	return Load(name, data, env)
}

// Load decodes data, a YAML document, into a [File]. Within scalar
// values (never keys) it replaces ${VAR} with the variable's value and
// ${VAR:-default} with the value, or default when the variable is unset
// or empty; $${ stands for a literal ${. A variable that is unset and has
// no default is an error naming it. A substituted value never changes
// the document's structure: it is always one scalar.
//
// Unknown keys, values of the wrong type and YAML syntax errors are
// errors that name their line. Load does not check the values: see
// [File.Validate]. Its errors are [Errors]. A nil env means os.LookupEnv.
func Load(name string, data []byte, env LookupEnv) (*File, error) {
	if env == nil {
		env = os.LookupEnv
	}
	f := &File{Name: name, lines: make(map[string]int)}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Msg: "the file is empty; start from examples/keygate.yaml"}}
		}
		return nil, f.yamlErrors(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, f.yamlErrors(err)
		}
		return nil, Errors{{File: name, Line: line, Msg: "a second YAML document (after ---); keep the whole configuration in one"}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, Errors{{File: name, Msg: "the file is empty; start from examples/keygate.yaml"}}
	}
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{File: name, Line: root.Line, Msg: "the configuration must be a mapping of keys such as upstream:, issuer: and audiences:"}}
	}

	var errs Errors
	expandNode(root, env, func(n *yaml.Node, msg string) {
		errs = append(errs, &Error{File: name, Line: n.Line, Msg: msg})
	})
	checkKeys(root, reflect.TypeFor[Config](), "", f.lines, func(n *yaml.Node, msg string) {
		errs = append(errs, &Error{File: name, Line: n.Line, Msg: msg})
	})
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	if err := root.Decode(&f.Config); err != nil {
		return nil, f.yamlErrors(err)
	}
	return f, nil
}

// lineRE reads the line out of yaml.v3's errors, which are only text.
var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlErrors turns errors of yaml.v3, whose messages start with
// "line N:", and *authz.LineError into Errors.
func (f *File) yamlErrors(err error) Errors {
	if le, ok := errors.AsType[*authz.LineError](err); ok {
		return Errors{&Error{File: f.Name, Line: le.Line, Msg: le.Msg}}
	}
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var errs Errors
	for _, m := range msgs {
		e := &Error{File: f.Name, Msg: m}
		if sm := lineRE.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			e.Msg = friendlier(sm[2])
		}
		errs = append(errs, e)
	}
	return errs.sorted()
}

// friendlier adds what to do to yaml.v3's type errors.
func friendlier(msg string) string {
	switch {
	case strings.Contains(msg, "into time.Duration"):
		return msg + `; write durations as Go duration strings such as "30s", "5m" or "1h30m" ("0s" for zero)`
	case strings.Contains(msg, "into bool"):
		return msg + "; write true or false"
	case strings.Contains(msg, "into int"):
		return msg + "; write a whole number"
	case strings.Contains(msg, "into []string"):
		return msg + "; write a list such as [a, b]"
	}
	return msg
}

// expandNode substitutes environment variables in every scalar value
// under n. Keys are left alone.
func expandNode(n *yaml.Node, env LookupEnv, report func(*yaml.Node, string)) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			expandNode(n.Content[i], env, report)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			expandNode(c, env, report)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		v, err := Expand(n.Value, env)
		if err != nil {
			report(n, err.Error())
			return
		}
		n.Value = v
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			// A plain scalar resolves by its new value: ${PORT} may be an
			// int, ${ON} a bool.
			n.Tag = ""
		}
	}
}

// Expand replaces ${VAR} and ${VAR:-default} in s, as [Load] describes.
func Expand(s string, env LookupEnv) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // $${ is a literal ${
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("%q has a ${ without its closing }; write ${VAR}, or $${ for a literal ${", s[i:])
		}
		expr := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("${%s} does not name an environment variable; names are letters, digits and _, and ${VAR:-default} gives a default", expr)
		}
		v, ok := env(name)
		switch {
		case ok && (v != "" || !hasDef):
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		default:
			return "", fmt.Errorf("environment variable %s is not set; set it, or give a default with ${%s:-value}", name, name)
		}
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkKeys walks n along with the Go type t, records the line of every
// key under its dotted path, and reports keys t has no field for. It is
// yaml.v3's KnownFields for a Node, whose Decode has no such option, with
// did-you-mean suggestions. Types that decode themselves (authz.Config)
// check their own keys.
func checkKeys(n *yaml.Node, t reflect.Type, path string, lines map[string]int, report func(*yaml.Node, string)) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		// The type checks its own keys (authz.Config); only note where
		// they are, for warnings such as access.default.
		recordLines(n, path, lines)
		return
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := make(map[string]reflect.Type)
		var names []string
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = sf.Type
			names = append(names, name)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok {
				report(k, unknownKeyMsg(k.Value, path, names))
				continue
			}
			lines[p] = k.Line
			checkKeys(v, ft, p, lines, report)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), lines, report)
		}
	}
}

// recordLines notes the line of every key under n, mappings and
// sequences alike ("access.rules[0].path"), checking nothing.
func recordLines(n *yaml.Node, path string, lines map[string]int) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path + "." + k.Value
			if _, ok := lines[p]; !ok {
				lines[p] = k.Line
			}
			recordLines(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			recordLines(c, p, lines)
		}
	}
}

func unknownKeyMsg(key, path string, known []string) string {
	if path == "" && (key == "rules" || key == "default" || key == "case_insensitive_paths") {
		return fmt.Sprintf("%q belongs under access: (the document authz.ParseYAML reads), as in access: {default: authenticated, rules: [...]}", key)
	}
	where := "at the top level"
	if path != "" {
		where = "under " + path
	}
	msg := fmt.Sprintf("unknown key %q %s", key, where)
	if s := closest(key, known); s != "" {
		return msg + fmt.Sprintf("; did you mean %q?", s)
	}
	return msg + "; the keys here are " + strings.Join(known, ", ") + " (see docs/config.md)"
}

// closest returns the name in known nearest to s, when near enough to be
// a typo.
func closest(s string, known []string) string {
	norm := func(x string) string { return strings.ReplaceAll(strings.ToLower(x), "-", "_") }
	best, bestD := "", 1<<30
	for _, k := range known {
		d := suggest.Distance(norm(s), norm(k))
		if d < bestD {
			best, bestD = k, d
		}
	}
	if bestD <= max(1, len(s)/3) {
		return best
	}
	return ""
}
