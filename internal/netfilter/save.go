package netfilter

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Table is one table of an iptables-save dump.
type Table struct {
	Name   string
	Chains []string // declared chains, in dump order
	Rules  []SavedRule
}

// SavedRule is one "-A" line of a dump.
type SavedRule struct {
	Chain string
	Spec  string   // as printed, after "-A <Chain> "
	args  []string // Spec split as a shell would, quotes removed
}

// String is the rule as printed.
func (r SavedRule) String() string { return "-A " + r.Chain + " " + r.Spec }

// Target is the chain or target the rule jumps (-j) or goes (-g) to.
func (r SavedRule) Target() string {
	for i, a := range r.args {
		if (a == "-j" || a == "-g" || a == "--jump" || a == "--goto") && i+1 < len(r.args) {
			return r.args[i+1]
		}
	}
	return ""
}

// Comment is the rule's comment, or "".
func (r SavedRule) Comment() string {
	for i, a := range r.args {
		if a == "--comment" && i+1 < len(r.args) {
			return r.args[i+1]
		}
	}
	return ""
}

// Ours reports whether meshexp wrote the rule (see commentOwner).
func (r SavedRule) Ours() bool {
	c := r.Comment()
	return strings.HasPrefix(c, commentPrefix) && strings.HasSuffix(c, commentOwner)
}

// HasChain reports whether the table declares chain.
func (t *Table) HasChain(chain string) bool {
	return t != nil && slices.Contains(t.Chains, chain)
}

// ParseSave reads iptables-save output (all tables) into tables by name.
// Comment lines and counters are ignored.
func ParseSave(data []byte) (map[string]*Table, error) {
	tables := map[string]*Table{}
	var cur *Table
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			cur = &Table{Name: line[1:]}
			tables[cur.Name] = cur
		case line == "COMMIT":
			cur = nil
		case cur == nil:
			return nil, fmt.Errorf("netfilter: parse iptables-save output: line %d outside a table: %q", n, line)
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			cur.Chains = append(cur.Chains, name)
		default:
			// With -c, a rule starts with its counters: "[pkts:bytes] -A …".
			if strings.HasPrefix(line, "[") {
				if _, rest, ok := strings.Cut(line, "] "); ok {
					line = rest
				}
			}
			rest, ok := strings.CutPrefix(line, "-A ")
			if !ok {
				return nil, fmt.Errorf("netfilter: parse iptables-save output: line %d is not a rule: %q", n, line)
			}
			chain, spec, _ := strings.Cut(rest, " ")
			args, err := splitArgs(spec)
			if err != nil {
				return nil, fmt.Errorf("netfilter: parse iptables-save output: line %d: %w", n, err)
			}
			cur.Rules = append(cur.Rules, SavedRule{Chain: chain, Spec: spec, args: args})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("netfilter: read iptables-save output: %w", err)
	}
	return tables, nil
}

// splitArgs splits a rule as iptables-restore does: on spaces, with
// double-quoted words in which a backslash escapes the next character.
func splitArgs(s string) ([]string, error) {
	var args []string
	var b strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			quoted = !quoted
			inWord = true
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				args = append(args, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		args = append(args, b.String())
	}
	return args, nil
}

// sameRule reports whether two rule specs say the same thing, whatever
// their quoting (iptables versions differ in when they quote).
func sameRule(a, b string) bool {
	x, err1 := splitArgs(a)
	y, err2 := splitArgs(b)
	return err1 == nil && err2 == nil && slices.Equal(x, y)
}
