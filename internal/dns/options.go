package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	mdns "github.com/miekg/dns"
)

// Options configure a Server. Start from DefaultOptions: a zero field means
// zero, not "default".
type Options struct {
	// Listen is the address served over both UDP and TCP. It is ignored
	// when PacketConns and Listeners are given.
	Listen string
	// PacketConns and Listeners are sockets opened by the caller, for a
	// privileged port bound before privileges are dropped (see Listen).
	// Give both or neither: TCP is needed for answers that do not fit UDP.
	PacketConns []net.PacketConn
	Listeners   []net.Listener

	// ClusterDomain is the cluster's DNS domain; names under
	// svc.<ClusterDomain>. go to ClusterDNS.
	ClusterDomain string
	// ClusterZones are more zones for ClusterDNS (e.g. "cluster.local." to
	// send the whole cluster domain, pod records included).
	ClusterZones []string
	// ClusterCIDRs are the pod and service networks; their reverse zones
	// (in-addr.arpa, ip6.arpa) go to ClusterDNS.
	ClusterCIDRs []netip.Prefix
	// ClusterDNS are the cluster's DNS servers (kube-dns through a NodePort,
	// or its service IP when routed).
	ClusterDNS []netip.AddrPort
	// Upstreams answer every other name. When empty, the nameservers of
	// ResolvConf are used (read once, at New).
	Upstreams  []netip.AddrPort
	ResolvConf string

	// Timeout bounds a query from arrival to answer: after it the client
	// gets SERVFAIL. AttemptTimeout bounds one try at one upstream.
	Timeout        time.Duration
	AttemptTimeout time.Duration
	// MaxFails failed exchanges in a row mark an upstream down; it is then
	// asked only after the healthy ones, and probed every ProbeInterval
	// until it answers.
	MaxFails      int
	ProbeInterval time.Duration
	// UpstreamPortReuse is how many queries one upstream socket (one source
	// port) carries before it is replaced by a socket on a new random port.
	// 1 gives every query its own port, as dnsmasq does: the most an
	// off-path spoofer has to guess (RFC 5452 §4.5), for about three more
	// system calls per forwarded query. Sockets are also replaced after
	// any failure.
	UpstreamPortReuse int

	// CacheSize bounds the cache in answers (0 disables the cache) and
	// CacheMaxBytes in approximate bytes. TTLs are raised to MinTTL and
	// lowered to MaxTTL (NegativeMaxTTL for NXDOMAIN and NODATA).
	CacheSize      int
	CacheMaxBytes  int64
	MinTTL         time.Duration
	MaxTTL         time.Duration
	NegativeMaxTTL time.Duration

	// UDPSize is the EDNS buffer size we advertise to clients and upstreams.
	UDPSize uint16
	// UDPReaders is the number of goroutines reading each UDP socket,
	// each on its own descriptor of it (0: one per CPU).
	UDPReaders int
	// MaxConcurrent bounds queries waiting on upstreams; beyond it clients
	// get SERVFAIL at once rather than queueing.
	MaxConcurrent int
	// TCPIdleTimeout closes client TCP connections that stay silent.
	TCPIdleTimeout time.Duration

	// MetricsAddr, when set, serves Prometheus metrics at /metrics.
	MetricsAddr string
	// LogInterval, when positive, logs a line of counters that often.
	LogInterval time.Duration

	// Control, when set, runs on every socket dialled to an upstream before
	// it connects (netfilter sets SO_MARK there so that interception rules
	// leave the forwarder's own traffic alone).
	Control func(network, address string, c syscall.RawConn) error
	// Now is the clock of the cache (tests move it to expire entries).
	Now func() time.Time
}

// Defaults. The timeouts sit well inside glibc's 5 s resolver timeout, so a
// client sees SERVFAIL rather than its own timeout; the TTL bounds follow
// CoreDNS's cache plugin (plugin/cache/cache.go: maxTTL 3600, maxNTTL 1800);
// 1232 octets is the EDNS size of DNS Flag Day 2020.
const (
	DefaultListen        = "127.0.0.1:53"
	DefaultClusterDomain = "cluster.local"
	DefaultResolvConf    = "/etc/resolv.conf"
	defaultUDPSize       = 1232
)

// DefaultOptions returns the options `meshexp dns` starts from.
func DefaultOptions() Options {
	return Options{
		Listen:         DefaultListen,
		ClusterDomain:  DefaultClusterDomain,
		ResolvConf:     DefaultResolvConf,
		Timeout:        2 * time.Second,
		AttemptTimeout: time.Second,
		MaxFails:       2,
		ProbeInterval:  500 * time.Millisecond,
		// Upstreams are kube-dns across the node network and the host's
		// own resolvers; a port lives for at most 256 queries, and a reply
		// must also match the random ID and the question.
		UpstreamPortReuse: 256,
		CacheSize:         10000,
		CacheMaxBytes:     32 << 20,
		MinTTL:            0,
		MaxTTL:            time.Hour,
		NegativeMaxTTL:    30 * time.Minute,
		UDPSize:           defaultUDPSize,
		MaxConcurrent:     1000,
		TCPIdleTimeout:    10 * time.Second,
		LogInterval:       5 * time.Minute,
	}
}

// FieldError names the option (in its flag spelling, e.g. "cluster-dns")
// that is wrong and says why.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks every option and returns all problems at once, each a
// *FieldError, joined with errors.Join.
func (o *Options) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	if len(o.PacketConns) == 0 && len(o.Listeners) == 0 {
		if _, err := parseHostPort(o.Listen, true); err != nil {
			bad("listen", "%q: %v (want IP:PORT, e.g. 127.0.0.1:53)", o.Listen, err)
		}
	} else if len(o.PacketConns) == 0 || len(o.Listeners) == 0 {
		bad("listen", "pre-opened sockets need both a UDP PacketConn and a TCP Listener")
	}
	if err := checkDomain(o.ClusterDomain); err != nil {
		bad("cluster-domain", "%q: %v (want e.g. cluster.local)", o.ClusterDomain, err)
	}
	for _, z := range o.ClusterZones {
		if err := checkDomain(z); err != nil {
			bad("cluster-zone", "%q: %v (want a domain such as cluster.local.)", z, err)
		}
	}
	for _, p := range o.ClusterCIDRs {
		if !p.IsValid() {
			bad("cluster-cidr", "invalid prefix %v", p)
		}
	}
	if len(o.ClusterDNS) == 0 {
		bad("cluster-dns", "at least one cluster DNS server is required (e.g. a node's IP and kube-dns's NodePort, 192.0.2.10:30053)")
	}
	for _, a := range o.ClusterDNS {
		if !a.IsValid() || a.Port() == 0 {
			bad("cluster-dns", "%v: want IP:PORT with a non-zero port", a)
		}
	}
	for _, a := range o.Upstreams {
		if !a.IsValid() || a.Port() == 0 {
			bad("upstream", "%v: want IP:PORT with a non-zero port", a)
		}
	}
	if len(o.Upstreams) == 0 {
		if _, err := o.resolvConfUpstreams(); err != nil {
			bad("resolv-conf", "%v (or give --dns-upstream)", err)
		}
	}
	if o.Timeout <= 0 {
		bad("timeout", "%v: must be positive", o.Timeout)
	}
	if o.AttemptTimeout <= 0 || o.AttemptTimeout > o.Timeout {
		bad("attempt-timeout", "%v: must be positive and at most --dns-timeout (%v)", o.AttemptTimeout, o.Timeout)
	}
	if o.MaxFails < 1 {
		bad("max-fails", "%d: must be at least 1", o.MaxFails)
	}
	if o.ProbeInterval <= 0 {
		bad("probe-interval", "%v: must be positive", o.ProbeInterval)
	}
	if o.UpstreamPortReuse < 1 {
		bad("upstream-port-reuse", "%d: must be at least 1 (1: a new source port for every query)", o.UpstreamPortReuse)
	}
	if o.CacheSize < 0 {
		bad("cache-size", "%d: must be 0 (no cache) or more", o.CacheSize)
	}
	if o.CacheSize > 0 && o.CacheMaxBytes < 64<<10 {
		bad("cache-max-bytes", "%d: must be at least 65536 when the cache is on", o.CacheMaxBytes)
	}
	if o.MinTTL < 0 || o.MinTTL > time.Hour {
		bad("min-ttl", "%v: must be between 0s and 1h", o.MinTTL)
	}
	if o.MaxTTL < time.Second || o.MaxTTL < o.MinTTL {
		bad("max-ttl", "%v: must be at least 1s and at least --dns-min-ttl (%v)", o.MaxTTL, o.MinTTL)
	}
	if o.NegativeMaxTTL < 0 {
		bad("negative-max-ttl", "%v: must not be negative", o.NegativeMaxTTL)
	}
	if o.UDPSize < minUDPSize || o.UDPSize > 4096 {
		bad("udp-size", "%d: must be between 512 and 4096 (1232 avoids IP fragmentation)", o.UDPSize)
	}
	if o.UDPReaders < 0 || o.UDPReaders > 64 {
		bad("udp-readers", "%d: must be 0 (one per CPU) to 64", o.UDPReaders)
	}
	if o.MaxConcurrent < 1 {
		bad("max-concurrent", "%d: must be at least 1", o.MaxConcurrent)
	}
	if o.TCPIdleTimeout <= 0 {
		bad("tcp-idle-timeout", "%v: must be positive", o.TCPIdleTimeout)
	}
	if o.MetricsAddr != "" {
		if _, err := parseHostPort(o.MetricsAddr, true); err != nil {
			bad("metrics-addr", "%q: %v (want IP:PORT, e.g. 127.0.0.1:9153)", o.MetricsAddr, err)
		}
	}
	if o.LogInterval < 0 {
		bad("log-interval", "%v: must be 0 (off) or positive", o.LogInterval)
	}
	return errors.Join(errs...)
}

// parseHostPort parses an IP:PORT (no host names: the forwarder must not
// depend on DNS to start).
func parseHostPort(s string, zeroPort bool) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, errors.New("not an IP:PORT")
	}
	if ap.Port() == 0 && !zeroPort {
		return netip.AddrPort{}, errors.New("port 0")
	}
	return ap, nil
}

// ParseAddrPort parses a server address given as IP or IP:PORT, port 53
// when omitted; for the --cluster-dns and --dns-upstream settings.
func ParseAddrPort(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IP or IP:PORT with a non-zero port", s)
	}
	return ap, nil
}

func checkDomain(s string) error {
	if s == "" || s == "." {
		return errors.New("must be a domain below the root")
	}
	if _, ok := mdns.IsDomainName(s); !ok {
		return errors.New("not a valid domain name")
	}
	return nil
}

// resolvConfUpstreams reads the nameservers of o.ResolvConf, leaving out
// the forwarder's own address (a host whose resolv.conf already points at
// the forwarder must not forward to itself).
func (o *Options) resolvConfUpstreams() ([]netip.AddrPort, error) {
	if o.ResolvConf == "" {
		return nil, errors.New("no upstreams: neither --dns-upstream nor a resolv.conf path given")
	}
	path := o.ResolvConf
	// A file we wrote ourselves (the forwarder restarted after a crash,
	// before it could restore the original) names only us: read the
	// original that PointResolver kept beside it.
	if b, err := os.ReadFile(path); err == nil && strings.HasPrefix(string(b), resolvMarker) {
		path += BackupSuffix
	}
	cc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read nameservers from %s: %w", path, err)
	}
	self, _ := netip.ParseAddrPort(o.Listen)
	var ups []netip.AddrPort
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%s: nameserver %q is not an IP address", path, s)
		}
		ap := netip.AddrPortFrom(a, 53)
		if ap == self || (self.Port() == 53 && self.Addr().IsUnspecified() && a.IsLoopback()) {
			continue
		}
		ups = append(ups, ap)
	}
	if len(ups) == 0 {
		return nil, fmt.Errorf("%s lists no nameserver other than this forwarder (%s)", path, o.Listen)
	}
	return ups, nil
}
