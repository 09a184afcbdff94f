package netfilter

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// ForeignRulesError says meshexp's chains hold, or are jumped to by, rules
// meshexp did not write, so installing would destroy someone else's rules.
type ForeignRulesError struct {
	Family Family
	Rules  []string
}

func (e *ForeignRulesError) Error() string {
	return fmt.Sprintf("netfilter: %s nat table: %d rule(s) in or jumping to %s/%s were not written by meshexp "+
		"(another tool, such as Linkerd's proxy-init or the mesh-expansion demo, intercepts traffic in this network namespace): %s; "+
		"remove them (e.g. iptables -t nat -F %s; iptables -t nat -F %s) and install again",
		e.Family, len(e.Rules), ChainRedirect, ChainOutput, strings.Join(e.Rules, "; "), ChainRedirect, ChainOutput)
}

func ownChain(c string) bool { return c == ChainRedirect || c == ChainOutput }

// InstallInput renders the iptables-restore --noflush input that makes the
// nat table hold exactly fr: it (re)declares both chains, which empties
// them if they exist, deletes every meshexp rule elsewhere (stale jumps left
// by a crash or an earlier install), appends the chain rules, appends the
// PREROUTING jump and inserts the OUTPUT jump first. nat is the table as
// dumped now (nil when absent). Rules other tools wrote elsewhere are not
// touched; rules they wrote in or to meshexp's chains make it fail.
func InstallInput(fr *FamilyRules, nat *Table) ([]byte, error) {
	return installInput(fr, nat, nil)
}

// installInput is InstallInput that also records what this install
// creates (see CreatedTable), keeping the records an earlier install left.
func installInput(fr *FamilyRules, nat *Table, creates []string) ([]byte, error) {
	var stale, foreign []string
	if nat != nil {
		for _, r := range nat.Rules {
			switch {
			case ownChain(r.Chain) && !r.Ours(), ownChain(r.Target()) && !r.Ours():
				foreign = append(foreign, r.String())
			case r.Ours() && !ownChain(r.Chain):
				stale = append(stale, "-D "+r.Chain+" "+r.Spec)
			}
		}
	}
	if len(foreign) > 0 {
		return nil, &ForeignRulesError{Family: fr.Family, Rules: foreign}
	}
	var b bytes.Buffer
	b.WriteString("*nat\n")
	fmt.Fprintf(&b, ":%s - [0:0]\n:%s - [0:0]\n", ChainRedirect, ChainOutput)
	for _, l := range stale {
		b.WriteString(l + "\n")
	}
	for _, r := range fr.Rules {
		b.WriteString(r.String() + "\n")
	}
	records := CreatedBy(nat)
	for _, what := range creates {
		if !slices.Contains(records, what) {
			records = append(records, what)
		}
	}
	for _, what := range records {
		b.WriteString(createdRule(what).String() + "\n")
	}
	for _, j := range fr.Jumps {
		if j.Last {
			b.WriteString(j.String() + "\n")
		} else {
			b.WriteString("-I " + j.Chain + " 1 " + j.Spec + "\n")
		}
	}
	b.WriteString("COMMIT\n")
	return b.Bytes(), nil
}

// RemoveInput renders the iptables-restore --noflush input that deletes
// every rule meshexp wrote and then its chains, or nil when there is
// nothing of meshexp's. A chain that still holds or is jumped to by another
// tool's rules is left in place, emptied of meshexp's rules; kept lists why.
// A base chain meshexp's install created (see CreatedBy) is deleted too
// when no other tool's rule is in it.
func RemoveInput(nat *Table) (input []byte, kept []string) {
	return removeInput(nat, false)
}

// removeInput is RemoveInput that, with keepRecords, leaves the records
// of what install created in PROXY_INIT_OUTPUT (see Runner.removeRules).
func removeInput(nat *Table, keepRecords bool) (input []byte, kept []string) {
	if nat == nil {
		return nil, nil
	}
	var lines []string
	foreignIn := map[string]bool{}  // chain holds another tool's rules
	foreignRef := map[string]bool{} // chain is jumped to by another tool's rule
	for _, r := range nat.Rules {
		if !r.Ours() {
			foreignIn[r.Chain] = true
		}
		if ownChain(r.Chain) && !r.Ours() {
			kept = append(kept, fmt.Sprintf("%s kept: it holds a rule meshexp did not write: %s", r.Chain, r))
		}
		if t := r.Target(); ownChain(t) && !r.Ours() {
			foreignRef[t] = true
			kept = append(kept, fmt.Sprintf("%s kept: a rule meshexp did not write jumps to it: %s", t, r))
		}
	}
	keep := func(c string) bool { return foreignIn[c] || foreignRef[c] }
	records := keepRecords && !keep(ChainOutput) && len(CreatedBy(nat)) > 0
	for _, r := range nat.Rules {
		if !r.Ours() {
			continue
		}
		switch {
		case !ownChain(r.Chain), keep(r.Chain):
			lines = append(lines, "-D "+r.Chain+" "+r.Spec)
		case records && r.Chain == ChainOutput && r.Created() == "":
			lines = append(lines, "-D "+r.Chain+" "+r.Spec)
		}
	}
	for _, c := range []string{ChainRedirect, ChainOutput} {
		if nat.HasChain(c) && !keep(c) && (c != ChainOutput || !records) {
			lines = append(lines, "-F "+c, "-X "+c)
		}
	}
	created := CreatedBy(nat)
	for _, c := range []string{"PREROUTING", "OUTPUT"} {
		if slices.Contains(created, baseChainCreated[c]) && !foreignIn[c] {
			lines = append(lines, "-X "+c)
		}
	}
	if len(lines) == 0 {
		return nil, kept
	}
	var b bytes.Buffer
	b.WriteString("*nat\n")
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.Bytes(), kept
}

// Input is the iptables-restore input one family would get.
type Input struct {
	Family  Family
	Command string // the restore command line
	Input   []byte
}
