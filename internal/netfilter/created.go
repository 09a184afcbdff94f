package netfilter

import "slices"

// What an install can bring into existence that was not there before, and
// that remove must therefore take away again. With the iptables-nft
// backend, the first rule in a family's nat table creates nf_tables' table
// "nat" and each base chain a rule is added to (iptables-nft creates base
// chains only when used); left behind, they would still be in `nft list
// ruleset`. (The legacy backend's nat table, once used, lives as long as
// the network namespace: the kernel has no way to unregister it, and with
// no rule and every policy ACCEPT it changes no packet.)
//
// The record lives in the ruleset itself, as rules that do nothing (no
// target) at the end of PROXY_INIT_OUTPUT with the comment
// "proxy-init/created-<what>/meshexp". So it is written in the same
// transaction as the rules, survives a crash of meshexp, dies with the
// namespace, and the next install carries it over; remove reads it back.
const (
	CreatedTable      = "nat-table"        // nf_tables table "nat" of the family
	CreatedPrerouting = "chain-PREROUTING" // base chain PREROUTING in it
	CreatedOutput     = "chain-OUTPUT"     // base chain OUTPUT in it
)

const createdPrefix = "created-"

// createdRule is the no-op rule recording that install created what.
func createdRule(what string) Rule {
	return Rule{Chain: ChainOutput, Spec: comment(createdPrefix + what)}
}

// Created is what the rule records install created, or "" for any other
// rule.
func (r SavedRule) Created() string {
	if !r.Ours() || r.Chain != ChainOutput || r.Target() != "" {
		return ""
	}
	what := r.Comment()[len(commentPrefix) : len(r.Comment())-len(commentOwner)]
	if len(what) <= len(createdPrefix) || what[:len(createdPrefix)] != createdPrefix {
		return ""
	}
	return what[len(createdPrefix):]
}

// CreatedBy lists what the records in nat say meshexp's install created.
func CreatedBy(nat *Table) []string {
	var out []string
	if nat == nil {
		return nil
	}
	for _, r := range nat.Rules {
		if w := r.Created(); w != "" && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// baseChainCreated maps a base chain to its record.
var baseChainCreated = map[string]string{"PREROUTING": CreatedPrerouting, "OUTPUT": CreatedOutput}
