package bootstrap

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

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
	o.Control = netfilter.ControlFunc(c.Intercept.ControlMark)
	return o
}

// dnsPhase starts the forwarder and, when asked, points a resolv.conf at
// it; stop restores the file and closes the forwarder.
func dnsPhase(c *config.Config, logger *slog.Logger) func(context.Context) (func(context.Context) error, error) {
	return func(context.Context) (func(context.Context) error, error) {
		srv, err := dns.New(DNSOptions(c), logger.With("component", "dns"))
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
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
