package bootstrap

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/netfilter"
	"github.com/meshexp/meshexp/internal/spire"
)

// InterceptOptions maps the shared configuration onto the rules' options.
func InterceptOptions(c *config.Config) netfilter.Options {
	ranges := func(rs []config.PortRange) []netfilter.PortRange {
		out := make([]netfilter.PortRange, len(rs))
		for i, r := range rs {
			out[i] = netfilter.PortRange{From: r.From, To: r.To}
		}
		return out
	}
	return netfilter.Options{
		InboundPort:         c.Proxy.InboundPort,
		OutboundPort:        c.Proxy.OutboundPort,
		AdminPort:           c.Proxy.AdminPort,
		ControlPort:         c.Proxy.ControlPort,
		ProxyUID:            c.Proxy.User.UID,
		SkipInboundPorts:    ranges(c.Intercept.SkipInboundPorts),
		SkipOutboundPorts:   ranges(c.Intercept.SkipOutboundPorts),
		SkipOutboundSubnets: c.Intercept.SkipOutboundSubnets,
		InboundPorts:        ranges(c.Intercept.InboundPorts),
		ExemptDestinations:  append([]netip.AddrPort(nil), c.Intercept.ExemptDestinations...),
		ControlMark:         c.Intercept.ControlMark,
		IPv6:                netfilter.IPv6Mode(c.Intercept.IPv6),
		Backend:             netfilter.Backend(c.Intercept.Backend),
	}
}

// SPIREOptions maps the shared configuration onto the identity's options.
func SPIREOptions(c *config.Config) spire.Options {
	upstreamKey := c.SPIRE.UpstreamKey
	if c.SPIRE.Mode == config.SPIREEmbedded && c.SPIRE.UpstreamCert == "" {
		upstreamKey = c.TrustAnchorKeyPath() // demo compatibility: the root signs
	}
	return spire.Options{
		Mode:               spire.Mode(c.SPIRE.Mode),
		TrustDomain:        c.TrustDomain,
		WorkloadName:       c.WorkloadName,
		TrustAnchorPath:    c.TrustAnchorPath(),
		ProxyUID:           c.Proxy.User.UID,
		ProxyGID:           c.Proxy.User.GID,
		BinDir:             c.SPIRE.BinDir,
		DataDir:            c.SPIRE.DataDir,
		SocketPath:         c.SPIRE.SocketPath,
		Timeout:            c.SPIRE.SVIDTimeout,
		StopGrace:          c.ShutdownGrace,
		UpstreamCertPath:   c.SPIRE.UpstreamCert,
		UpstreamKeyPath:    upstreamKey,
		UpstreamBundlePath: c.SPIRE.UpstreamBundle,
		ServerAddress:      c.SPIRE.ServerAddress,
		ServerPort:         c.SPIRE.ServerPort,
		TrustBundlePath:    c.SPIRE.TrustBundle,
		JoinToken:          c.SPIRE.JoinToken,
		JoinTokenFile:      c.SPIRE.JoinTokenFile,
		X509PopCertPath:    c.SPIRE.X509PopCert,
		X509PopKeyPath:     c.SPIRE.X509PopKey,
		SVIDTTL:            c.SPIRE.SVIDTTL,
		CATTL:              c.SPIRE.CATTL,
	}
}

// DualStack says whether the proxy must listen on IPv6 too: whenever
// interception redirects IPv6 ("on", or "auto" on a host with IPv6).
func DualStack(c *config.Config) bool {
	if !c.Intercept.Enabled {
		return false
	}
	switch c.Intercept.IPv6 {
	case "on":
		return true
	case "auto":
		return netfilter.HostIPv6() == nil
	}
	return false
}

// ValidateSPIRE checks, before anything changes, that the SPIRE binaries
// the mode needs are there, looked up exactly as identity will. In a dry
// run a missing binary is a warning, so the plan shows on a laptop.
func ValidateSPIRE(c *config.Config, dryRun bool) config.Problems {
	var names []string
	switch c.SPIRE.Mode {
	case config.SPIREEmbedded:
		names = []string{"spire-server", "spire-agent"}
	case config.SPIREExternal:
		names = []string{"spire-agent"}
	}
	o := SPIREOptions(c)
	probs := validateLifetimes(c)
	for _, n := range names {
		if _, err := o.Binary(n); err != nil {
			p := config.Problem{Setting: "spire-bin-dir", Input: input(c, "spire-bin-dir"), Message: err.Error(), Warning: dryRun}
			var oe *spire.OptionError
			if errors.As(err, &oe) {
				// In the setting's words, not the spire.Options field's.
				p.Message, p.Fix = oe.Err.Error(), oe.Fix
				if oe.Value != "" {
					p.Message = oe.Value + ": " + p.Message
				}
			}
			probs = append(probs, p)
		}
	}
	// What is on the host at SPIRE's paths: nothing meshexp did not make
	// may be replaced (a file at the socket path, someone else's state).
	hostSettings := map[string]string{"DataDir": "spire-data-dir", "SocketPath": "spire-socket"}
	for _, err := range o.CheckHostPaths() {
		var oe *spire.OptionError
		if errors.As(err, &oe) && hostSettings[oe.Option] != "" {
			probs = append(probs, config.Problem{Setting: hostSettings[oe.Option], Input: input(c, hostSettings[oe.Option]), Message: fmt.Sprintf("%q: %v", oe.Value, oe.Err), Fix: oe.Fix})
		}
	}
	return probs
}
