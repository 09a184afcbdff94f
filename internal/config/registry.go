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
	ScopeWorkload  Scope = 1 << iota // names, trust domain, identity
	ScopeProxy                       // the proxy's ports and environment
	ScopeIntercept                   // interception rules
	ScopeSPIRE                       // identity source
	ScopeRun                         // the workload command, users, timeouts
	ScopeKubeSpec                    // what the ExternalWorkload says: IPs, ports, labels
	ScopeKubeAPI                     // how to reach the API server
	ScopeRegister                    // bootstrap's registration loop
	ScopeDNS                         // bootstrap's DNS forwarder

	// ScopeBootstrap is everything `meshexp bootstrap` reads.
	ScopeBootstrap = ScopeWorkload | ScopeProxy | ScopeIntercept | ScopeSPIRE | ScopeRun | ScopeKubeSpec | ScopeKubeAPI | ScopeRegister | ScopeDNS
)

// Setting is one configuration knob: its flag, environment variables,
// default, help text, and how its text form is parsed into Config.
type Setting struct {
	Name    string   // flag name and config-file key
	Env     []string // environment variables; the first is canonical
	Default string
	Usage   string
	Group   string
	Scope   Scope
	List    bool // comma-separated; a repeated flag appends
	// Required settings have no default and must be given.
	Required bool
	// Secret values are never printed (plans, errors, logs).
	Secret bool
	// Kind names the value in --help ("port", "duration", …); "bool"
	// settings also take the flag alone as true (--register).
	Kind  string
	parse func(c *Config, v string) error
}

// groups orders settings in --help and the README.
var groups = []string{"workload", "control plane", "proxy", "interception", "spire", "run", "kubernetes", "dns"}

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
		case s.Required:
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
		fmt.Fprintf(&b, "| `--%s` | %s | %s | %s |\n", s.Name, strings.Join(env, ", "), def, strings.ReplaceAll(s.Usage, "|", "\\|"))
	}
	return b.String()
}
