package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/meshexp/meshexp/internal/admin"
	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/dns"
	"github.com/meshexp/meshexp/internal/netfilter"
)

// DNSOptions maps the configuration onto the forwarder's options; the
// upstream dials carry the control mark so interception leaves them alone.
func DNSOptions(c *config.Config) dns.Options {
	o := dns.DefaultOptions()
	o.Listen = c.DNS.Listen
	o.ClusterDomain = c.ClusterDomain
	o.ClusterDNS = c.DNS.ClusterDNS
	o.Upstreams = c.DNS.Upstreams
	o.ClusterCIDRs = c.DNS.ClusterCIDRs
	o.Control = netfilter.ControlFunc(c.Intercept.ControlMark)
	return o
}

// dnsSettingOf names bootstrap's setting for a field of dns.Options.
var dnsSettingOf = map[string]string{
	"listen": "dns-listen", "cluster-dns": "cluster-dns", "upstream": "dns-upstream",
	"resolv-conf": "dns-upstream", "cluster-cidr": "dns-cluster-cidrs", "cluster-domain": "cluster-domain",
}

// ValidateDNS checks the forwarder's options before anything changes and
// names bootstrap's flags in the problems.
func ValidateDNS(c *config.Config) config.Problems {
	o := DNSOptions(c)
	err := o.Validate()
	if err == nil {
		return nil
	}
	var probs config.Problems
	for _, e := range unjoin(err) {
		in := "--dns"
		var fe *dns.FieldError
		if errors.As(e, &fe) {
			if s, ok := dnsSettingOf[fe.Field]; ok {
				in = input(c, s)
			}
			e = fe.Err
		}
		probs = append(probs, config.Problem{Input: in, Message: e.Error()})
	}
	return probs
}

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// dnsPhase starts the forwarder and, when asked, points a resolv.conf at
// it; stop restores the file and closes the forwarder.
func dnsPhase(c *config.Config, st *admin.State, logger *slog.Logger) func(context.Context) (func(context.Context) error, error) {
	return func(context.Context) (func(context.Context) error, error) {
		srv, err := dns.New(DNSOptions(c), logger.With("component", "dns"))
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		if st != nil {
			st.AddExposition(srv.WriteMetrics) // the admin endpoint's /metrics
		}
		logger.Info("dns forwarder running", "listen", srv.Addr().String(), "cluster_dns", fmt.Sprint(c.DNS.ClusterDNS))
		restore := func() error { return nil }
		if c.DNS.PointResolver != "" {
			ap, err := netip.ParseAddrPort(srv.Addr().String())
			if err == nil {
				restore, err = dns.PointResolver(c.DNS.PointResolver, dns.ResolvConf{
					Nameserver: ap.Addr(), Namespace: c.WorkloadNamespace, ClusterDomain: c.ClusterDomain, Ndots: 5,
				})
			}
			if err != nil {
				cancel()
				<-done
				return nil, err
			}
		}
		return func(stopCtx context.Context) error {
			rerr := restore()
			cancel()
			select {
			case err := <-done:
				if rerr != nil {
					return rerr
				}
				return err
			case <-stopCtx.Done():
				return stopCtx.Err()
			}
		}, nil
	}
}
