package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	yaml2 "go.yaml.in/yaml/v2"
	"go.yaml.in/yaml/v3"
)

// maxFileSize bounds what meshexp reads from a settings or certificate
// file: none is anywhere near it, and a device or a huge file is refused
// instead of read into memory.
const maxFileSize = 4 << 20

// ReadRegularFile reads a regular file of at most 4 MiB. Anything else —
// a named pipe, a device, a directory, a socket — is refused without
// blocking: the file is opened with O_NONBLOCK (so opening a FIFO with no
// writer returns at once) and checked with fstat before any read.
func ReadRegularFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist", path)
		}
		return nil, fmt.Errorf("cannot open %s: %v", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot stat %s: %v", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a regular file", path, describeMode(fi.Mode()))
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("%s is %d bytes; meshexp reads files of at most %d", path, fi.Size(), maxFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, err)
	}
	return data, nil
}

// describeMode names a kind of file in words.
func describeMode(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// fileValue is one setting's text in the config file and where it is.
type fileValue struct {
	text string
	line int
}

// parseFile reads the config file's YAML node by node, so every value is
// the text as written: no YAML 1.1 coercion (`no` → false, `0123` → 83),
// and a problem names the key, the line and what was expected instead of
// a Go type.
func parseFile(path string, data []byte, scope Scope) (map[string]fileValue, Problems) {
	in := "config file " + path
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{{Input: in, Message: "is not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: "),
			Fix: "write settings as `flag-name: value` lines"}}
	}
	if len(doc.Content) == 0 {
		return nil, nil // an empty file sets nothing
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, Problems{{Input: in, Message: fmt.Sprintf("line %d: holds %s; the file must map setting names to values", root.Line, nodeKind(root)),
			Fix: "write settings as `flag-name: value` lines, e.g. `inbound-port: 4143`"}}
	}
	vals := map[string]fileValue{}
	var probs Problems
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		at := fmt.Sprintf("%s, line %d", path, k.Line)
		if k.Kind != yaml.ScalarNode {
			probs = append(probs, Problem{Input: in, Message: fmt.Sprintf("line %d: a key is %s", k.Line, nodeKind(k)), Fix: "use the flag names of `" + commandOf(scope) + " --help` as keys"})
			continue
		}
		s := lookupKey(scope, k.Value)
		if s == nil {
			probs = append(probs, Problem{Input: in, Message: fmt.Sprintf("line %d: unknown key %s", k.Line, quote(k.Value)), Fix: "use the flag names listed in `" + commandOf(scope) + " --help`, without the dashes in front"})
			continue
		}
		text, msg, fix := nodeText(s, v)
		if msg != "" {
			probs = append(probs, Problem{Setting: s.Name, Input: fmt.Sprintf("--%s (key %s in %s)", s.FlagName(), s.FlagName(), at), Message: msg, Fix: fix})
			continue
		}
		vals[s.Name] = fileValue{text: text, line: k.Line}
	}
	return vals, probs
}

// nodeText turns a value node into the setting's text, or says why not.
func nodeText(s *Setting, v *yaml.Node) (text, msg, fix string) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.ScalarNode:
		return scalarText(s, v)
	case yaml.SequenceNode:
		if !s.List {
			return "", "expects one value, not a list", "write `" + s.FlagName() + ": VALUE`"
		}
		parts := make([]string, 0, len(v.Content))
		for _, item := range v.Content {
			if item.Kind == yaml.AliasNode && item.Alias != nil {
				item = item.Alias
			}
			if item.Kind != yaml.ScalarNode {
				return "", fmt.Sprintf("list item on line %d is %s; expected a single value", item.Line, nodeKind(item)), "write the list as `" + s.FlagName() + ": [a, b]`"
			}
			t, msg, fix := scalarText(s, item)
			if msg != "" {
				return "", msg, fix
			}
			parts = append(parts, t)
		}
		return strings.Join(parts, ","), "", ""
	}
	return "", fmt.Sprintf("is %s; expected a value", nodeKind(v)), "write `" + s.FlagName() + ": VALUE`"
}

// scalarText returns a scalar's text as written. A plain (unquoted) scalar
// that YAML 1.1 readers (yaml.v2, PyYAML, Kubernetes' sigs.k8s.io/yaml)
// turn into something else — `no` into false, `0123` into 83, `1_000`
// into 1000 — is refused for a text or number setting: the file would
// mean different things to different readers. An empty value, `~` or
// `null` sets nothing.
func scalarText(s *Setting, v *yaml.Node) (text, msg, fix string) {
	if v.Tag == "!!null" && v.Style == 0 && (v.Value == "" || v.Value == "~" || strings.EqualFold(v.Value, "null")) {
		return "", "", ""
	}
	// Booleans and choices have one parser for every source; a mark is read
	// with YAML 1.1's own integer prefixes (0x, 0 for octal).
	if v.Style != 0 || s.Kind == "bool" || s.Kind == "choice" || s.Kind == "mark" {
		return v.Value, "", ""
	}
	if other, ok := yaml11Reading(v.Value); ok {
		return "", fmt.Sprintf("%s is read as %s by YAML 1.1 readers", quote(v.Value), other),
			fmt.Sprintf("quote it to mean the text: %s: %q", s.FlagName(), v.Value)
	}
	return v.Value, "", ""
}

// yaml11Reading says what a YAML 1.1 reader makes of a plain scalar, when
// that is not the text itself.
func yaml11Reading(value string) (string, bool) {
	var x any
	if err := yaml2.Unmarshal([]byte(value), &x); err != nil {
		return "", false
	}
	switch t := x.(type) {
	case string:
		return "", false
	case nil:
		return "null (no value)", true
	case bool:
		if value == fmt.Sprint(t) {
			return "", false
		}
		return fmt.Sprintf("the boolean %v", t), true
	default:
		if fmt.Sprint(t) == value {
			return "", false
		}
		return fmt.Sprintf("the number %v", t), true
	}
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping (key: value pairs)"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "an alias"
}

// commandOf names the command whose settings scope binds, for the hints
// of a config file's problems.
func commandOf(scope Scope) string {
	switch scope {
	case ScopeDNSCommand:
		return "meshexp dns"
	case ScopeControllerCommand:
		return "meshexp controller"
	}
	return "meshexp bootstrap"
}
