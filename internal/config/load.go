package config

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"
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
	name  string // env var, config file path, or an old flag name
	value string
	line  int // in the config file
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
		fs.Var(v, s.FlagName(), s.flagUsage(scope))
		f := fs.Lookup(s.FlagName())
		if s.Default != "" {
			f.DefValue = s.Default
		}
		if s.Kind == "bool" {
			f.NoOptDefVal = "true"
		}
		for _, a := range s.Aliases {
			if a.Flag == "" || a.Scope&scope == 0 {
				continue
			}
			fs.Var(v, a.Flag, "old name of --"+s.FlagName())
			old := fs.Lookup(a.Flag)
			old.Hidden = true
			old.NoOptDefVal = f.NoOptDefVal
		}
	}
	return b
}

// Load resolves every bound setting (flag > environment > file > default)
// and parses it. It returns the config and every problem found while
// reading and parsing; semantic checks come from Validate. An environment
// variable set to the empty string counts as unset: it never hides another
// variable of the same setting or the file.
func (b *Binding) Load(getenv func(string) (string, bool)) (*Config, Problems) {
	c := &Config{origins: map[string]origin{}}
	var probs Problems

	file, fileVals, fileProbs := b.readFile(getenv)
	probs = append(probs, fileProbs...)
	inFile := map[string]bool{} // settings whose file value was refused
	for _, p := range fileProbs {
		inFile[p.Setting] = true
	}

	for _, s := range Settings(b.scope) {
		o := origin{kind: fromDefault, value: s.Default}
		if v, ok := fileVals[s.Name]; ok {
			o = origin{kind: fromFile, name: file, value: v.text, line: v.line}
		}
		if e, ok := b.fromEnv(s, getenv, &probs); ok {
			o = e
		}
		if f, ok := b.fromFlag(s, &probs); ok {
			o = f
		}
		c.origins[s.Name] = o
		if s.Required && b.scope&ScopeWorkload != 0 && strings.TrimSpace(o.value) == "" && !inFile[s.Name] {
			probs = append(probs, Problem{Setting: s.Name, Input: s.inputName(o), Message: "is not set", Fix: s.howToSet()})
			continue
		}
		if err := s.parse(c, o.value); err != nil {
			probs = append(probs, problemFor(s, o, err))
			continue
		}
		if bd, ok := durationBounds[s.Name]; ok {
			d, _ := time.ParseDuration(strings.TrimSpace(o.value))
			if err := bd.check(d, o.value); err != nil {
				probs = append(probs, problemFor(s, o, err))
			}
		}
	}
	probs = append(probs, c.splitKubeconfig(b.scope&ScopeRegister == 0 || c.Register.Enabled)...)
	c.fillDerived()
	return c, probs
}

// fromEnv reads a setting's environment variables: the first non-empty one
// wins; old names (aliases) come last and are warned about.
func (b *Binding) fromEnv(s *Setting, getenv func(string) (string, bool), probs *Problems) (origin, bool) {
	for _, e := range s.Env {
		if v, ok := getenv(e); ok && strings.TrimSpace(v) != "" {
			return origin{kind: fromEnv, name: e, value: v}, true
		}
	}
	var parts, names []string
	for _, a := range s.Aliases {
		if a.Env == "" || a.Scope&b.scope == 0 {
			continue
		}
		if v, ok := getenv(a.Env); ok && strings.TrimSpace(v) != "" {
			*probs = append(*probs, deprecated(s, a.Env, s.Env[0]))
			parts, names = append(parts, v), append(names, a.Env)
		}
	}
	if len(parts) == 0 {
		return origin{}, false
	}
	if !s.List {
		parts = parts[:1]
	}
	return origin{kind: fromEnv, name: names[0], value: strings.Join(parts, ",")}, true
}

// fromFlag reads a setting's flag, or an old flag name bound to the same
// value.
func (b *Binding) fromFlag(s *Setting, probs *Problems) (origin, bool) {
	v := b.values[s.Name]
	if f := b.flags.Lookup(s.FlagName()); f != nil && f.Changed {
		return origin{kind: fromFlag, value: v.S}, true
	}
	for _, a := range s.Aliases {
		if a.Flag == "" || a.Scope&b.scope == 0 {
			continue
		}
		if f := b.flags.Lookup(a.Flag); f != nil && f.Changed {
			*probs = append(*probs, deprecated(s, "--"+a.Flag, "--"+s.FlagName()))
			return origin{kind: fromFlag, name: a.Flag, value: v.S}, true
		}
	}
	return origin{}, false
}

func deprecated(s *Setting, old, now string) Problem {
	return Problem{Setting: s.Name, Input: old, Message: "is an old name and will go away", Fix: "use " + now, Warning: true}
}

// readFile loads the --config / MESHEXP_CONFIG file as flat key → text.
func (b *Binding) readFile(getenv func(string) (string, bool)) (string, map[string]fileValue, Problems) {
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
	data, err := ReadRegularFile(path)
	if err != nil {
		msg := "config file " + strings.TrimPrefix(err.Error(), "cannot open ")
		return path, nil, Problems{{Input: input, Message: msg, Fix: "point it at a readable YAML file"}}
	}
	vals, probs := parseFile(path, data, b.scope)
	return path, vals, probs
}

// inputName names where a setting's value came from.
func (s *Setting) inputName(o origin) string {
	switch o.kind {
	case fromFlag:
		if o.name != "" {
			return "--" + o.name
		}
		return "--" + s.FlagName()
	case fromEnv:
		return o.name
	case fromFile:
		return fmt.Sprintf("--%s (key %s in %s, line %d)", s.FlagName(), s.FlagName(), o.name, o.line)
	}
	if len(s.Env) > 0 {
		return s.Env[0]
	}
	return "--" + s.FlagName()
}

func (s *Setting) howToSet() string {
	if len(s.Env) > 0 {
		return fmt.Sprintf("set the environment variable %s or the flag --%s", s.Env[0], s.FlagName())
	}
	return "set the flag --" + s.FlagName()
}

func problemFor(s *Setting, o origin, err error) Problem {
	p := Problem{Setting: s.Name, Input: s.inputName(o), Message: err.Error()}
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

// Input names a setting for a problem message: where its value came from,
// or, for a default, the ways to set it.
func (c *Config) Input(name string) string { return c.input(name) }

// input names a setting for a problem message: where it came from, or, for a
// default, the ways to set it.
func (c *Config) input(name string) string {
	s := Lookup(name)
	if s == nil {
		return "--" + name
	}
	o, ok := c.origins[name]
	if !ok || o.kind == fromDefault {
		return "--" + s.FlagName() + s.EnvHelp()
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
