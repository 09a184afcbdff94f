package cli

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/dns"
)

func init() { subcommands = append(subcommands, newDNSCmd) }

func newDNSCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Run the cluster DNS forwarder: cluster zones to kube-dns, the rest upstream",
		Long: `dns runs a caching DNS forwarder, the replacement for the dnsmasq of the
mesh-expansion demo. Names under svc.<cluster-domain>. (and the reverse zones
of --dns-cluster-cidrs, and any --dns-cluster-zones) go to the cluster DNS
servers; everything else goes to --dns-upstream, or to the nameservers of
--dns-resolv-conf. Answers are cached within their TTL (negative ones for
the SOA minimum), identical queries in flight are sent once, answers too
large for UDP are fetched over TCP, and failing upstreams are skipped until
a probe finds them serving again. A query no upstream answers within
--dns-timeout gets SERVFAIL.

The settings are bootstrap's, with the same flags, variables and config
file keys; the old names of this command (--upstream, --pod-cidr,
MESHEXP_DNS_CLUSTER_DOMAIN, …) still work and warn. A flag overrides its
variable. List flags take several values, repeated or comma-separated.

` + exitCodeHelp,
		Args: noArgs,
	}
	load := settingsFlags(g, cmd, config.ScopeDNSCommand, func(c *config.Config, _ bool) config.Problems {
		return dnsServerProblems(c, dnsServerOptions(c))
	})
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := load(false)
		if err != nil {
			return err
		}
		opts := dnsServerOptions(c)
		srv, err := dns.New(opts, g.logger)
		if err != nil {
			return dnsError(c, err)
		}
		if p := c.DNS.PointResolver; p != "" {
			ap := netip.MustParseAddrPort(srv.Addr().String())
			restore, err := dns.PointResolver(p, dns.ResolvConf{
				Nameserver: ap.Addr(), Namespace: c.WorkloadNamespace, ClusterDomain: opts.ClusterDomain,
			})
			if err != nil {
				srv.Close()
				return err
			}
			g.logger.Info("resolver pointed at the forwarder", "file", p)
			defer func() {
				if err := restore(); err != nil {
					g.logger.Error("restore resolver", "err", err)
				} else {
					g.logger.Info("resolver restored", "file", p)
				}
			}()
		}
		return srv.Run(cmd.Context())
	}
	return cmd
}

// dnsServerOptions maps the settings onto the forwarder's options, tuning
// included.
func dnsServerOptions(c *config.Config) dns.Options {
	d := c.DNS
	o := dns.DefaultOptions()
	o.Listen = d.Listen
	o.ClusterDomain = c.ClusterDomain
	o.ClusterZones = d.ClusterZones
	o.ClusterCIDRs = d.ClusterCIDRs
	o.ClusterDNS = d.ClusterDNS
	o.Upstreams = d.Upstreams
	o.ResolvConf = d.ResolvConf
	o.Timeout, o.AttemptTimeout = d.Timeout, d.AttemptTimeout
	o.MaxFails, o.ProbeInterval = int(d.MaxFails), d.ProbeInterval
	o.UpstreamPortReuse = int(d.UpstreamPortReuse)
	o.CacheSize, o.CacheMaxBytes = int(d.CacheSize), d.CacheMaxBytes
	o.MinTTL, o.MaxTTL, o.NegativeMaxTTL = d.MinTTL, d.MaxTTL, d.NegativeMaxTTL
	o.UDPSize, o.UDPReaders, o.MaxConcurrent = uint16(d.UDPSize), int(d.UDPReaders), int(d.MaxConcurrent)
	o.TCPIdleTimeout, o.MetricsAddr, o.LogInterval = d.TCPIdleTimeout, d.MetricsAddr, d.LogInterval
	return o
}

// dnsSetting names the setting behind a field of the forwarder's options
// (dns.FieldError.Field).
func dnsSetting(field string) string {
	switch field {
	case "cluster-dns", "cluster-domain":
		return field
	case "cluster-zone":
		return "dns-cluster-zones"
	case "cluster-cidr":
		return "dns-cluster-cidrs"
	}
	return "dns-" + field
}

// dnsServerProblems checks what only the forwarder can (files it reads,
// settings that bound each other), naming the settings. A setting already
// refused while parsing is not blamed twice.
func dnsServerProblems(c *config.Config, o dns.Options) config.Problems {
	var probs config.Problems
	if p := c.DNS.PointResolver; p != "" {
		if ap, err := netip.ParseAddrPort(o.Listen); err == nil && (ap.Port() != 53 || ap.Addr().IsUnspecified()) {
			probs = append(probs, config.Problem{Setting: "dns-point-resolver", Input: c.Input("dns-point-resolver"),
				Message: fmt.Sprintf("resolv.conf can only name a specific address on port 53, but --dns-listen is %s", o.Listen),
				Fix:     "listen on a specific address and port 53, e.g. --dns-listen 127.0.0.1:53"})
		}
	}
	err := o.Validate()
	if err == nil {
		return probs
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var fe *dns.FieldError
		if !errors.As(e, &fe) {
			probs = append(probs, config.Problem{Input: "meshexp dns", Message: e.Error()})
			continue
		}
		s := dnsSetting(fe.Field)
		probs = append(probs, config.Problem{Setting: s, Input: c.Input(s), Message: fe.Err.Error()})
	}
	return probs
}

// dnsError maps New's errors: invalid options are usage errors (exit 2);
// a socket that cannot be opened is a runtime failure naming its setting.
func dnsError(c *config.Config, err error) error {
	var fe *dns.FieldError
	if errors.As(err, &fe) && (fe.Field == "listen" || fe.Field == "metrics-addr") {
		s := dnsSetting(fe.Field)
		return fmt.Errorf("%s: %w", c.Input(s), fe.Err)
	}
	if probs := dnsServerProblems(c, dnsServerOptions(c)); len(probs) > 0 {
		return &UsageError{Err: probs.Err()}
	}
	return err
}
