// Package config holds meshexp's one configuration struct, the registry of
// settings that fills it (flag > environment > config file > default), and
// the validation that runs before anything on the host changes.
//
// Every setting has a flag and a MESHEXP_* environment variable; the demo's
// own variables (WORKLOAD_NAME, WORKLOAD_NAMESPACE, NODE_NAME) are accepted
// as they are, so the demo's `podman run` line works unchanged.
package config

import (
	"fmt"
	"net/netip"
	"time"
)

// SPIRE modes.
const (
	SPIREEmbedded = "embedded" // demo only: a SPIRE server on this host
	SPIREExternal = "external" // an agent joining a remote SPIRE server
	SPIREExisting = "existing" // an agent already running; only its socket
)

// Config is everything bootstrap and its sibling commands need.
type Config struct {
	WorkloadName      string
	WorkloadNamespace string
	NodeName          string

	TrustAnchorDir string
	TrustDomain    string
	ClusterDomain  string

	ControlPlaneNamespace string
	DestinationAddr       string
	PolicyAddr            string
	DestinationIdentity   string
	PolicyIdentity        string

	Workload     string
	WorkloadUser User
	// WorkloadAllowRoot lets the workload run as uid 0 (refused otherwise).
	WorkloadAllowRoot bool
	WorkloadRestart   string
	ShutdownGrace     time.Duration
	ReadyTimeout      time.Duration

	Proxy     Proxy
	Intercept Intercept
	SPIRE     SPIRE
	Register  Register
	Fleet     Fleet
	// Controller is `meshexp controller`'s (the cluster side).
	Controller Controller
	DNS        DNS
	Probes     Probes
	// StatusAddr is meshexp's own admin endpoint, or StatusOff.
	StatusAddr string

	// origins records where each setting's value came from, for messages.
	origins map[string]origin
}

// Proxy configures linkerd2-proxy.
type Proxy struct {
	Bin                  string
	User                 User
	LogLevel             string
	LogFormat            string
	InboundPort          uint16
	OutboundPort         uint16
	AdminPort            uint16
	ControlPort          uint16
	OpaquePorts          []PortRange
	ClusterNetworks      []netip.Prefix
	InboundDefaultPolicy string
}

// Intercept configures traffic interception.
type Intercept struct {
	Enabled             bool
	Backend             string // auto, iptables-legacy, iptables-nft
	IPv6                string // auto, on, off
	SkipInboundPorts    []PortRange
	SkipOutboundPorts   []PortRange
	SkipOutboundSubnets []netip.Prefix
	InboundPorts        []PortRange // when set, only these are redirected inbound
	// ExemptDestinations are outbound destinations never redirected; port 0
	// means every port (control traffic of processes meshexp cannot mark).
	ExemptDestinations []netip.AddrPort
	ControlMark        uint32
}

// SPIRE configures where the proxy's identity comes from.
type SPIRE struct {
	Mode           string
	BinDir         string
	DataDir        string
	SocketPath     string // the agent's Workload API socket the proxy uses
	UpstreamCert   string // embedded: CA that signs SPIRE's CA (default ca.crt)
	UpstreamKey    string
	UpstreamBundle string // embedded with an intermediate: the roots above it
	ServerAddress  string
	ServerPort     uint16
	TrustBundle    string // external: the server's bundle (default ca.crt)
	JoinToken      string
	JoinTokenFile  string
	X509PopCert    string
	X509PopKey     string
	SVIDTimeout    time.Duration
	SVIDTTL        time.Duration // embedded: the SVID's lifetime
	CATTL          time.Duration // embedded: the SPIRE server CA's lifetime
}

// Register configures the ExternalWorkload and bootstrap's registration.
// Ports and labels stay as written: internal/kube parses them, so there is
// one parser for the ExternalWorkload's rules.
type Register struct {
	Enabled          bool
	Kubeconfig       string
	WorkloadIPs      []netip.Addr // empty: detected from the default route
	Ports            []string     // NAME:PORT[/TCP|UDP]
	Labels           []string     // KEY=VALUE
	ServicePort      uint16       // 0: 80 with the default ports, else the first port
	DeleteOnShutdown bool
	ProbePeriod      time.Duration
	LeaseDuration    time.Duration
}

// DNS configures the cluster DNS forwarder: bootstrap's (the first block)
// and `meshexp dns`'s, which also reads the tuning below (bootstrap keeps
// the forwarder's defaults for it).
type DNS struct {
	Enabled       bool
	Listen        string
	ClusterDNS    []netip.AddrPort
	Upstreams     []netip.AddrPort
	ClusterCIDRs  []netip.Prefix // pod and service networks: their reverse zones go to ClusterDNS
	PointResolver string         // resolv.conf rewritten to use the forwarder, restored on exit

	ClusterZones      []string
	ResolvConf        string
	Timeout           time.Duration
	AttemptTimeout    time.Duration
	MaxFails          int64
	ProbeInterval     time.Duration
	UpstreamPortReuse int64
	CacheSize         int64
	CacheMaxBytes     int64
	MinTTL            time.Duration
	MaxTTL            time.Duration
	NegativeMaxTTL    time.Duration
	UDPSize           int64
	UDPReaders        int64
	MaxConcurrent     int64
	TCPIdleTimeout    time.Duration
	MetricsAddr       string
	LogInterval       time.Duration
}

// User is a resolved uid/gid with the name it was given as.
type User struct {
	Spec string // as written: "2102", "nobody", "65534:65534"
	UID  uint32
	GID  uint32
}

func (u User) String() string { return fmt.Sprintf("%d:%d", u.UID, u.GID) }

// PortRange is an inclusive port range; From == To for a single port.
type PortRange struct{ From, To uint16 }

func (r PortRange) String() string {
	if r.From == r.To {
		return fmt.Sprint(r.From)
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
}

// TrustAnchorPath is the trust anchor certificate (ca.crt).
func (c *Config) TrustAnchorPath() string { return c.TrustAnchorDir + "/ca.crt" }

// TrustAnchorKeyPath is the trust anchor's key (ca.key), needed only by an
// embedded SPIRE server signing with the root itself.
func (c *Config) TrustAnchorKeyPath() string { return c.TrustAnchorDir + "/ca.key" }

// SPIFFEID is the workload's identity: what the SPIRE entry issues, what
// the proxy presents (LINKERD2_PROXY_IDENTITY_SERVER_ID) and what the
// ExternalWorkload's meshTLS.identity tells peers to verify. The demo's
// form, spiffe://<trust domain>/<name>, is kept so a hand-written demo
// ExternalWorkload still matches.
func (c *Config) SPIFFEID() string {
	return "spiffe://" + c.TrustDomain + "/" + c.WorkloadName
}

// ServerName is the TLS server name (SNI) the proxy answers to
// (LINKERD2_PROXY_IDENTITY_SERVER_NAME) and the ExternalWorkload's
// meshTLS.serverName: the demo's <name>.<cluster domain>.
func (c *Config) ServerName() string {
	return c.WorkloadName + "." + c.ClusterDomain
}
