package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// Error is one problem with the configuration, at a key and line.
type Error struct {
	// File is the configuration file ("" for a Config built in code).
	File string
	// Line is the line of the key, or of the nearest enclosing key present
	// in the file (0 when unknown).
	Line int
	// Key is the key's path: "hold_down", "bonds[0].pfs[1]" ("" for the
	// file as a whole).
	Key string
	// Msg says what is wrong and what is expected.
	Msg string
	// Err is the underlying error, if any (a failed host lookup).
	Err error
}

// Error renders "file:line: key: msg[: err]".
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap returns ErrInvalid and the underlying error, if any.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// yamlLine matches the line yaml.v3 puts in its messages.
const yamlLine = `^(?:yaml: )?line (\d+): (.*)$`

// yamlError turns an error of yaml.v3 into *Errors with the file name.
func yamlError(file string, err error) error {
	re := regexp.MustCompile(yamlLine)
	one := func(msg string) error {
		if m := re.FindStringSubmatch(strings.TrimSpace(msg)); m != nil {
			line, _ := strconv.Atoi(m[1])
			// For syntax errors yaml.v3 gives the line where the
			// enclosing block starts, not always the offending one.
			return &Error{File: file, Line: line, Msg: "invalid YAML at or after this line: " + m[2]}
		}
		return &Error{File: file, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, len(te.Errors))
		for i, msg := range te.Errors {
			errs[i] = one(msg)
		}
		return errors.Join(errs...)
	}
	var ce *Error
	if errors.As(err, &ce) {
		ce.File = file
		return ce
	}
	return one(err.Error())
}

// typeOf is the reflect.Type of T.
func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// checker walks the YAML tree along Config's types before decoding, so
// that every unknown key and badly typed value is reported with its line
// and key, and records each key's line for Validate.
type checker struct {
	file  string
	lines map[string]int
	errs  []error
}

// add records a problem at key and line.
func (ck *checker) add(line int, key, format string, args ...any) {
	ck.errs = append(ck.errs, &Error{File: ck.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// node checks n as a value of type t at key path.
func (ck *checker) node(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, seen := ck.lines[path]; !seen && path != "" {
		ck.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // no value: the default stays
	}
	if u, ok := reflect.New(t).Interface().(yaml.Unmarshaler); ok {
		if err := u.UnmarshalYAML(n); err != nil {
			var e *Error
			if errors.As(err, &e) {
				ck.add(e.Line, path, "%s", e.Msg)
			} else {
				ck.add(n.Line, path, "%v", err)
			}
		}
		return
	}
	switch {
	case t == typeOf[time.Duration]():
		if _, err := time.ParseDuration(n.Value); n.Kind != yaml.ScalarNode || err != nil {
			ck.add(n.Line, path, "expected a duration such as 200ms or 30s, got %s", describe(n))
		}
	case t.Kind() == reflect.Struct:
		ck.mapping(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ck.add(n.Line, path, "expected a list, got %s", describe(n))
			return
		}
		for i, e := range n.Content {
			ck.node(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			ck.add(n.Line, path, "expected a string, got %s", describe(n))
		}
	case t.Kind() == reflect.Int:
		if _, err := strconv.Atoi(n.Value); n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil {
			ck.add(n.Line, path, "expected an integer, got %s", describe(n))
		}
	case t.Kind() == reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			ck.add(n.Line, path, "expected true or false, got %s", describe(n))
		}
	default:
		ck.add(n.Line, path, "internal error: no check for %s", t)
	}
}

// mapping checks n as the struct type t.
func (ck *checker) mapping(n *yaml.Node, t reflect.Type, path string) {
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	expected := "one of " + strings.Join(names, ", ")
	if n.Kind != yaml.MappingNode {
		ck.add(n.Line, path, "expected a mapping with keys %s, got %s", expected, describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if path != "" {
			key = path + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			ck.add(k.Line, key, "repeated key (first on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		ft, ok := fields[k.Value]
		if !ok {
			ck.add(k.Line, key, "unknown key, expected %s", expected)
			continue
		}
		ck.lines[key] = k.Line
		ck.node(v, ft, key)
	}
}

// describe renders a node for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	}
	return "nothing"
}
