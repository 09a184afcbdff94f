// Package kube registers a host with the cluster: it renders and applies the
// host's Linkerd ExternalWorkload and Service with server-side apply, writes
// the Ready condition through the status subresource, renews a Lease as a
// heartbeat, and renders the least-privilege RBAC a host needs.
//
// What Linkerd's destination controller does with the objects (from
// linkerd/linkerd2 controller/api/destination/external-workload/, summarised
// in internal/kube/LINKERD.md) fixes their shape:
//   - the Service selects the ExternalWorkload by labels in the same
//     namespace;
//   - the Service's targetPort names a port declared on the ExternalWorkload;
//   - an endpoint is ready only with status.conditions[type=Ready] "True",
//     written through the status subresource;
//   - meshTLS.identity and meshTLS.serverName are what peers verify.
package kube

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// FieldManager is the server-side apply field manager for everything
// meshexp writes, so that `kubectl get --show-managed-fields` says who owns
// each field.
const FieldManager = "meshexp"

// Label keys meshexp puts on the ExternalWorkload. The Service selects on
// LabelWorkloadName only, as the demo's template does, so extra labels never
// change which endpoints the Service has.
const (
	LabelApp          = "app"
	LabelLocation     = "location"
	LabelWorkloadName = "workload_name"
)

// Workload is everything needed to describe one host to the cluster. It
// deliberately holds plain values so that callers (the CLI, bootstrap,
// tests) can fill it from any configuration source.
type Workload struct {
	// Name of the ExternalWorkload, its Service and its Lease.
	Name string
	// Namespace of all three.
	Namespace string
	// Identity is meshTLS.identity, the SPIFFE ID in the proxy's certificate.
	Identity string
	// ServerName is meshTLS.serverName, the SNI the proxy terminates.
	ServerName string
	// IPs are the addresses the cluster reaches the host on: one IPv4, one
	// IPv6, or one of each (the CRD allows at most two).
	IPs []netip.Addr
	// Ports the workload serves; the Service exposes each of them by name.
	Ports []Port
	// Labels added to the ExternalWorkload beside the default ones.
	Labels map[string]string
	// ServicePort is the Service's port for Ports[0]; 0 means the same
	// number as Ports[0].Port. The other ports keep their own numbers.
	ServicePort int32
	// ProxyInboundPort is the host proxy's inbound port (--inbound-port),
	// written as the ExternalWorkload's port named linkerd-proxy: the
	// opaque-transport port Linkerd's destination controller hands peers
	// (default 4143). 0 writes none, and Linkerd assumes 4143.
	ProxyInboundPort int32
	// OpaquePorts is the host proxy's --opaque-ports in Linkerd's form
	// ("25,587,3306" and ranges "4000-4100"), written as the annotation
	// config.linkerd.io/opaque-ports: the only place Linkerd's policy
	// controller reads an external workload's opaque ports. Empty writes
	// no annotation (Linkerd then applies its namespace or cluster
	// default).
	OpaquePorts string
}

// AnnotationOpaquePorts is where Linkerd reads the opaque ports of an
// ExternalWorkload (linkerd2 policy-controller/k8s/index/src/inbound/workload.rs).
const AnnotationOpaquePorts = "config.linkerd.io/opaque-ports"

// Port is one named port of the workload.
type Port struct {
	Name     string
	Port     int32
	Protocol string // "TCP" or "UDP"
}

// Protocols accepted on a port, as the CRD's description says.
const (
	ProtocolTCP = "TCP"
	ProtocolUDP = "UDP"
)

// proxyPortName is the port name that Linkerd reads as the proxy's opaque
// transport port (linkerd2 controller/api/destination/watcher, default 4143);
// it is meaningful on the ExternalWorkload but not as a Service port.
const proxyPortName = "linkerd-proxy"

// Validate reports every problem with w at once, naming the field, so that a
// user fixes them in one go. It is called before any API request.
func (w *Workload) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// The Service shares the name, and Service names must be DNS-1035 labels.
	if msgs := validation.IsDNS1035Label(w.Name); len(msgs) > 0 {
		add("workload name %q: %s (it also names the Service and the Lease)", w.Name, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Label(w.Namespace); len(msgs) > 0 {
		add("workload namespace %q: %s", w.Namespace, strings.Join(msgs, "; "))
	}
	// Lengths from the CRD: meshTLS.identity and serverName are 1-253 chars.
	if !strings.HasPrefix(w.Identity, "spiffe://") || len(w.Identity) > 253 || len(w.Identity) <= len("spiffe://") {
		add("identity %q: want a spiffe:// URI of at most 253 characters", w.Identity)
	}
	if msgs := validation.IsDNS1123Subdomain(w.ServerName); len(msgs) > 0 {
		add("server name %q: %s", w.ServerName, strings.Join(msgs, "; "))
	}
	errs = append(errs, validateIPs(w.IPs)...)
	errs = append(errs, validatePorts(w.Ports)...)
	if w.ProxyInboundPort < 0 || w.ProxyInboundPort > 65535 {
		add("proxy inbound port %d: want 1-65535 (0 writes no %s port)", w.ProxyInboundPort, proxyPortName)
	}
	for _, p := range w.Ports {
		if p.Name == proxyPortName && w.ProxyInboundPort != 0 && p.Port != w.ProxyInboundPort {
			add("port %s: %d differs from the proxy's inbound port %d; drop it (meshexp writes %s from the inbound port) or make them equal", proxyPortName, p.Port, w.ProxyInboundPort, proxyPortName)
		}
	}
	if err := validateOpaquePorts(w.OpaquePorts); err != nil {
		errs = append(errs, err)
	}
	if w.ServicePort < 0 || w.ServicePort > 65535 {
		add("service port %d: want 1-65535 (0 means the first port's number)", w.ServicePort)
	}
	for _, k := range sortedKeys(w.Labels) {
		if k == LabelWorkloadName {
			add("label %q is set by meshexp to the workload name (the Service selects on it); choose another key", k)
			continue
		}
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			add("label key %q: %s", k, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(w.Labels[k]); len(msgs) > 0 {
			add("label %s value %q: %s", k, w.Labels[k], strings.Join(msgs, "; "))
		}
	}
	return errors.Join(errs...)
}

func validateIPs(ips []netip.Addr) []error {
	var errs []error
	if len(ips) == 0 {
		return []error{errors.New("workload IPs: none given; give one IPv4 and/or one IPv6 address")}
	}
	if len(ips) > 2 {
		errs = append(errs, fmt.Errorf("workload IPs: %d given; the ExternalWorkload holds at most two (one IPv4, one IPv6)", len(ips)))
	}
	var v4, v6 int
	for _, ip := range ips {
		switch {
		case !ip.IsValid():
			errs = append(errs, errors.New("workload IP: empty address"))
			continue
		case ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || ip.IsLinkLocalUnicast():
			errs = append(errs, fmt.Errorf("workload IP %s: not reachable from the cluster (unspecified, loopback, multicast or link-local); give the host's routable address", ip))
		}
		if ip.Unmap().Is4() {
			v4++
		} else {
			v6++
		}
	}
	if v4 > 1 || v6 > 1 {
		errs = append(errs, fmt.Errorf("workload IPs %v: at most one IPv4 and one IPv6 address", ips))
	}
	return errs
}

func validatePorts(ports []Port) []error {
	var errs []error
	if len(ports) == 0 {
		return []error{errors.New("ports: none given; give at least one NAME:PORT")}
	}
	names := map[string]bool{}
	numbers := map[string]bool{}
	for _, p := range ports {
		if msgs := validation.IsValidPortName(p.Name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("port name %q: %s (the Service's targetPort refers to it)", p.Name, strings.Join(msgs, "; ")))
		}
		if names[p.Name] {
			errs = append(errs, fmt.Errorf("port name %q: given twice; names must be unique", p.Name))
		}
		names[p.Name] = true
		if p.Port < 1 || p.Port > 65535 {
			errs = append(errs, fmt.Errorf("port %s: number %d out of range 1-65535", p.Name, p.Port))
		}
		if p.Protocol != ProtocolTCP && p.Protocol != ProtocolUDP {
			errs = append(errs, fmt.Errorf("port %s: protocol %q: want TCP or UDP", p.Name, p.Protocol))
		}
		key := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if numbers[key] {
			errs = append(errs, fmt.Errorf("port %s: %s given twice", p.Name, key))
		}
		numbers[key] = true
	}
	if ports[0].Name == proxyPortName {
		errs = append(errs, fmt.Errorf("port %s: the first port is the Service's; put %s after the workload's ports", proxyPortName, proxyPortName))
	}
	return errs
}

// validateOpaquePorts checks the annotation's form: ports and ranges a-b,
// comma-separated.
func validateOpaquePorts(s string) error {
	if s == "" {
		return nil
	}
	for _, f := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(f, "-")
		if !isRange {
			to = from
		}
		a, errA := strconv.Atoi(from)
		b, errB := strconv.Atoi(to)
		if errA != nil || errB != nil || a < 1 || b > 65535 || a > b {
			return fmt.Errorf("opaque ports %q: %q is not a port or a range a-b of ports 1-65535", s, f)
		}
	}
	return nil
}

// ParsePort parses NAME:PORT[/TCP|UDP], the form of --port and MESHEXP_PORTS.
func ParsePort(s string) (Port, error) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok || name == "" || rest == "" {
		return Port{}, fmt.Errorf("port %q: want NAME:PORT[/TCP|UDP], e.g. http:8000", s)
	}
	num, proto, hasProto := strings.Cut(rest, "/")
	p := Port{Name: name, Protocol: ProtocolTCP}
	if hasProto {
		p.Protocol = strings.ToUpper(proto)
	}
	var n int
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || fmt.Sprint(n) != num {
		return Port{}, fmt.Errorf("port %q: %q is not a port number; want NAME:PORT[/TCP|UDP]", s, num)
	}
	if n < 1 || n > 65535 {
		return Port{}, fmt.Errorf("port %q: number %d out of range 1-65535", s, n)
	}
	p.Port = int32(n)
	if msgs := validation.IsValidPortName(name); len(msgs) > 0 {
		return Port{}, fmt.Errorf("port %q: name %q: %s", s, name, strings.Join(msgs, "; "))
	}
	if p.Protocol != ProtocolTCP && p.Protocol != ProtocolUDP {
		return Port{}, fmt.Errorf("port %q: protocol %q: want TCP or UDP", s, proto)
	}
	return p, nil
}

// ParsePorts parses a comma-separated list of ParsePort forms.
func ParsePorts(s string) ([]Port, error) {
	var ports []Port
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := ParsePort(f)
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// ParseLabel parses KEY=VALUE, the form of --label.
func ParseLabel(s string) (key, value string, err error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("label %q: want KEY=VALUE", s)
	}
	if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
		return "", "", fmt.Errorf("label %q: key: %s", s, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
		return "", "", fmt.Errorf("label %q: value: %s", s, strings.Join(msgs, "; "))
	}
	return k, v, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
