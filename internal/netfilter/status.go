package netfilter

import (
	"fmt"
	"io"
	"slices"
)

// Status compares what is installed in one family's nat table with a plan.
type Status struct {
	Family  Family
	Command string // the iptables-save command that was read
	// Installed lists the rules in meshexp's chains and the jumps to them,
	// as iptables-save prints them (not the records of what install
	// created, see Created).
	Installed []string
	// Missing are planned rules not installed; Unexpected are installed
	// rules (duplicates included) not in the plan.
	Missing    []string
	Unexpected []string
	// After are other tools' PREROUTING rules that may DNAT (DNAT,
	// REDIRECT, NETMAP or a jump to a chain) and come after meshexp's jump,
	// such as Docker's jump to its DNAT chain when Docker started after
	// meshexp: connections to ports they publish are redirected to the
	// proxy before they see them. Installing again puts the jump last.
	After []string
	// Matches is true when the chains hold exactly the plan, in order, and
	// PREROUTING and OUTPUT each jump to them exactly once.
	Matches bool
	// Skipped says why the family was not read (for example no IPv6).
	Skipped string
}

// Compare reports how nat (nil when the table is absent) differs from fr.
func Compare(fr *FamilyRules, nat *Table) Status {
	st := Status{Family: fr.Family}
	var installed []Rule
	if nat != nil {
		for _, c := range []string{"PREROUTING", "OUTPUT", ChainRedirect, ChainOutput} {
			for _, r := range nat.Rules {
				if r.Chain == c && (ownChain(c) || ownChain(r.Target()) || r.Ours()) && r.Created() == "" {
					installed = append(installed, Rule{Chain: r.Chain, Spec: r.Spec})
					st.Installed = append(st.Installed, r.String())
				}
			}
		}
	}
	planned := append(append([]Rule(nil), fr.Jumps...), fr.Rules...)
	used := make([]bool, len(installed))
	for _, p := range planned {
		found := false
		for i, r := range installed {
			if !used[i] && r.Chain == p.Chain && sameRule(r.Spec, p.Spec) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			st.Missing = append(st.Missing, p.String())
		}
	}
	for i, r := range installed {
		if !used[i] {
			st.Unexpected = append(st.Unexpected, r.String())
		}
	}
	if nat != nil {
		jumped := false
		for _, r := range nat.Rules {
			switch {
			case r.Chain != "PREROUTING":
			case r.Ours():
				jumped = true
			case jumped && mayDNAT(nat, r):
				st.After = append(st.After, r.String())
			}
		}
	}
	// Same rules is not enough: inside a chain, order decides.
	st.Matches = len(st.Missing) == 0 && len(st.Unexpected) == 0 && sameOrder(planned, installed)
	return st
}

// mayDNAT reports whether a nat rule may change a connection's destination.
func mayDNAT(nat *Table, r SavedRule) bool {
	switch t := r.Target(); t {
	case "DNAT", "REDIRECT", "NETMAP":
		return true
	default:
		return nat.HasChain(t)
	}
}

func sameOrder(planned, installed []Rule) bool {
	for _, c := range []string{ChainRedirect, ChainOutput} {
		var p, i []string
		for _, r := range planned {
			if r.Chain == c {
				p = append(p, r.Spec)
			}
		}
		for _, r := range installed {
			if r.Chain == c {
				i = append(i, r.Spec)
			}
		}
		if !slices.EqualFunc(p, i, sameRule) {
			return false
		}
	}
	return true
}

// Write prints the status for people.
func (st Status) Write(w io.Writer) {
	switch {
	case st.Skipped != "":
		fmt.Fprintf(w, "%s: skipped: %s\n", st.Family, st.Skipped)
		return
	case len(st.Installed) == 0:
		fmt.Fprintf(w, "%s (%s): not installed\n", st.Family, st.Command)
		return
	case st.Matches:
		fmt.Fprintf(w, "%s (%s): installed, matches the plan\n", st.Family, st.Command)
	default:
		fmt.Fprintf(w, "%s (%s): installed, DIFFERS from the plan\n", st.Family, st.Command)
	}
	for _, l := range st.Installed {
		fmt.Fprintf(w, "  %s\n", l)
	}
	for _, l := range st.Missing {
		fmt.Fprintf(w, "  missing:    %s\n", l)
	}
	for _, l := range st.Unexpected {
		fmt.Fprintf(w, "  unexpected: %s\n", l)
	}
	for _, l := range st.After {
		fmt.Fprintf(w, "  after meshexp's PREROUTING jump, so it never sees the connections meshexp redirects (install again to go last): %s\n", l)
	}
}
