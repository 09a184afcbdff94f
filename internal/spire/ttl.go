package spire

import (
	"fmt"
	"strings"
	"time"
)

// Lifetimes, and SPIRE's own rules about them.
const (
	// DefaultSVIDTTL is Linkerd's default certificate lifetime (linkerd2
	// charts: identity.issuer.issuanceLifetime 24h0m0s).
	DefaultSVIDTTL = 24 * time.Hour
	// DefaultCATTL is the demo's ca_ttl; it guarantees SVIDs of up to
	// DefaultCATTL/CATTLPerSVIDTTL = 28h.
	DefaultCATTL = 168 * time.Hour
	// CATTLPerSVIDTTL: the server prepares its next CA at half of ca_ttl and
	// activates it when a sixth of the lifetime remains, so an SVID longer
	// than ca_ttl/6 may be cut short at a rotation; the server then warns
	// "default_x509_svid_ttl is too high for the configured ca_ttl value"
	// (spire pkg/server/ca/manager: activationThresholdDivisor = 6,
	// MaxSVIDTTLForCATTL, MinCATTLForSVIDTTL).
	CATTLPerSVIDTTL = 6
	// MaxSVIDTTL is the longest SVID a rotation never cuts short whatever
	// ca_ttl is (spire pkg/server/ca/manager: activationThresholdCap, 7 days).
	MaxSVIDTTL = 7 * 24 * time.Hour
	// MinSVIDTTL is the shortest lifetime meshexp accepts. SPIRE itself sets
	// no floor, but its agent checks its SVIDs for rotation every 5s (spire
	// pkg/agent/svid and pkg/agent/manager: DefaultRotatorInterval) and
	// renews them at half-life; at 30s that leaves three checks to renew
	// each SVID before it expires.
	MinSVIDTTL = 30 * time.Second
)

// svidTTL is the workload entry's and the server's default X.509 SVID TTL.
func (o Options) svidTTL() time.Duration {
	if o.SVIDTTL == 0 {
		return DefaultSVIDTTL
	}
	return o.SVIDTTL
}

// caTTL is the embedded server's CA lifetime.
func (o Options) caTTL() time.Duration {
	if o.CATTL == 0 {
		return DefaultCATTL
	}
	return o.CATTL
}

// CheckLifetimes applies SPIRE's rules to an SVID TTL and the CA TTL of the
// server that issues it. It returns nil when SPIRE would issue SVIDs of
// the full svid lifetime.
func CheckLifetimes(svid, ca time.Duration) error {
	switch {
	case svid < MinSVIDTTL:
		return fmt.Errorf("an SVID lifetime of %s is shorter than %s: the SPIRE agent checks for rotation every 5s and renews at half-life", formatTTL(svid), formatTTL(MinSVIDTTL))
	case svid > MaxSVIDTTL:
		return fmt.Errorf("an SVID lifetime of %s is longer than %s, the longest SPIRE guarantees across CA rotations", formatTTL(svid), formatTTL(MaxSVIDTTL))
	case ca < svid*CATTLPerSVIDTTL:
		return fmt.Errorf("a CA lifetime of %s is less than %d times the SVID lifetime %s: SPIRE would cut SVIDs short at CA rotations (it needs at least %s)",
			formatTTL(ca), CATTLPerSVIDTTL, formatTTL(svid), formatTTL(svid*CATTLPerSVIDTTL))
	}
	return nil
}

// validateTTLs checks the lifetimes the mode renders (embedded only: in
// the other modes the server is someone else's).
func (o Options) validateTTLs() []error {
	if o.Mode != ModeEmbedded {
		return nil
	}
	if o.SVIDTTL < 0 || o.CATTL < 0 || o.AgentTTL < 0 {
		return []error{&OptionError{Option: "SVIDTTL", Value: o.SVIDTTL.String(), Err: fmt.Errorf("negative lifetime"), Fix: "use a positive duration such as 24h"}}
	}
	if err := CheckLifetimes(o.svidTTL(), o.caTTL()); err != nil {
		return []error{&OptionError{Option: "SVIDTTL", Value: o.svidTTL().String(), Err: err, Fix: fmt.Sprintf("keep the CA lifetime at least %d times the SVID lifetime", CATTLPerSVIDTTL)}}
	}
	return nil
}

// formatTTL writes d the way SPIRE's configs and people do: 24h, 90s, 1h30m.
func formatTTL(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
