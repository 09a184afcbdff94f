package netfilter

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Chain names are Linkerd proxy-init's (linkerd2-proxy-init
// pkg/iptables/iptables.go), so operators recognise them.
const (
	ChainRedirect = "PROXY_INIT_REDIRECT" // inbound, jumped to from PREROUTING
	ChainOutput   = "PROXY_INIT_OUTPUT"   // outbound, jumped to from OUTPUT
)

// Every rule meshexp writes carries the comment "proxy-init/<what>/meshexp":
// proxy-init's "proxy-init/<what>/<run id>" form with a fixed owner in place
// of its timestamp, so a plan renders the same every time (show can compare
// it with what is installed) and remove can tell meshexp's rules from
// anyone else's.
const (
	commentPrefix = "proxy-init/"
	commentOwner  = "/meshexp"
)

// multiportLimit is the most ports one multiport match takes (a range
// counts as two): xt_multiport's XT_MULTI_PORTS, which proxy-init names
// IptablesMultiportLimit.
const multiportLimit = 15

// Family is an address family, each with its own iptables binaries.
type Family int

// Families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Rule is one rule in the nat table. Spec is written exactly as
// iptables-save prints it (after "-A <Chain> "), so a plan compares with
// installed rules as text.
type Rule struct {
	Chain string
	Spec  string
	// Last, for a jump, appends it to Chain; otherwise a jump is inserted
	// first.
	Last bool
}

// String is the rule as an iptables-save/restore line.
func (r Rule) String() string { return "-A " + r.Chain + " " + r.Spec }

// FamilyRules is the plan for one address family.
type FamilyRules struct {
	Family Family
	// Rules are the rules of ChainRedirect then ChainOutput, in order.
	Rules []Rule
	// Jumps are the jumps to the chains: appended to PREROUTING (after
	// other tools' DNAT, see planFamily), inserted first in OUTPUT.
	Jumps []Rule
}

// Ruleset is a complete plan.
type Ruleset struct {
	Families []FamilyRules
	// IPv6Auto is set when IPv6 rules are planned because the IPv6 setting
	// is auto: the runner drops them on a host without IPv6.
	IPv6Auto bool
	Backend  Backend
}

// Family returns the plan for f, or nil.
func (rs *Ruleset) Family(f Family) *FamilyRules {
	for i := range rs.Families {
		if rs.Families[i].Family == f {
			return &rs.Families[i]
		}
	}
	return nil
}

// Plan turns validated options into rules. It is pure: the same options
// give the same rules on every host.
func Plan(o Options) (*Ruleset, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	rs := &Ruleset{Backend: o.Backend, IPv6Auto: o.IPv6 == IPv6Auto}
	rs.Families = append(rs.Families, planFamily(o, IPv4))
	if o.IPv6 != IPv6Off {
		rs.Families = append(rs.Families, planFamily(o, IPv6))
	}
	return rs, nil
}

func planFamily(o Options, f Family) FamilyRules {
	fr := FamilyRules{Family: f}
	add := func(chain, spec string) { fr.Rules = append(fr.Rules, Rule{Chain: chain, Spec: spec}) }

	// Inbound takes only connections addressed to this host. A host that
	// forwards (Docker, podman, libvirt, a router) sees its containers'
	// connections and connections routed through it in PREROUTING too;
	// their destination is not local, and they are none of the proxy's
	// business. (A connection to a port Docker publishes is addressed to
	// the host until Docker's DNAT, also in PREROUTING, rewrites it: the
	// jump is appended to PREROUTING, after the DNAT rules other tools put
	// there, and the first NAT rule to match a connection decides.)
	add(ChainRedirect, "-m addrtype ! --dst-type LOCAL "+comment("ignore-not-local-destination")+" -j RETURN")
	// Then, as proxy-init orders it: ports to ignore (the proxy's own
	// first, as Linkerd's injector adds them), then the redirect.
	ignoreIn := append([]PortRange{Port(o.ControlPort), Port(o.AdminPort)}, o.SkipInboundPorts...)
	for _, group := range multiportGroups(ignoreIn) {
		add(ChainRedirect, "-p tcp -m multiport --dports "+group+" "+comment("ignore-port-"+group)+" -j RETURN")
	}
	if len(o.InboundPorts) == 0 {
		add(ChainRedirect, "-p tcp "+comment("redirect-all-incoming-to-proxy-port")+" -j REDIRECT --to-ports "+itoa(o.InboundPort))
	}
	for _, r := range o.InboundPorts {
		add(ChainRedirect, "-p tcp -m tcp --dport "+r.String()+" "+comment("redirect-port-"+r.String()+"-to-proxy-port")+" -j REDIRECT --to-ports "+itoa(o.InboundPort))
	}

	// Outbound: the proxy's own traffic, meshexp's control traffic,
	// loopback, then the configured exceptions, then the redirect. Root
	// is deliberately not exempt (the demo exempted uid 0, so every root
	// process escaped the mesh).
	add(ChainOutput, "-m owner --uid-owner "+strconv.FormatUint(uint64(o.ProxyUID), 10)+" "+comment("ignore-proxy-user-id")+" -j RETURN")
	if o.ControlMark != 0 {
		m := fmt.Sprintf("0x%x/0x%x", o.ControlMark, o.ControlMark)
		add(ChainOutput, "-m mark --mark "+m+" "+comment("ignore-control-mark")+" -j RETURN")
	}
	add(ChainOutput, "-o lo "+comment("ignore-loopback")+" -j RETURN")
	for _, group := range multiportGroups(o.SkipOutboundPorts) {
		add(ChainOutput, "-p tcp -m multiport --dports "+group+" "+comment("ignore-port-"+group)+" -j RETURN")
	}
	for _, p := range o.SkipOutboundSubnets {
		if familyOf(p.Addr()) == f {
			add(ChainOutput, "-d "+p.String()+" "+comment("ignore-subnet-"+p.String())+" -j RETURN")
		}
	}
	for _, d := range o.ExemptDestinations {
		a := d.Addr().Unmap()
		if familyOf(a) != f {
			continue
		}
		host := netip.PrefixFrom(a, a.BitLen()).String()
		if d.Port() == 0 {
			add(ChainOutput, "-d "+host+" "+comment("ignore-destination-"+a.String())+" -j RETURN")
			continue
		}
		what := "ignore-destination-" + netip.AddrPortFrom(a, d.Port()).String()
		add(ChainOutput, "-d "+host+" -p tcp -m tcp --dport "+itoa(d.Port())+" "+comment(what)+" -j RETURN")
	}
	add(ChainOutput, "-p tcp "+comment("redirect-all-outgoing-to-proxy-port")+" -j REDIRECT --to-ports "+itoa(o.OutboundPort))

	fr.Jumps = []Rule{
		{Chain: "PREROUTING", Spec: comment("install-proxy-init-prerouting") + " -j " + ChainRedirect, Last: true},
		{Chain: "OUTPUT", Spec: comment("install-proxy-init-output") + " -j " + ChainOutput},
	}
	return fr
}

func familyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// comment is the comment match of a meshexp rule, quoted as iptables-save
// quotes it.
func comment(what string) string {
	return `-m comment --comment "` + commentPrefix + what + commentOwner + `"`
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// multiportGroups packs ports and ranges into multiport lists of at most
// multiportLimit ports each, dropping duplicates, as proxy-init does.
func multiportGroups(rs []PortRange) []string {
	var groups []string
	var cur []string
	n := 0
	seen := map[PortRange]bool{}
	for _, r := range rs {
		if seen[r] {
			continue
		}
		seen[r] = true
		cost := 1
		if r.From != r.To {
			cost = 2
		}
		if n+cost > multiportLimit {
			groups = append(groups, strings.Join(cur, ","))
			cur, n = nil, 0
		}
		cur = append(cur, r.String())
		n += cost
	}
	if len(cur) > 0 {
		groups = append(groups, strings.Join(cur, ","))
	}
	return groups
}
