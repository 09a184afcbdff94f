package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/dns"
)

func init() { subcommands = append(subcommands, newDNSCmd) }

// dnsSetting is one `meshexp dns` flag with its environment variable. The
// value is kept as text until every flag is read, so that all problems can
// be reported together.
type dnsSetting struct {
	name, def, usage string
	kind             string // shown in --help: duration, int, addr, path; "" is string
	list             bool
	value            *string
	apply            func(o *dns.Options, v string) error
}

func (s *dnsSetting) env() string {
	return "MESHEXP_DNS_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

type dnsFlags struct {
	settings      []*dnsSetting
	pointResolver string
	namespace     string
}

func dnsSettings(f *dnsFlags) []*dnsSetting {
	d := dns.DefaultOptions()
	return []*dnsSetting{
		{name: "listen", kind: "addr", def: d.Listen, usage: "address served over UDP and TCP (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
			apply: func(o *dns.Options, v string) error { o.Listen = v; return nil }},
		{name: "cluster-dns", list: true, usage: "cluster DNS server IP[:PORT], e.g. a node's IP with kube-dns's NodePort; repeat or comma-separate for several (required)",
			apply: func(o *dns.Options, v string) error { return appendAddrs(&o.ClusterDNS, v) }},
		{name: "cluster-domain", def: d.ClusterDomain, usage: "the cluster's DNS domain; names under svc.<domain>. go to --cluster-dns",
			apply: func(o *dns.Options, v string) error { o.ClusterDomain = v; return nil }},
		{name: "cluster-zone", list: true, usage: "more zones for --cluster-dns (e.g. cluster.local. for pod records too)",
			apply: func(o *dns.Options, v string) error {
				o.ClusterZones = append(o.ClusterZones, splitList(v)...)
				return nil
			}},
		{name: "pod-cidr", list: true, usage: "pod network(s) whose reverse (PTR) zones go to --cluster-dns",
			apply: func(o *dns.Options, v string) error { return appendPrefixes(&o.ClusterCIDRs, v) }},
		{name: "service-cidr", list: true, usage: "service network(s) whose reverse (PTR) zones go to --cluster-dns",
			apply: func(o *dns.Options, v string) error { return appendPrefixes(&o.ClusterCIDRs, v) }},
		{name: "upstream", list: true, usage: "server IP[:PORT] for every other name; default: the nameservers of --resolv-conf",
			apply: func(o *dns.Options, v string) error { return appendAddrs(&o.Upstreams, v) }},
		{name: "resolv-conf", kind: "path", def: d.ResolvConf, usage: "file whose nameservers are the upstreams when --upstream is not given (on systemd-resolved hosts: /run/systemd/resolve/resolv.conf)",
			apply: func(o *dns.Options, v string) error { o.ResolvConf = v; return nil }},
		{name: "timeout", kind: "duration", def: d.Timeout.String(), usage: "answer SERVFAIL when no upstream answered a query within this",
			apply: func(o *dns.Options, v string) error { return setDuration(&o.Timeout, v) }},
		{name: "attempt-timeout", kind: "duration", def: d.AttemptTimeout.String(), usage: "give up on one upstream after this and try the next",
			apply: func(o *dns.Options, v string) error { return setDuration(&o.AttemptTimeout, v) }},
		{name: "max-fails", kind: "int", def: strconv.Itoa(d.MaxFails), usage: "failures in a row that mark an upstream down until a probe succeeds",
			apply: func(o *dns.Options, v string) error { return atoi(&o.MaxFails, v) }},
		{name: "probe-interval", kind: "duration", def: d.ProbeInterval.String(), usage: "how often an upstream marked down is probed",
			apply: func(o *dns.Options, v string) error { return setDuration(&o.ProbeInterval, v) }},
		{name: "upstream-port-reuse", kind: "int", def: strconv.Itoa(d.UpstreamPortReuse), usage: "queries one upstream socket carries before a new one on a random port replaces it (1: a new port for every query, as dnsmasq does)",
			apply: func(o *dns.Options, v string) error { return atoi(&o.UpstreamPortReuse, v) }},
		{name: "cache-size", kind: "int", def: strconv.Itoa(d.CacheSize), usage: "answers kept in the cache (0 turns the cache off)",
			apply: func(o *dns.Options, v string) error { return atoi(&o.CacheSize, v) }},
		{name: "cache-max-bytes", kind: "int", def: strconv.FormatInt(d.CacheMaxBytes, 10), usage: "approximate memory bound of the cache in bytes",
			apply: func(o *dns.Options, v string) error {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return fmt.Errorf("%q is not a whole number of bytes", v)
				}
				o.CacheMaxBytes = n
				return nil
			}},
		{name: "min-ttl", kind: "duration", def: d.MinTTL.String(), usage: "keep answers in the cache at least this long",
			apply: func(o *dns.Options, v string) error { return setDuration(&o.MinTTL, v) }},
		{name: "max-ttl", kind: "duration", def: d.MaxTTL.String(), usage: "keep answers in the cache at most this long",
			apply: func(o *dns.Options, v string) error { return setDuration(&o.MaxTTL, v) }},
		{name: "negative-max-ttl", kind: "duration", def: d.NegativeMaxTTL.String(), usage: "keep NXDOMAIN and NODATA answers at most this long (RFC 2308: the SOA minimum applies first)",
			apply: func(o *dns.Options, v string) error { return setDuration(&o.NegativeMaxTTL, v) }},
		{name: "udp-size", kind: "int", def: strconv.Itoa(int(d.UDPSize)), usage: "EDNS buffer size advertised to clients and upstreams",
			apply: func(o *dns.Options, v string) error {
				n, err := strconv.ParseUint(v, 10, 16)
				if err != nil {
					return fmt.Errorf("%q is not a size in octets", v)
				}
				o.UDPSize = uint16(n)
				return nil
			}},
		{name: "udp-readers", kind: "int", def: "0", usage: "goroutines reading the UDP socket, each on its own descriptor of it (0: one per CPU)",
			apply: func(o *dns.Options, v string) error { return atoi(&o.UDPReaders, v) }},
		{name: "max-concurrent", kind: "int", def: strconv.Itoa(d.MaxConcurrent), usage: "queries waiting on upstreams at once; beyond it clients get SERVFAIL",
			apply: func(o *dns.Options, v string) error { return atoi(&o.MaxConcurrent, v) }},
		{name: "tcp-idle-timeout", kind: "duration", def: d.TCPIdleTimeout.String(), usage: "close client TCP connections idle this long",
			apply: func(o *dns.Options, v string) error { return setDuration(&o.TCPIdleTimeout, v) }},
		{name: "metrics-addr", kind: "addr", usage: "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9153); off when empty",
			apply: func(o *dns.Options, v string) error { o.MetricsAddr = v; return nil }},
		{name: "log-interval", kind: "duration", def: d.LogInterval.String(), usage: "log a line of counters this often (0 turns it off)",
			apply: func(o *dns.Options, v string) error { return setDuration(&o.LogInterval, v) }},
		{name: "point-resolver", kind: "path", usage: "rewrite this resolv.conf (e.g. /etc/resolv.conf in a container) to use the forwarder with a pod's search list while running; the original is restored on exit",
			apply: func(_ *dns.Options, v string) error { f.pointResolver = v; return nil }},
		{name: "namespace", usage: "namespace for the search list written by --point-resolver (<ns>.svc.<domain> first)",
			apply: func(_ *dns.Options, v string) error { f.namespace = v; return nil }},
	}
}

func newDNSCmd(g *globals) *cobra.Command {
	f := &dnsFlags{}
	f.settings = dnsSettings(f)
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Run the cluster DNS forwarder: cluster zones to kube-dns, the rest upstream",
		Long: `dns runs a caching DNS forwarder, the replacement for the dnsmasq of the
mesh-expansion demo. Names under svc.<cluster-domain>. (and the reverse zones
of --pod-cidr and --service-cidr, and any --cluster-zone) go to the cluster
DNS servers; everything else goes to --upstream, or to the nameservers of
--resolv-conf. Answers are cached within their TTL (negative ones for the SOA
minimum), identical queries in flight are sent once, answers too large for
UDP are fetched over TCP, and failing upstreams are skipped until a probe
finds them serving again. A query no upstream answers within --timeout gets
SERVFAIL.

Every flag can also be set with the environment variable shown beside it;
a flag overrides its variable. List flags take several values, repeated or
comma-separated.

` + exitCodeHelp,
		Args: cobra.NoArgs,
	}
	for _, s := range f.settings {
		v := &config.TextValue{S: s.def, List: s.list, Kind: s.kind}
		s.value = &v.S
		cmd.Flags().Var(v, s.name, s.usage+" [env "+s.env()+"]")
		cmd.Flags().Lookup(s.name).DefValue = s.def
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts, err := f.build(cmd, g.lookupEnv)
		if err != nil {
			return err
		}
		srv, err := dns.New(opts, g.logger)
		if err != nil {
			return dnsError(err, f.settings)
		}
		if f.pointResolver != "" {
			ap := netip.MustParseAddrPort(srv.Addr().String())
			restore, err := dns.PointResolver(f.pointResolver, dns.ResolvConf{
				Nameserver: ap.Addr(), Namespace: f.namespace, ClusterDomain: opts.ClusterDomain,
			})
			if err != nil {
				srv.Close()
				return err
			}
			g.logger.Info("resolver pointed at the forwarder", "file", f.pointResolver)
			defer func() {
				if err := restore(); err != nil {
					g.logger.Error("restore resolver", "err", err)
				} else {
					g.logger.Info("resolver restored", "file", f.pointResolver)
				}
			}()
		}
		return srv.Run(cmd.Context())
	}
	return cmd
}

// build reads every setting (flag, else environment, else default) and
// reports all that are wrong at once, each named by flag and variable.
func (f *dnsFlags) build(cmd *cobra.Command, lookupEnv func(string) (string, bool)) (dns.Options, error) {
	o := dns.DefaultOptions()
	o.Upstreams, o.ClusterDNS = nil, nil
	var probs []string
	failed := map[string]bool{}
	for _, s := range f.settings {
		v := *s.value
		if !cmd.Flags().Changed(s.name) {
			if e, ok := lookupEnv(s.env()); ok {
				v = e
			}
		}
		if v == "" && s.def == "" {
			continue
		}
		if err := s.apply(&o, v); err != nil {
			probs = append(probs, fmt.Sprintf("--%s (%s): %v", s.name, s.env(), err))
			failed[s.name] = true
		}
	}
	if err := o.Validate(); err != nil {
		probs = append(probs, fieldProblems(err, f.settings, failed)...)
	}
	if f.pointResolver != "" {
		if ap, err := netip.ParseAddrPort(o.Listen); err == nil && (ap.Port() != 53 || ap.Addr().IsUnspecified()) {
			probs = append(probs, fmt.Sprintf("--point-resolver (MESHEXP_DNS_POINT_RESOLVER): resolv.conf can only name a specific address on port 53, but --listen is %s", o.Listen))
		}
	}
	if len(probs) > 0 {
		return o, usageErrorf("invalid dns settings:\n  %s", strings.Join(probs, "\n  "))
	}
	return o, nil
}

// fieldProblems turns the dns package's field errors into lines naming the
// flag and its environment variable.
func fieldProblems(err error, settings []*dnsSetting, skip map[string]bool) []string {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []string
	for _, e := range errs {
		var fe *dns.FieldError
		if !errors.As(e, &fe) {
			out = append(out, e.Error())
			continue
		}
		if skip[fe.Field] {
			continue // its text did not parse; that is reported already
		}
		label := "--" + fe.Field
		for _, s := range settings {
			if s.name == fe.Field {
				label += " (" + s.env() + ")"
			}
		}
		out = append(out, fmt.Sprintf("%s: %v", label, fe.Err))
	}
	return out
}

// dnsError maps New's errors: invalid options are usage errors (exit 2);
// a socket that cannot be opened is a runtime failure naming its flag.
func dnsError(err error, settings []*dnsSetting) error {
	var fe *dns.FieldError
	if errors.As(err, &fe) && (fe.Field == "listen" || fe.Field == "metrics-addr") {
		return fmt.Errorf("--%s: %w", fe.Field, fe.Err)
	}
	return &UsageError{Err: errors.New(strings.Join(fieldProblems(err, settings, nil), "; "))}
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func appendAddrs(dst *[]netip.AddrPort, v string) error {
	var bad []string
	for _, p := range splitList(v) {
		ap, err := dns.ParseAddrPort(p)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		*dst = append(*dst, ap)
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

func appendPrefixes(dst *[]netip.Prefix, v string) error {
	var bad []string
	for _, p := range splitList(v) {
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q is not a CIDR such as 10.96.0.0/12", p))
			continue
		}
		*dst = append(*dst, pr.Masked())
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

func setDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 2s, 500ms)", v)
	}
	*dst = d
	return nil
}

func atoi(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", v)
	}
	*dst = n
	return nil
}
