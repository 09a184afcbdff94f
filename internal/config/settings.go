package config

import (
	"net/netip"
	"time"
)

// The settings table. Defaults are the demo's values (shared/DESIGN.md)
// unless a comment says why not.

const (
	// DefaultProxyUID is the uid Linkerd's chart runs the proxy as
	// (charts/linkerd-control-plane/values.yaml proxy.uid).
	DefaultProxyUID = "2102"
	// defaultOpaquePorts is the chart's proxy.opaquePorts
	// (server-speaks-first protocols), the demo's value too.
	defaultOpaquePorts = "25,587,3306,4444,5432,6379,9300,11211"
	// defaultClusterNetworks is the chart's clusterNetworks: the demo's four
	// IPv4 ranges plus fd00::/8, which the chart added for IPv6 clusters.
	defaultClusterNetworks = "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8"
	// defaultSkipPorts are ignored for interception in both directions by
	// Linkerd's chart (proxyInit.ignoreInboundPorts/ignoreOutboundPorts
	// default to 4567,4568, the ports of Linkerd's multicluster gateway).
	defaultSkipPorts = "4567,4568"
	// DefaultControlMark is the packet mark meshexp puts on its own control
	// connections (Kubernetes API, DNS upstreams) so interception lets them
	// through. 0x1000 sits in the 0xf000 range Cilium leaves to Kubernetes,
	// where kube-proxy uses only 0x4000/0x8000, and clear of CNI portmap's
	// and netavark's 0x2000, Calico (0xffff0000), Tailscale (0xff0000),
	// Istio (0xfff), Cilium (0x0f00) and wg-quick (0xca6c). It must equal
	// netfilter.DefaultControlMark (a test checks).
	DefaultControlMark = "0x1000"
)

func init() {
	register(
		&Setting{Name: "workload-name", Env: []string{"WORKLOAD_NAME", "MESHEXP_WORKLOAD_NAME"}, Required: true, Group: "workload", Scope: ScopeWorkload,
			Usage: "the workload's name: its SPIFFE ID path, TLS server name and ExternalWorkload name (a DNS-1123 label)",
			parse: str(func(c *Config) *string { return &c.WorkloadName })},
		&Setting{Name: "workload-namespace", Env: []string{"WORKLOAD_NAMESPACE", "MESHEXP_WORKLOAD_NAMESPACE"}, Required: true, Group: "workload", Scope: ScopeWorkload,
			Usage: "the Kubernetes namespace the workload belongs to (a DNS-1123 label)",
			parse: str(func(c *Config) *string { return &c.WorkloadNamespace })},
		&Setting{Name: "node-name", Env: []string{"NODE_NAME", "MESHEXP_NODE_NAME"}, Required: true, Group: "workload", Scope: ScopeWorkload,
			Usage: "the host's name, reported to the destination service",
			parse: str(func(c *Config) *string { return &c.NodeName })},
		&Setting{Name: "trust-anchor-dir", Env: []string{"MESHEXP_TRUST_ANCHOR_DIR"}, Default: "/opt/spire/certs", Group: "workload", Scope: ScopeWorkload | ScopeSPIRE,
			Usage: "directory with the mesh's trust anchor ca.crt (and ca.key for an embedded SPIRE server signing with the root)",
			parse: str(func(c *Config) *string { return &c.TrustAnchorDir })},
		&Setting{Name: "trust-domain", Env: []string{"MESHEXP_TRUST_DOMAIN"}, Default: "root.linkerd.cluster.local", Group: "workload", Scope: ScopeWorkload,
			Usage: "SPIFFE trust domain of the mesh",
			parse: str(func(c *Config) *string { return &c.TrustDomain })},
		&Setting{Name: "cluster-domain", Env: []string{"MESHEXP_CLUSTER_DOMAIN"}, Default: "cluster.local", Group: "workload", Scope: ScopeWorkload,
			Usage: "the cluster's DNS domain",
			parse: str(func(c *Config) *string { return &c.ClusterDomain })},

		&Setting{Name: "control-plane-namespace", Env: []string{"MESHEXP_CONTROL_PLANE_NAMESPACE"}, Default: "linkerd", Group: "control plane", Scope: ScopeProxy,
			Usage: "namespace of the Linkerd control plane",
			parse: str(func(c *Config) *string { return &c.ControlPlaneNamespace })},
		&Setting{Name: "destination-addr", Env: []string{"MESHEXP_DESTINATION_ADDR"}, Group: "control plane", Scope: ScopeProxy,
			Usage: "destination service host:port (default linkerd-dst-headless.<ns>.svc.<cluster domain>.:8086)",
			parse: str(func(c *Config) *string { return &c.DestinationAddr })},
		&Setting{Name: "policy-addr", Env: []string{"MESHEXP_POLICY_ADDR"}, Group: "control plane", Scope: ScopeProxy,
			Usage: "policy service host:port (default linkerd-policy.<ns>.svc.<cluster domain>.:8090)",
			parse: str(func(c *Config) *string { return &c.PolicyAddr })},
		&Setting{Name: "destination-identity", Env: []string{"MESHEXP_DESTINATION_IDENTITY"}, Group: "control plane", Scope: ScopeProxy,
			Usage: "TLS identity of the destination service (default linkerd-destination.<ns>.serviceaccount.identity.<ns>.<cluster domain>)",
			parse: str(func(c *Config) *string { return &c.DestinationIdentity })},
		&Setting{Name: "policy-identity", Env: []string{"MESHEXP_POLICY_IDENTITY"}, Group: "control plane", Scope: ScopeProxy,
			Usage: "TLS identity of the policy service (default: the destination identity)",
			parse: str(func(c *Config) *string { return &c.PolicyIdentity })},

		&Setting{Name: "proxy-bin", Env: []string{"MESHEXP_PROXY_BIN"}, Default: "/opt/linkerd/linkerd2-proxy", Group: "proxy", Scope: ScopeRun,
			Usage: "path of the linkerd2-proxy binary",
			parse: str(func(c *Config) *string { return &c.Proxy.Bin })},
		&Setting{Name: "proxy-uid", Env: []string{"MESHEXP_PROXY_UID"}, Default: DefaultProxyUID, Group: "proxy", Scope: ScopeProxy | ScopeIntercept | ScopeSPIRE,
			Usage: "user the proxy runs as (uid or name, optionally :gid); its traffic is not intercepted and only it gets the SVID; never 0",
			parse: userSpec(func(c *Config) *User { return &c.Proxy.User })},
		&Setting{Name: "proxy-log-level", Env: []string{"MESHEXP_PROXY_LOG_LEVEL"}, Default: "info", Group: "proxy", Scope: ScopeProxy,
			Usage: "LINKERD2_PROXY_LOG filter",
			parse: str(func(c *Config) *string { return &c.Proxy.LogLevel })},
		&Setting{Name: "proxy-log-format", Env: []string{"MESHEXP_PROXY_LOG_FORMAT"}, Default: "plain", Group: "proxy", Scope: ScopeProxy,
			Usage: "LINKERD2_PROXY_LOG_FORMAT: plain or json",
			parse: enum(func(c *Config) *string { return &c.Proxy.LogFormat }, "plain", "json")},
		&Setting{Name: "inbound-port", Env: []string{"MESHEXP_INBOUND_PORT"}, Default: "4143", Group: "proxy", Scope: ScopeProxy | ScopeIntercept,
			Usage: "proxy inbound listener port",
			parse: port(func(c *Config) *uint16 { return &c.Proxy.InboundPort })},
		&Setting{Name: "outbound-port", Env: []string{"MESHEXP_OUTBOUND_PORT"}, Default: "4140", Group: "proxy", Scope: ScopeProxy | ScopeIntercept,
			Usage: "proxy outbound listener port (on 127.0.0.1)",
			parse: port(func(c *Config) *uint16 { return &c.Proxy.OutboundPort })},
		&Setting{Name: "admin-port", Env: []string{"MESHEXP_ADMIN_PORT"}, Default: "4191", Group: "proxy", Scope: ScopeProxy | ScopeIntercept,
			Usage: "proxy admin port (/ready, /live, /metrics)",
			parse: port(func(c *Config) *uint16 { return &c.Proxy.AdminPort })},
		&Setting{Name: "control-port", Env: []string{"MESHEXP_CONTROL_PORT"}, Default: "4190", Group: "proxy", Scope: ScopeProxy | ScopeIntercept,
			Usage: "proxy control (tap) port",
			parse: port(func(c *Config) *uint16 { return &c.Proxy.ControlPort })},
		&Setting{Name: "opaque-ports", Env: []string{"MESHEXP_OPAQUE_PORTS"}, Default: defaultOpaquePorts, List: true, Group: "proxy", Scope: ScopeProxy,
			Usage: "inbound ports without protocol detection (server-speaks-first protocols); ports or ranges a-b",
			parse: portList(func(c *Config) *[]PortRange { return &c.Proxy.OpaquePorts })},
		&Setting{Name: "cluster-networks", Env: []string{"MESHEXP_CLUSTER_NETWORKS"}, Default: defaultClusterNetworks, List: true, Group: "proxy", Scope: ScopeProxy,
			Usage: "CIDRs the proxy treats as in-cluster (profile and policy lookups)",
			parse: prefixList(func(c *Config) *[]netip.Prefix { return &c.Proxy.ClusterNetworks })},
		&Setting{Name: "inbound-default-policy", Env: []string{"MESHEXP_INBOUND_DEFAULT_POLICY"}, Default: "all-unauthenticated", Group: "proxy", Scope: ScopeProxy,
			Usage: "default inbound policy: all-unauthenticated, all-authenticated, cluster-unauthenticated, cluster-authenticated, deny, audit",
			parse: enum(func(c *Config) *string { return &c.Proxy.InboundDefaultPolicy },
				"all-unauthenticated", "all-authenticated", "cluster-unauthenticated", "cluster-authenticated", "deny", "audit")},

		&Setting{Name: "intercept", Env: []string{"MESHEXP_INTERCEPT"}, Default: "true", Group: "interception", Scope: ScopeRun,
			Usage: "install interception rules (false when the host's traffic is redirected some other way)",
			parse: boolean(func(c *Config) *bool { return &c.Intercept.Enabled })},
		&Setting{Name: "intercept-backend", Env: []string{"MESHEXP_INTERCEPT_BACKEND"}, Default: "auto", Group: "interception", Scope: ScopeIntercept,
			Usage: "firewall backend: auto, iptables-legacy or iptables-nft",
			parse: enum(func(c *Config) *string { return &c.Intercept.Backend }, "auto", "iptables-legacy", "iptables-nft")},
		&Setting{Name: "intercept-ipv6", Env: []string{"MESHEXP_INTERCEPT_IPV6"}, Default: "auto", Group: "interception", Scope: ScopeIntercept,
			Usage: "IPv6 rules: auto (when the host has IPv6), on or off",
			parse: enum(func(c *Config) *string { return &c.Intercept.IPv6 }, "auto", "on", "off")},
		&Setting{Name: "skip-inbound-ports", Env: []string{"MESHEXP_SKIP_INBOUND_PORTS"}, Default: defaultSkipPorts, List: true, Group: "interception", Scope: ScopeIntercept,
			Usage: "inbound ports (or ranges a-b) not redirected to the proxy",
			parse: portList(func(c *Config) *[]PortRange { return &c.Intercept.SkipInboundPorts })},
		&Setting{Name: "skip-outbound-ports", Env: []string{"MESHEXP_SKIP_OUTBOUND_PORTS"}, Default: defaultSkipPorts, List: true, Group: "interception", Scope: ScopeIntercept,
			Usage: "outbound destination ports (or ranges a-b) not redirected to the proxy",
			parse: portList(func(c *Config) *[]PortRange { return &c.Intercept.SkipOutboundPorts })},
		&Setting{Name: "skip-outbound-subnets", Env: []string{"MESHEXP_SKIP_OUTBOUND_SUBNETS"}, List: true, Group: "interception", Scope: ScopeIntercept,
			Usage: "outbound destination CIDRs not redirected to the proxy",
			parse: prefixList(func(c *Config) *[]netip.Prefix { return &c.Intercept.SkipOutboundSubnets })},
		&Setting{Name: "inbound-ports", Env: []string{"MESHEXP_INBOUND_PORTS"}, List: true, Group: "interception", Scope: ScopeIntercept,
			Usage: "when set, only these inbound ports (or ranges) are redirected; default all",
			parse: portList(func(c *Config) *[]PortRange { return &c.Intercept.InboundPorts })},
		&Setting{Name: "exempt-destinations", Env: []string{"MESHEXP_INTERCEPT_EXEMPT_DESTINATIONS"}, List: true, Group: "interception", Scope: ScopeIntercept,
			Usage: "outbound destinations IP or IP:port ([IPv6]:port) never redirected, e.g. a SPIRE server (bootstrap adds an external SPIRE server itself)",
			parse: destinationList(func(c *Config) *[]netip.AddrPort { return &c.Intercept.ExemptDestinations })},
		&Setting{Name: "control-mark", Env: []string{"MESHEXP_CONTROL_MARK"}, Default: DefaultControlMark, Group: "interception", Scope: ScopeIntercept,
			Usage: "packet mark on meshexp's own control connections, which interception lets through",
			parse: mark(func(c *Config) *uint32 { return &c.Intercept.ControlMark })},

		&Setting{Name: "spire-mode", Env: []string{"MESHEXP_SPIRE_MODE"}, Default: SPIREEmbedded, Group: "spire", Scope: ScopeSPIRE,
			Usage: "identity source: embedded (DEMO ONLY: a SPIRE server on this host), external (agent joining a remote server) or existing (an agent already running)",
			parse: enum(func(c *Config) *string { return &c.SPIRE.Mode }, SPIREEmbedded, SPIREExternal, SPIREExisting)},
		&Setting{Name: "spire-bin-dir", Env: []string{"MESHEXP_SPIRE_BIN_DIR"}, Group: "spire", Scope: ScopeSPIRE,
			Usage: "directory with spire-server and spire-agent (default: PATH, then /opt/spire/bin)",
			parse: str(func(c *Config) *string { return &c.SPIRE.BinDir })},
		&Setting{Name: "spire-data-dir", Env: []string{"MESHEXP_SPIRE_DATA_DIR"}, Default: "/var/lib/meshexp/spire", Group: "spire", Scope: ScopeSPIRE,
			Usage: "directory for SPIRE's configs, data and admin sockets",
			parse: str(func(c *Config) *string { return &c.SPIRE.DataDir })},
		&Setting{Name: "spire-socket", Env: []string{"MESHEXP_SPIRE_SOCKET"}, Default: "/run/meshexp/spire/public/api.sock", Group: "spire", Scope: ScopeSPIRE | ScopeProxy,
			Usage: "the SPIRE agent's Workload API socket the proxy fetches its SVID from",
			parse: str(func(c *Config) *string { return &c.SPIRE.SocketPath })},
		&Setting{Name: "spire-upstream-cert", Env: []string{"MESHEXP_SPIRE_UPSTREAM_CERT"}, Group: "spire", Scope: ScopeSPIRE,
			Usage: "embedded: CA certificate that signs SPIRE's CA, e.g. from `meshexp certs intermediate` (default: the trust anchor ca.crt)",
			parse: str(func(c *Config) *string { return &c.SPIRE.UpstreamCert })},
		&Setting{Name: "spire-upstream-key", Env: []string{"MESHEXP_SPIRE_UPSTREAM_KEY"}, Group: "spire", Scope: ScopeSPIRE,
			Usage: "embedded: key of --spire-upstream-cert (default: the trust anchor ca.key)",
			parse: str(func(c *Config) *string { return &c.SPIRE.UpstreamKey })},
		&Setting{Name: "spire-upstream-bundle", Env: []string{"MESHEXP_SPIRE_UPSTREAM_BUNDLE"}, Group: "spire", Scope: ScopeSPIRE,
			Usage: "embedded with an intermediate: the root certificates above it (default: the trust anchor ca.crt)",
			parse: str(func(c *Config) *string { return &c.SPIRE.UpstreamBundle })},
		&Setting{Name: "spire-server-address", Env: []string{"MESHEXP_SPIRE_SERVER_ADDRESS"}, Group: "spire", Scope: ScopeSPIRE,
			Usage: "external: the SPIRE server's address (IP or host name)",
			parse: str(func(c *Config) *string { return &c.SPIRE.ServerAddress })},
		&Setting{Name: "spire-server-port", Env: []string{"MESHEXP_SPIRE_SERVER_PORT"}, Default: "8081", Group: "spire", Scope: ScopeSPIRE,
			Usage: "the SPIRE server's port",
			parse: port(func(c *Config) *uint16 { return &c.SPIRE.ServerPort })},
		&Setting{Name: "spire-trust-bundle", Env: []string{"MESHEXP_SPIRE_TRUST_BUNDLE"}, Group: "spire", Scope: ScopeSPIRE,
			Usage: "external: CA bundle the agent trusts the server with (default: the trust anchor ca.crt)",
			parse: str(func(c *Config) *string { return &c.SPIRE.TrustBundle })},
		&Setting{Name: "spire-join-token", Env: []string{"MESHEXP_SPIRE_JOIN_TOKEN"}, Secret: true, Group: "spire", Scope: ScopeSPIRE,
			Usage: "external: single-use join token (prefer --spire-join-token-file; never logged)",
			parse: str(func(c *Config) *string { return &c.SPIRE.JoinToken })},
		&Setting{Name: "spire-join-token-file", Env: []string{"MESHEXP_SPIRE_JOIN_TOKEN_FILE"}, Group: "spire", Scope: ScopeSPIRE,
			Usage: "external: file holding the join token",
			parse: str(func(c *Config) *string { return &c.SPIRE.JoinTokenFile })},
		&Setting{Name: "spire-x509pop-cert", Env: []string{"MESHEXP_SPIRE_X509POP_CERT"}, Group: "spire", Scope: ScopeSPIRE,
			Usage: "external: node certificate for x509pop attestation (instead of a join token)",
			parse: str(func(c *Config) *string { return &c.SPIRE.X509PopCert })},
		&Setting{Name: "spire-x509pop-key", Env: []string{"MESHEXP_SPIRE_X509POP_KEY"}, Group: "spire", Scope: ScopeSPIRE,
			Usage: "external: key of --spire-x509pop-cert",
			parse: str(func(c *Config) *string { return &c.SPIRE.X509PopKey })},
		&Setting{Name: "spire-svid-timeout", Env: []string{"MESHEXP_SPIRE_SVID_TIMEOUT"}, Default: "60s", Group: "spire", Scope: ScopeSPIRE,
			Usage: "how long to wait for a verified SVID before giving up",
			parse: duration(func(c *Config) *time.Duration { return &c.SPIRE.SVIDTimeout })},

		&Setting{Name: "workload", Env: []string{"MESHEXP_WORKLOAD"}, Default: "/workload/start", Group: "run", Scope: ScopeRun,
			Usage: "the workload's command (an executable path); started after the proxy is ready",
			parse: str(func(c *Config) *string { return &c.Workload })},
		&Setting{Name: "workload-user", Env: []string{"MESHEXP_WORKLOAD_USER"}, Default: "65534:65534", Group: "run", Scope: ScopeRun,
			Usage: "user the workload runs as (uid or name, optionally :gid or :group); not root by default",
			parse: userSpec(func(c *Config) *User { return &c.WorkloadUser })},
		&Setting{Name: "workload-restart", Env: []string{"MESHEXP_WORKLOAD_RESTART"}, Default: "never", Group: "run", Scope: ScopeRun,
			Usage: "restart policy when the workload exits: never, on-failure or always (with backoff)",
			parse: enum(func(c *Config) *string { return &c.WorkloadRestart }, "never", "on-failure", "always")},
		&Setting{Name: "shutdown-grace", Env: []string{"MESHEXP_SHUTDOWN_GRACE"}, Default: "10s", Group: "run", Scope: ScopeRun,
			Usage: "time each child gets between SIGTERM and SIGKILL at shutdown",
			parse: duration(func(c *Config) *time.Duration { return &c.ShutdownGrace })},
		&Setting{Name: "ready-timeout", Env: []string{"MESHEXP_READY_TIMEOUT"}, Default: "120s", Group: "run", Scope: ScopeRun,
			Usage: "how long to wait for the proxy's /ready before giving up",
			parse: duration(func(c *Config) *time.Duration { return &c.ReadyTimeout })},
	)
}
