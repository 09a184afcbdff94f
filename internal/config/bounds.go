package config

import (
	"strconv"
	"strings"
	"time"
)

// bounds is the range a duration setting accepts. Every duration has one:
// a value outside it fails later (a Lease the API server rejects, a
// teardown deadline that overflows) or means nothing useful.
type bounds struct {
	min, max time.Duration
	// zeroOff: 0 is accepted too and turns the feature off.
	zeroOff bool
	// whole: only whole seconds (the value ends up in an integer field).
	whole bool
}

func (b bounds) String() string {
	s := fmtDuration(b.min) + "–" + fmtDuration(b.max)
	if b.zeroOff {
		s = "0 (off) or " + s
	}
	if b.whole {
		s += ", whole seconds"
	}
	return s
}

// durationBounds is the bounds table, by setting name. Settings_test checks
// that every duration setting has a row and that its default is inside it.
var durationBounds = map[string]bounds{
	// Longer than an hour means SPIRE is broken, not slow.
	"spire-svid-timeout": {min: time.Second, max: time.Hour},
	// The teardown deadline is the sum of the children's graces: 10 min
	// each keeps it far from overflowing and inside systemd's patience.
	"shutdown-grace": {min: 100 * time.Millisecond, max: 10 * time.Minute},
	"ready-timeout":  {min: time.Second, max: 24 * time.Hour},
	// kubelet's readiness probes are at least 1 s apart; faster is
	// allowed for tests, the proxy's /ready is cheap.
	"register-probe-period": {min: 100 * time.Millisecond, max: 10 * time.Minute},
	// The Lease's leaseDurationSeconds is an integer, renewed every quarter
	// of it: 4 s renews every second; under a second the API rejects it.
	"lease-duration": {min: 4 * time.Second, max: time.Hour, whole: true},

	// SPIRE's own rules (internal/spire/ttl.go): no SVID shorter than 30s
	// (the agent checks for rotation every 5s and renews at half-life) or
	// longer than 7 days; the CA at least 6 SVID lifetimes, checked there.
	"spire-svid-ttl": {min: 30 * time.Second, max: 7 * 24 * time.Hour},
	"spire-ca-ttl":   {min: 3 * time.Minute, max: 10 * 365 * 24 * time.Hour},

	// Workload probes: Kubernetes' fields are whole seconds from 1 s;
	// faster is allowed for tests.
	"probe-period":        {min: 100 * time.Millisecond, max: time.Hour},
	"probe-timeout":       {min: 100 * time.Millisecond, max: time.Minute},
	"probe-initial-delay": {min: time.Millisecond, max: time.Hour, zeroOff: true},

	// The controller's leader election (client-go's defaults 15s/10s/2s).
	// The Lease holds whole seconds; a lease past 5 minutes is a failover
	// that long after a crash, longer than any host's grace.
	"controller-lease-duration": {min: 2 * time.Second, max: 5 * time.Minute, whole: true},
	"controller-renew-deadline": {min: time.Second, max: 5 * time.Minute},
	"controller-retry-period":   {min: 100 * time.Millisecond, max: time.Minute},

	// The forwarder's (internal/dns/options.go says what each does).
	"dns-timeout":          {min: 10 * time.Millisecond, max: time.Minute},
	"dns-attempt-timeout":  {min: 10 * time.Millisecond, max: time.Minute},
	"dns-probe-interval":   {min: 10 * time.Millisecond, max: time.Hour},
	"dns-min-ttl":          {min: time.Second, max: time.Hour, zeroOff: true},
	"dns-max-ttl":          {min: time.Second, max: 7 * 24 * time.Hour},
	"dns-negative-max-ttl": {min: time.Second, max: 7 * 24 * time.Hour, zeroOff: true},
	"dns-tcp-idle-timeout": {min: 100 * time.Millisecond, max: time.Hour},
	"dns-log-interval":     {min: time.Second, max: 24 * time.Hour, zeroOff: true},
}

// check returns a problem when d is outside b.
func (b bounds) check(d time.Duration, text string) error {
	fix := "use a duration from " + b.String() + ", such as 30s or 2m"
	switch {
	case d == 0 && b.zeroOff:
		return nil
	case d < b.min || d > b.max:
		return badf(fix, "%s is outside %s", quote(text), b.String())
	case b.whole && d%time.Second != 0:
		return badf(fix, "%s is not a whole number of seconds", quote(text))
	}
	return nil
}

// fmtDuration writes 1h0m0s as 1h and 1m30s as 1m30s.
func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	for _, z := range []string{"0s", "0m"} {
		if strings.HasSuffix(s, "m"+z) || strings.HasSuffix(s, "h"+z) {
			s = strings.TrimSuffix(s, z)
		}
	}
	return s
}
