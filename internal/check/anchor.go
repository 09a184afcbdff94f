package check

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meshexp/meshexp/internal/trust"
)

// Expiry limits for the trust anchor and the SVID.
const (
	ExpiryWarn = 30 * 24 * time.Hour
	ExpiryFail = 24 * time.Hour
)

// TrustAnchor checks the anchor file as bootstrap's validation does, then
// how long it has left: under 30 days warns, under one day fails.
func TrustAnchor(path, trustDomain string, now func() time.Time) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		certs, findings := trust.CheckAnchor(path, "", trust.CheckOptions{TrustDomain: trustDomain, Now: now()})
		var errs []string
		for _, f := range findings {
			if f.Severity == trust.Error {
				errs = append(errs, f.Message)
			}
		}
		if len(errs) > 0 {
			return "", fmt.Errorf("%s: %s", path, strings.Join(errs, "; "))
		}
		if len(certs) == 0 {
			return "", fmt.Errorf("%s: no certificate", path)
		}
		first := certs[0].NotAfter
		for _, c := range certs[1:] {
			if c.NotAfter.Before(first) {
				first = c.NotAfter
			}
		}
		return expiry("the trust anchor", first, now())
	}
}

// expiry judges time left until notAfter.
func expiry(what string, notAfter, now time.Time) (string, error) {
	left := notAfter.Sub(now)
	detail := fmt.Sprintf("expires %s, in %s", notAfter.UTC().Format(time.RFC3339), days(left))
	switch {
	case left < ExpiryFail:
		return detail, fmt.Errorf("%s expires in %s (%s)", what, days(left), notAfter.UTC().Format(time.RFC3339))
	case left < ExpiryWarn:
		return detail, Warnf("%s expires in %s", what, days(left))
	}
	return detail, nil
}

func days(d time.Duration) string {
	if d < 0 {
		return "the past: expired " + (-d).Truncate(time.Minute).String() + " ago"
	}
	if d < 48*time.Hour {
		return d.Truncate(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
