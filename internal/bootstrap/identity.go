package bootstrap

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/identity"
)

// watchIdentity follows the proxy's SVID (through its admin /metrics) and
// the trust anchors until ctx ends: warnings from half-life on, readiness
// withdrawn (reason IdentityExpired or TrustAnchorExpired) once identity
// can no longer be proven. Registration consumes its Readiness.
func watchIdentity(ctx context.Context, c *config.Config, logger *slog.Logger) *identity.Watcher {
	anchors, err := identity.ReadAnchors(c.TrustAnchorPath())
	if err != nil {
		logger.Warn("trust anchor expiry not watched", "err", err)
	}
	var lifetime = c.SPIRE.SVIDTTL
	if c.SPIRE.Mode != config.SPIREEmbedded {
		lifetime = 0 // someone else's server: learned from the SVIDs
	}
	w := identity.New(identity.Options{
		Source:   identity.ProxyMetrics(fmt.Sprintf("http://127.0.0.1:%d/metrics", c.Proxy.AdminPort), nil),
		Lifetime: lifetime,
		Anchors:  anchors,
		Logger:   logger.With("component", "identity"),
	})
	go w.Run(ctx)
	return w
}
