package config

import (
	"fmt"
	"sort"
	"strings"
)

// Scope says which commands a setting belongs to, so each command's --help
// lists only what it reads.
type Scope uint

const (
	ScopeWorkload   Scope = 1 << iota // names, trust domain, identity
	ScopeProxy                        // the proxy's ports and environment
	ScopeIntercept                    // interception rules
	ScopeSPIRE                        // identity source
	ScopeRun                          // the workload command, users, timeouts
	ScopeKubeSpec                     // what the ExternalWorkload says: IPs, ports, labels
	ScopeKubeAPI                      // how to reach the API server
	ScopeRegister                     // bootstrap's registration loop
	ScopeDNS                          // the DNS forwarder: bootstrap's and `meshexp dns`'s
	ScopeDNSServer                    // the forwarder's tuning, which only `meshexp dns` exposes
	ScopeController                   // the cluster-side `meshexp controller`

	// ScopeBootstrap is everything `meshexp bootstrap` reads.
	ScopeBootstrap = ScopeWorkload | ScopeProxy | ScopeIntercept | ScopeSPIRE | ScopeRun | ScopeKubeSpec | ScopeKubeAPI | ScopeRegister | ScopeDNS
	// ScopeDNSCommand is everything `meshexp dns` reads.
	ScopeDNSCommand = ScopeDNS | ScopeDNSServer
	// ScopeControllerCommand is everything `meshexp controller` reads.
	ScopeControllerCommand = ScopeController | ScopeKubeAPI
)

// Alias is an old name of a setting, still read where Scope is bound, with
// a warning that names the new one.
type Alias struct {
	Flag  string // without the dashes; "" for none
	Env   string // "" for none
	Scope Scope
}

// Setting is one configuration knob: its flag, environment variables,
// default, help text, and how its text form is parsed into Config.
type Setting struct {
	Name string // flag name and config-file key, unless Flag is set
	// Flag is the flag name and config-file key when it differs from Name:
	// the controller's flags predate the registry and are short
	// (--namespace, --listen), while names are unique across commands.
	Flag    string
	Env     []string // environment variables; the first is canonical
	Default string
	Usage   string
	Group   string
	Scope   Scope
	List    bool // comma-separated; a repeated flag appends
	// Required settings have no default and must be given to the commands
	// that run a workload (scopes with ScopeWorkload).
	Required bool
	// Secret values are never printed (plans, errors, logs).
	Secret bool
	// Kind names the value in --help ("port", "duration", …); "bool"
	// settings also take the flag alone as true (--register).
	Kind string
	// Aliases are old names that still work, with a deprecation warning.
	Aliases []Alias
	parse   func(c *Config, v string) error
}

// groups orders settings in --help and the README.
var groups = []string{"workload", "control plane", "proxy", "interception", "spire", "run", "kubernetes", "dns", "controller"}

var registry []*Setting

func register(s ...*Setting) { registry = append(registry, s...) }

// Settings returns the settings of the given scope in help order.
func Settings(scope Scope) []*Setting {
	var out []*Setting
	for _, s := range registry {
		if s.Scope&scope != 0 {
			out = append(out, s)
		}
	}
	rank := map[string]int{}
	for i, g := range groups {
		rank[g] = i
	}
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Group] < rank[out[j].Group] })
	return out
}

// Lookup returns the setting with the given flag name, or nil.
func Lookup(name string) *Setting {
	for _, s := range registry {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// FlagName is the setting's flag (without dashes) and config-file key.
func (s *Setting) FlagName() string {
	if s.Flag != "" {
		return s.Flag
	}
	return s.Name
}

// lookupKey returns the setting a config file's key names: a flag of the
// command's scope, else any setting by name (read, and ignored when it is
// not the command's).
func lookupKey(scope Scope, key string) *Setting {
	for _, s := range Settings(scope) {
		if s.FlagName() == key {
			return s
		}
	}
	if s := Lookup(key); s != nil && s.Flag == "" {
		return s
	}
	return nil
}

// EnvHelp is the " [env A, B]" suffix shown in --help.
func (s *Setting) EnvHelp() string {
	if len(s.Env) == 0 {
		return ""
	}
	return " [env " + strings.Join(s.Env, ", ") + "]"
}

// MarkdownTable renders the settings of a scope as the README's table.
func MarkdownTable(scope Scope) string {
	var b strings.Builder
	b.WriteString("| flag | environment | default | meaning |\n| --- | --- | --- | --- |\n")
	for _, s := range Settings(scope) {
		def := s.Default
		switch {
		case s.Required && scope&ScopeWorkload != 0:
			def = "(required)"
		case def == "":
			def = "—"
		default:
			def = "`" + def + "`"
		}
		env := make([]string, len(s.Env))
		for i, e := range s.Env {
			env[i] = "`" + e + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | %s | %s | %s |\n", s.FlagName(), strings.Join(env, ", "), def, strings.ReplaceAll(s.fullUsage(scope), "|", "\\|"))
	}
	return b.String()
}

// fullUsage is the help text with the accepted range of a bounded value
// and the old names that still work.
func (s *Setting) fullUsage(scope Scope) string {
	u := s.Usage
	if b, ok := durationBounds[s.Name]; ok {
		u += " (" + b.String() + ")"
	}
	var old []string
	for _, a := range s.Aliases {
		if a.Scope&scope == 0 {
			continue
		}
		if a.Flag != "" {
			old = append(old, "--"+a.Flag)
		}
		if a.Env != "" {
			old = append(old, a.Env)
		}
	}
	if len(old) > 0 {
		u += "; formerly " + strings.Join(old, ", ")
	}
	return u
}

// flagUsage is fullUsage for --help. pflag takes the first `quoted` word
// of a usage string as the value's name (pflag.UnquoteUsage), so the
// README's code quotes become plain quotes here.
func (s *Setting) flagUsage(scope Scope) string {
	return strings.ReplaceAll(s.fullUsage(scope), "`", "'") + s.EnvHelp()
}
