package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// Where a value came from, for messages that name the input.
type sourceKind int

const (
	fromDefault sourceKind = iota
	fromFile
	fromEnv
	fromFlag
)

type origin struct {
	kind  sourceKind
	name  string // env var, config file path
	value string
}

// TextValue is a pflag.Value that keeps the text as given; parsing happens
// later so that every bad value is reported, not only the first. A List
// value given several times appends, comma-separated.
type TextValue struct {
	S    string
	Kind string // shown in --help; "bool" lets the flag stand alone
	List bool
	set  bool
}

func (v *TextValue) String() string { return v.S }

// Type names the value in --help.
func (v *TextValue) Type() string {
	switch {
	case v.Kind != "":
		return v.Kind
	case v.List:
		return "list"
	}
	return "string"
}

// Set records s, appending to a List value set before.
func (v *TextValue) Set(s string) error {
	if v.List && v.set && v.S != "" {
		v.S += "," + s
	} else {
		v.S = s
	}
	v.set = true
	return nil
}

// Binding ties settings to a command's flags.
type Binding struct {
	scope      Scope
	flags      *pflag.FlagSet
	values     map[string]*TextValue
	configFile *string
}

// Bind registers the flags of every setting in scope, plus --config, on fs.
func Bind(fs *pflag.FlagSet, scope Scope) *Binding {
	b := &Binding{scope: scope, flags: fs, values: map[string]*TextValue{}}
	b.configFile = fs.String("config", "", "YAML file with settings keyed by flag name (flags and environment override it) [env MESHEXP_CONFIG]")
	for _, s := range Settings(scope) {
		v := &TextValue{List: s.List, Kind: s.Kind}
		b.values[s.Name] = v
		fs.Var(v, s.Name, s.Usage+s.EnvHelp())
		f := fs.Lookup(s.Name)
		if s.Default != "" {
			f.DefValue = s.Default
		}
		if s.Kind == "bool" {
			f.NoOptDefVal = "true"
		}
	}
	return b
}

// Load resolves every bound setting (flag > environment > file > default)
// and parses it. It returns the config and every problem found while
// reading and parsing; semantic checks come from Validate.
func (b *Binding) Load(getenv func(string) (string, bool)) (*Config, Problems) {
	c := &Config{origins: map[string]origin{}}
	var probs Problems

	file, fileVals, fileProbs := b.readFile(getenv)
	probs = append(probs, fileProbs...)

	for _, s := range Settings(b.scope) {
		o := origin{kind: fromDefault, value: s.Default}
		if v, ok := fileVals[s.Name]; ok {
			o = origin{kind: fromFile, name: file, value: v}
		}
		for _, e := range s.Env {
			if v, ok := getenv(e); ok {
				o = origin{kind: fromEnv, name: e, value: v}
				break
			}
		}
		if f := b.flags.Lookup(s.Name); f != nil && f.Changed {
			o = origin{kind: fromFlag, value: b.values[s.Name].S}
		}
		c.origins[s.Name] = o
		if s.Required && strings.TrimSpace(o.value) == "" {
			probs = append(probs, Problem{Input: s.inputName(o), Message: "is not set", Fix: s.howToSet()})
			continue
		}
		if err := s.parse(c, o.value); err != nil {
			probs = append(probs, problemFor(s, o, err))
		}
	}
	c.fillDerived()
	return c, probs
}

// readFile loads the --config / MESHEXP_CONFIG file as flat key → text.
func (b *Binding) readFile(getenv func(string) (string, bool)) (string, map[string]string, Problems) {
	path := *b.configFile
	input := "--config"
	if path == "" {
		if v, ok := getenv("MESHEXP_CONFIG"); ok && v != "" {
			path, input = v, "MESHEXP_CONFIG"
		}
	}
	if path == "" {
		return "", nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		msg := fmt.Sprintf("cannot read config file %s: %v", path, err)
		if errors.Is(err, fs.ErrNotExist) {
			msg = fmt.Sprintf("config file %s does not exist", path)
		}
		return path, nil, Problems{{Input: input, Message: msg, Fix: "point it at a readable YAML file"}}
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return path, nil, Problems{{Input: "config file " + path, Message: "is not valid YAML: " + err.Error(), Fix: "write settings as `flag-name: value` lines"}}
	}
	vals := map[string]string{}
	var probs Problems
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := Lookup(k)
		if s == nil {
			probs = append(probs, Problem{Input: "config file " + path, Message: fmt.Sprintf("unknown key %q", k), Fix: "use the flag names listed in `meshexp bootstrap --help`, without the dashes in front"})
			continue
		}
		vals[k] = yamlText(raw[k])
	}
	return path, vals, probs
}

func yamlText(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			parts[i] = yamlText(x)
		}
		return strings.Join(parts, ",")
	case float64:
		if t == float64(int64(t)) {
			return fmt.Sprint(int64(t))
		}
	}
	return fmt.Sprint(v)
}

// inputName names where a setting's value came from.
func (s *Setting) inputName(o origin) string {
	switch o.kind {
	case fromFlag:
		return "--" + s.Name
	case fromEnv:
		return o.name
	case fromFile:
		return fmt.Sprintf("%s (key %s in %s)", "--"+s.Name, s.Name, o.name)
	}
	if len(s.Env) > 0 {
		return s.Env[0]
	}
	return "--" + s.Name
}

func (s *Setting) howToSet() string {
	if len(s.Env) > 0 {
		return fmt.Sprintf("set the environment variable %s or the flag --%s", s.Env[0], s.Name)
	}
	return "set the flag --" + s.Name
}

func problemFor(s *Setting, o origin, err error) Problem {
	p := Problem{Input: s.inputName(o), Message: err.Error()}
	var inv *invalid
	if errors.As(err, &inv) {
		p.Fix = inv.fix
	}
	if o.kind == fromDefault {
		p.Message += " (the default)"
	}
	return p
}

// Origin names where the named setting's value came from: "--flag",
// "ENV_VAR", "--flag (key … in FILE)" or "default".
func (c *Config) Origin(name string) string {
	o, ok := c.origins[name]
	s := Lookup(name)
	if !ok || s == nil {
		return "--" + name
	}
	if o.kind == fromDefault {
		return "default"
	}
	return s.inputName(o)
}

// input names a setting for a problem message: where it came from, or, for a
// default, the ways to set it.
func (c *Config) input(name string) string {
	s := Lookup(name)
	if s == nil {
		return "--" + name
	}
	o, ok := c.origins[name]
	if !ok || o.kind == fromDefault {
		return "--" + s.Name + s.EnvHelp()
	}
	return s.inputName(o)
}

// LoadArgs binds scope to a fresh flag set, parses args and resolves the
// settings against env. It is the whole of Bind+Load for callers that are
// not cobra commands (tests, tools).
func LoadArgs(scope Scope, args []string, env map[string]string) (*Config, Problems) {
	fs := pflag.NewFlagSet("meshexp", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	b := Bind(fs, scope)
	if err := fs.Parse(args); err != nil {
		return nil, Problems{{Input: "command line", Message: err.Error(), Fix: "see --help"}}
	}
	return b.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}
