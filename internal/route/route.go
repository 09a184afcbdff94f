// Package route gives the host routes to the cluster: every node's pod
// CIDR(s) via that node's internal IP, and the service CIDR(s), so the
// proxy can reach pod and service addresses directly (the demo routed only
// the pod CIDR of items[0]).
//
// Routes are written through netlink with meshexp's own protocol number
// (Protocol), so that remove and prune delete only routes meshexp made and
// never one an administrator or another daemon added.
package route

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// Protocol is the rtm_protocol meshexp stamps on its routes. 157 is not
// assigned in iproute2's rt_protos (which names 0-4, 8-18, 42, 99 and
// 186-192), nor used by Calico (80), BIRD (12) or FRR (186-192). Add
// "157 meshexp" to /etc/iproute2/rt_protos.d/meshexp.conf for `ip route`
// to print it by name.
const Protocol = 157

// Route is one destination reached through a gateway on a local link.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
	// From says where the route came from: "node/NAME", "servicecidr/NAME"
	// or "flag". Not stored in the kernel.
	From string
}

func (r Route) String() string { return r.Dst.String() + " via " + r.Via.String() }

// ParseRoute parses the form of --route: CIDR=VIA, e.g. 10.244.1.0/24=192.168.1.11.
func ParseRoute(s string) (Route, error) {
	dst, via, ok := strings.Cut(s, "=")
	if !ok {
		return Route{}, fmt.Errorf("route %q: want CIDR=VIA, e.g. 10.244.1.0/24=192.168.1.11", s)
	}
	return NewRoute(dst, via, "flag")
}

// NewRoute checks and builds a route from strings.
func NewRoute(dst, via, from string) (Route, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(dst))
	if err != nil {
		return Route{}, fmt.Errorf("CIDR %q: %w", dst, err)
	}
	if p.Masked() != p {
		return Route{}, fmt.Errorf("CIDR %q has host bits set; did you mean %s?", dst, p.Masked())
	}
	gw, err := netip.ParseAddr(strings.TrimSpace(via))
	if err != nil {
		return Route{}, fmt.Errorf("gateway %q for %s: %w", via, dst, err)
	}
	gw = gw.Unmap()
	if gw.Is4() != p.Addr().Is4() {
		return Route{}, fmt.Errorf("route %s via %s: the gateway's address family differs from the CIDR's", p, gw)
	}
	if gw.IsUnspecified() || gw.IsMulticast() || gw.IsLoopback() {
		return Route{}, fmt.Errorf("gateway %s for %s is not a unicast address of a node", gw, p)
	}
	return Route{Dst: p, Via: gw, From: from}, nil
}

// ClusterOptions say what FromCluster reads.
type ClusterOptions struct {
	// NodeSelector limits the nodes (a label selector, e.g.
	// "node-role.kubernetes.io/worker"); empty means every node.
	NodeSelector string
	// ServiceCIDRs adds a route for each networking.k8s.io/v1 ServiceCIDR
	// (GA in 1.33) via the first node, by name, with an address of its
	// family: kube-proxy on any node serves every ClusterIP.
	ServiceCIDRs bool
}

// Node is the part of a core/v1 Node that routing reads.
type Node struct {
	Name string
	// PodCIDRs is spec.podCIDRs; PodCIDR (spec.podCIDR) is read only when
	// it is empty, as on clusters older than dual-stack.
	PodCIDRs []string
	PodCIDR  string
	// InternalIPs are the addresses of type InternalIP in
	// status.addresses, in order.
	InternalIPs []string
}

// The resources FromCluster lists. They are read through the dynamic
// client: client-go's typed clients would link in every API group's types
// (k8s.io/client-go/kubernetes/scheme), several MB of meshexp's RSS.
var (
	nodesGVR        = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	serviceCIDRsGVR = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "servicecidrs"}
)

// FromCluster reads every node's pod CIDRs and internal IPs (and the
// service CIDRs when asked). Nodes that cannot be routed to are skipped and
// named in the returned notes.
func FromCluster(ctx context.Context, dyn dynamic.Interface, opts ClusterOptions) ([]Route, []string, error) {
	list, err := dyn.Resource(nodesGVR).List(ctx, metav1.ListOptions{LabelSelector: opts.NodeSelector})
	if err != nil {
		return nil, nil, fmt.Errorf("list nodes: %w", err)
	}
	nodes := make([]Node, 0, len(list.Items))
	for i := range list.Items {
		n, err := nodeFrom(&list.Items[i])
		if err != nil {
			return nil, nil, err
		}
		nodes = append(nodes, n)
	}
	routes, notes := FromNodes(nodes)
	if opts.ServiceCIDRs {
		cidrs, err := dyn.Resource(serviceCIDRsGVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("list service CIDRs (networking.k8s.io/v1 servicecidrs; give --service-cidr on clusters older than 1.33): %w", err)
		}
		for _, sc := range cidrs.Items {
			specCIDRs, _, err := unstructured.NestedStringSlice(sc.Object, "spec", "cidrs")
			if err != nil {
				return nil, nil, fmt.Errorf("read ServiceCIDR %s: spec.cidrs: %w", sc.GetName(), err)
			}
			for _, c := range specCIDRs {
				r, note := viaFirstNode(c, nodes, "servicecidr/"+sc.GetName())
				if note != "" {
					notes = append(notes, note)
					continue
				}
				routes = append(routes, r)
			}
		}
	}
	if err := checkConflicts(routes); err != nil {
		return nil, nil, err
	}
	return routes, notes, nil
}

// nodeFrom reads the fields routing needs from a listed Node.
func nodeFrom(u *unstructured.Unstructured) (Node, error) {
	n := Node{Name: u.GetName()}
	var err error
	if n.PodCIDRs, _, err = unstructured.NestedStringSlice(u.Object, "spec", "podCIDRs"); err != nil {
		return Node{}, fmt.Errorf("read Node %s: spec.podCIDRs: %w", n.Name, err)
	}
	if n.PodCIDR, _, err = unstructured.NestedString(u.Object, "spec", "podCIDR"); err != nil {
		return Node{}, fmt.Errorf("read Node %s: spec.podCIDR: %w", n.Name, err)
	}
	addrs, _, err := unstructured.NestedSlice(u.Object, "status", "addresses")
	if err != nil {
		return Node{}, fmt.Errorf("read Node %s: status.addresses: %w", n.Name, err)
	}
	for _, a := range addrs {
		m, ok := a.(map[string]any)
		if !ok {
			continue
		}
		// core/v1 NodeInternalIP.
		if typ, _ := m["type"].(string); typ != "InternalIP" {
			continue
		}
		if ip, _ := m["address"].(string); ip != "" {
			n.InternalIPs = append(n.InternalIPs, ip)
		}
	}
	return n, nil
}

// FromNodes returns a route for each pod CIDR of each node via the node's
// InternalIP of the same family.
func FromNodes(nodes []Node) ([]Route, []string) {
	var routes []Route
	var notes []string
	for _, n := range sortedNodes(nodes) {
		cidrs := n.PodCIDRs
		if len(cidrs) == 0 && n.PodCIDR != "" {
			cidrs = []string{n.PodCIDR}
		}
		if len(cidrs) == 0 {
			notes = append(notes, fmt.Sprintf("node %s: no pod CIDR (spec.podCIDRs); skipped", n.Name))
			continue
		}
		for _, c := range cidrs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				notes = append(notes, fmt.Sprintf("node %s: pod CIDR %q: %v; skipped", n.Name, c, err))
				continue
			}
			ip, ok := internalIP(n, p.Addr().Is4())
			if !ok {
				notes = append(notes, fmt.Sprintf("node %s: no InternalIP of the family of %s; skipped", n.Name, p))
				continue
			}
			routes = append(routes, Route{Dst: p.Masked(), Via: ip, From: "node/" + n.Name})
		}
	}
	return routes, notes
}

// viaFirstNode routes cidr via the first node (by name) with an InternalIP
// of its family.
func viaFirstNode(cidr string, nodes []Node, from string) (Route, string) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return Route{}, fmt.Sprintf("%s: CIDR %q: %v; skipped", from, cidr, err)
	}
	for _, n := range sortedNodes(nodes) {
		if ip, ok := internalIP(n, p.Addr().Is4()); ok {
			return Route{Dst: p.Masked(), Via: ip, From: from}, ""
		}
	}
	return Route{}, fmt.Sprintf("%s: no node has an InternalIP of the family of %s; skipped", from, p)
}

func internalIP(n Node, v4 bool) (netip.Addr, bool) {
	for _, a := range n.InternalIPs {
		ip, err := netip.ParseAddr(a)
		if err == nil && ip.Unmap().Is4() == v4 {
			return ip.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

func sortedNodes(nodes []Node) []Node {
	s := append([]Node(nil), nodes...)
	sort.Slice(s, func(i, j int) bool { return s[i].Name < s[j].Name })
	return s
}

// checkConflicts refuses two routes to the same destination via different
// gateways: the kernel would keep only the last one.
func checkConflicts(routes []Route) error {
	seen := map[netip.Prefix]Route{}
	for _, r := range routes {
		if o, ok := seen[r.Dst]; ok && o.Via != r.Via {
			return fmt.Errorf("%s is routed both via %s (%s) and via %s (%s); fix the overlapping pod CIDRs or give routes by hand", r.Dst, o.Via, o.From, r.Via, r.From)
		}
		seen[r.Dst] = r
	}
	return nil
}

// Dedup removes repeated routes, keeping the first.
func Dedup(routes []Route) ([]Route, error) {
	if err := checkConflicts(routes); err != nil {
		return nil, err
	}
	seen := map[netip.Prefix]bool{}
	var out []Route
	for _, r := range routes {
		if !seen[r.Dst] {
			seen[r.Dst] = true
			out = append(out, r)
		}
	}
	return out, nil
}
