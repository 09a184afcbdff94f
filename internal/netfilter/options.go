package netfilter

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Defaults, from Linkerd unless said otherwise.
const (
	// DefaultInboundPort and DefaultOutboundPort are linkerd2-proxy's
	// listeners (LINKERD2_PROXY_INBOUND_LISTEN_ADDR 0.0.0.0:4143,
	// LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR 127.0.0.1:4140).
	DefaultInboundPort  = 4143
	DefaultOutboundPort = 4140
	// DefaultAdminPort and DefaultControlPort are the proxy's own servers;
	// Linkerd's injector always adds them to the inbound ports to ignore.
	DefaultAdminPort   = 4191
	DefaultControlPort = 4190
	// DefaultProxyUID is the uid Linkerd's chart runs the proxy as
	// (charts/linkerd-control-plane/values.yaml proxy.uid).
	DefaultProxyUID = 2102

	// DefaultControlMark is the packet mark on meshexp's own control
	// connections (ControlFunc), which interception lets through. One bit,
	// 0x1000 (bit 12), chosen to sit clear of the marks other networking
	// software on a Kubernetes-adjacent host sets or matches:
	//   - kube-proxy/kubelet: 0x4000 masquerade, 0x8000 drop;
	//   - Cilium: 0x0f00 magic marks, identity in 0xffff00ff, and it leaves
	//     the 0xf000 nibble to Kubernetes, which uses only 0x4000/0x8000
	//     (cilium pkg/datapath/linux/linux_defaults/mark.go);
	//   - Calico: its whole mask 0xffff0000 (felix IptablesMarkMask);
	//   - Istio: 1337 (0x539) and ambient's 0x111 within mask 0xfff;
	//   - Tailscale: 0x40000/0x80000 within mask 0xff0000;
	//   - CNI portmap and podman's netavark: 0x2000 hostport masquerade,
	//     which would masquerade meshexp's connections on a podman host;
	//   - wg-quick: 0xca6c.
	DefaultControlMark uint32 = 0x1000
)

// defaultSkipPorts are Linkerd's chart defaults for
// proxyInit.ignoreInboundPorts and ignoreOutboundPorts (4567,4568: the
// multicluster gateway's ports).
var defaultSkipPorts = []PortRange{{4567, 4567}, {4568, 4568}}

// IPv6Mode says whether IPv6 rules are installed.
type IPv6Mode string

// IPv6 modes.
const (
	IPv6Auto IPv6Mode = "auto" // when the host has IPv6
	IPv6On   IPv6Mode = "on"
	IPv6Off  IPv6Mode = "off"
)

// Backend is the iptables flavour rules are written with.
type Backend string

// Backends.
const (
	BackendAuto   Backend = "auto" // whichever the host already uses
	BackendLegacy Backend = "iptables-legacy"
	BackendNFT    Backend = "iptables-nft"
)

// PortRange is an inclusive range of TCP ports; From == To for one port.
type PortRange struct{ From, To uint16 }

// Port is the range holding the single port p.
func Port(p uint16) PortRange { return PortRange{p, p} }

// String is the range in iptables' form, "4567" or "5000:5010".
func (r PortRange) String() string {
	if r.From == r.To {
		return strconv.Itoa(int(r.From))
	}
	return fmt.Sprintf("%d:%d", r.From, r.To)
}

// Options are the settings a plan is made from. Setting names in problems
// are meshexp's flag names (see internal/config).
type Options struct {
	InboundPort  uint16 // inbound-port: where inbound TCP is redirected
	OutboundPort uint16 // outbound-port: where outbound TCP is redirected
	AdminPort    uint16 // admin-port: the proxy's own; never redirected
	ControlPort  uint16 // control-port: the proxy's own; never redirected
	// ProxyUID's traffic is never redirected (it is the proxy's own
	// upstream traffic). Never 0: that would exempt every root process.
	ProxyUID uint32

	SkipInboundPorts    []PortRange    // inbound destination ports left alone
	SkipOutboundPorts   []PortRange    // outbound destination ports left alone
	SkipOutboundSubnets []netip.Prefix // outbound destinations left alone
	// InboundPorts, when not empty, are the only inbound ports redirected.
	InboundPorts []PortRange
	// ExemptDestinations are outbound destinations left alone; a zero
	// port means every port. For control traffic of processes meshexp does
	// not dial itself, such as the SPIRE agent's connection to its server.
	ExemptDestinations []netip.AddrPort
	// ControlMark exempts packets that carry all of its bits (set on
	// meshexp's own sockets by ControlFunc); 0 installs no mark rule.
	ControlMark uint32

	IPv6    IPv6Mode
	Backend Backend
}

// DefaultOptions are Linkerd's defaults with meshexp's control mark.
func DefaultOptions() Options {
	return Options{
		InboundPort:       DefaultInboundPort,
		OutboundPort:      DefaultOutboundPort,
		AdminPort:         DefaultAdminPort,
		ControlPort:       DefaultControlPort,
		ProxyUID:          DefaultProxyUID,
		SkipInboundPorts:  append([]PortRange(nil), defaultSkipPorts...),
		SkipOutboundPorts: append([]PortRange(nil), defaultSkipPorts...),
		ControlMark:       DefaultControlMark,
		IPv6:              IPv6Auto,
		Backend:           BackendAuto,
	}
}

// Problem is one invalid setting.
type Problem struct {
	Setting string // meshexp's flag name, e.g. "skip-outbound-ports"
	Message string // what is wrong and how to fix it
}

func (p Problem) String() string { return p.Setting + ": " + p.Message }

// InvalidOptionsError lists every problem found in Options.
type InvalidOptionsError struct{ Problems []Problem }

func (e *InvalidOptionsError) Error() string {
	if len(e.Problems) == 1 {
		return "netfilter: invalid setting " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "netfilter: %d invalid settings:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Validate returns an *InvalidOptionsError naming every bad setting, or nil.
func (o Options) Validate() error {
	var ps []Problem
	add := func(setting, format string, args ...any) {
		ps = append(ps, Problem{setting, fmt.Sprintf(format, args...)})
	}
	ports := []struct {
		name string
		p    uint16
	}{{"inbound-port", o.InboundPort}, {"outbound-port", o.OutboundPort}, {"admin-port", o.AdminPort}, {"control-port", o.ControlPort}}
	for i, a := range ports {
		if a.p == 0 {
			add(a.name, "0 is not a port; use 1-65535")
			continue
		}
		for _, b := range ports[:i] {
			if a.p == b.p {
				add(a.name, "%d is also the %s; each proxy port must differ", a.p, b.name)
			}
		}
	}
	switch o.ProxyUID {
	case 0:
		add("proxy-uid", "0 (root) would exempt every root process from interception, the workload's included; run the proxy as its own user (default %d)", DefaultProxyUID)
	case math.MaxUint32:
		add("proxy-uid", "4294967295 is not a valid uid (it means -1)")
	}
	for _, l := range []struct {
		name string
		rs   []PortRange
	}{{"skip-inbound-ports", o.SkipInboundPorts}, {"skip-outbound-ports", o.SkipOutboundPorts}, {"inbound-ports", o.InboundPorts}} {
		for _, r := range l.rs {
			switch {
			case r.From == 0 || r.To == 0:
				add(l.name, "%q: port 0 is not a port; use 1-65535", r.String())
			case r.To < r.From:
				add(l.name, "range %d-%d is reversed; write the lower port first", r.From, r.To)
			}
		}
	}
	for _, p := range o.SkipOutboundSubnets {
		switch {
		case !p.IsValid():
			add("skip-outbound-subnets", "an empty or invalid subnet; use CIDR notation such as 10.0.0.0/8")
		case p.Masked() != p:
			add("skip-outbound-subnets", "%s has host bits set; did you mean %s?", p, p.Masked())
		}
	}
	for _, d := range o.ExemptDestinations {
		if !d.Addr().IsValid() || d.Addr().Zone() != "" {
			add("exempt-destinations", "%q is not an IP address (with an optional port)", d.String())
		}
	}
	switch o.IPv6 {
	case IPv6Auto, IPv6On, IPv6Off:
	default:
		add("intercept-ipv6", "%q is not a choice; use auto, on or off", o.IPv6)
	}
	switch o.Backend {
	case BackendAuto, BackendLegacy, BackendNFT:
	default:
		add("intercept-backend", "%q is not a backend; use auto, iptables-legacy or iptables-nft", o.Backend)
	}
	if len(ps) > 0 {
		return &InvalidOptionsError{Problems: ps}
	}
	return nil
}

// ParseDestination parses an exempt destination: "IP", "IP:port",
// "[IPv6]:port" or a bare IPv6 address. A missing port is port 0 (every
// port).
func ParseDestination(s string) (netip.AddrPort, error) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 0), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not IP, IP:port or [IPv6]:port", s)
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q: port 0 is not a port; leave the port out to exempt every port", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
