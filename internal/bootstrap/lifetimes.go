package bootstrap

import (
	"fmt"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/spire"
)

// validateLifetimes holds --spire-svid-ttl and --spire-ca-ttl to SPIRE's
// own rules (spire.CheckLifetimes) before anything starts. Outside
// embedded mode the server is someone else's: a lifetime set there has no
// effect, which is said as a warning.
func validateLifetimes(c *config.Config) config.Problems {
	var probs config.Problems
	if c.SPIRE.Mode != config.SPIREEmbedded {
		for _, name := range []string{"spire-svid-ttl", "spire-ca-ttl"} {
			if c.Origin(name) != "default" {
				probs = append(probs, config.Problem{Input: input(c, name), Warning: true,
					Message: fmt.Sprintf("has no effect in %s mode: the SPIRE server's own settings decide lifetimes", c.SPIRE.Mode),
					Fix:     "set the lifetimes on the SPIRE server (default_x509_svid_ttl, ca_ttl) or on the workload's entry"})
			}
		}
		return probs
	}
	if err := spire.CheckLifetimes(c.SPIRE.SVIDTTL, c.SPIRE.CATTL); err != nil {
		setting := "spire-svid-ttl"
		if c.SPIRE.SVIDTTL >= spire.MinSVIDTTL && c.SPIRE.SVIDTTL <= spire.MaxSVIDTTL {
			setting = "spire-ca-ttl" // the SVID lifetime alone is fine
		}
		probs = append(probs, config.Problem{Input: input(c, setting), Message: err.Error(),
			Fix: fmt.Sprintf("give --spire-svid-ttl between 30s and 168h and --spire-ca-ttl at least %d times it", spire.CATTLPerSVIDTTL)})
	}
	return probs
}
