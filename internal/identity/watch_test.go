package identity

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProxy is a Source whose SVID and clock the test moves.
type fakeProxy struct {
	mu       sync.Mutex
	now      time.Time
	notAfter time.Time
	down     bool
}

func (f *fakeProxy) source(context.Context) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return time.Time{}, errors.New("connection refused")
	}
	return f.notAfter, nil
}
func (f *fakeProxy) clock() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeProxy) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}
func (f *fakeProxy) issue(ttl time.Duration) {
	f.mu.Lock()
	f.notAfter = f.now.Add(ttl)
	f.mu.Unlock()
}

type logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logs) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func newFake(t *testing.T, lifetime time.Duration, anchors ...*x509.Certificate) (*Watcher, *fakeProxy, *logs) {
	t.Helper()
	f := &fakeProxy{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l := &logs{}
	w := New(Options{Source: f.source, Lifetime: lifetime, Anchors: anchors, Now: f.clock,
		Logger: slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	return w, f, l
}

func TestAnSVIDRenewedAtHalfLifeRaisesNothing(t *testing.T) {
	w, f, l := newFake(t, time.Minute)
	for range 10 {
		f.issue(time.Minute)
		for range 29 {
			w.Check(context.Background())
			f.advance(time.Second)
		}
	}
	if n := l.count("level=WARN") + l.count("level=ERROR"); n != 0 {
		t.Errorf("%d warnings for an SVID renewed on time:\n%s", n, l.b.String())
	}
	if ok, _, _ := w.Readiness(); !ok {
		t.Error("not ready")
	}
}

func TestAnSVIDNotRenewedWarnsFromHalfLifeThenWithdrawsReadinessAndRecovers(t *testing.T) {
	w, f, l := newFake(t, time.Minute)
	f.issue(time.Minute)
	w.Check(context.Background())

	f.advance(25 * time.Second)
	w.Check(context.Background())
	if n := l.count("not renewed past half"); n != 0 {
		t.Fatalf("warned before half-life")
	}
	f.advance(6 * time.Second) // 29s left
	w.Check(context.Background())
	w.Check(context.Background())
	if n := l.count("not renewed past half"); n != 1 {
		t.Fatalf("%d half-life warnings, want 1:\n%s", n, l.b.String())
	}
	f.advance(16 * time.Second) // 13s left: a quarter
	w.Check(context.Background())
	if n := l.count("not renewed past half"); n != 2 {
		t.Fatalf("%d warnings after a quarter of the life was left, want 2", n)
	}
	if ok, _, _ := w.Readiness(); !ok {
		t.Fatal("readiness withdrawn while the SVID is still valid")
	}

	f.advance(14 * time.Second) // expired
	w.Check(context.Background())
	ok, reason, msg := w.Readiness()
	if ok || reason != ReasonIdentityExpired || !strings.Contains(msg, "SVID expired") {
		t.Fatalf("Readiness() = %v %q %q, want false IdentityExpired", ok, reason, msg)
	}
	if l.count("identity EXPIRED") != 1 {
		t.Errorf("the expiry was not said once:\n%s", l.b.String())
	}

	f.issue(time.Minute) // the server is back
	w.Check(context.Background())
	if ok, _, _ := w.Readiness(); !ok {
		t.Error("still not ready after a renewed SVID")
	}
	if l.count("proxy identity renewed") != 1 {
		t.Errorf("the recovery was not said:\n%s", l.b.String())
	}
}

func TestAProxyThatCannotBeReadKeepsTheLastKnownExpiry(t *testing.T) {
	w, f, _ := newFake(t, time.Minute)
	f.issue(time.Minute)
	w.Check(context.Background())
	f.down = true
	f.advance(2 * time.Minute)
	w.Check(context.Background())
	if ok, reason, _ := w.Readiness(); ok || reason != ReasonIdentityExpired {
		t.Errorf("Readiness() = %v %q after the last known SVID expired", ok, reason)
	}
}

func TestNothingReadYetCountsAsReady(t *testing.T) {
	w, f, _ := newFake(t, 0)
	f.down = true
	w.Check(context.Background())
	if ok, _, _ := w.Readiness(); !ok {
		t.Error("not ready before the proxy reported any SVID")
	}
}

func TestTheLifetimeIsLearnedWhenNotGiven(t *testing.T) {
	w, f, l := newFake(t, 0)
	f.issue(time.Hour)
	w.Check(context.Background())
	f.advance(31 * time.Minute)
	w.Check(context.Background())
	if l.count("not renewed past half") != 1 {
		t.Errorf("no half-life warning with a learned lifetime:\n%s", l.b.String())
	}
}

func TestTrustAnchorExpiryIsAnnouncedDaysThenHoursAhead(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := &x509.Certificate{NotAfter: start.Add(3 * 24 * time.Hour)}
	w, f, l := newFake(t, time.Minute, old)
	f.issue(time.Hour)
	check := func(d time.Duration) {
		f.advance(d)
		w.Check(context.Background())
	}
	check(0)
	check(time.Hour)
	if n := l.count("trust anchor expires soon"); n != 1 {
		t.Fatalf("%d warnings in the first hour with 3 days left, want 1 (daily)", n)
	}
	check(24 * time.Hour)
	if n := l.count("trust anchor expires soon"); n != 2 {
		t.Fatalf("%d warnings after a day, want 2", n)
	}
	check(24*time.Hour + 30*time.Minute) // under a day left: hourly
	check(time.Hour)
	check(time.Hour)
	if n := l.count("trust anchor expires soon"); n != 5 {
		t.Fatalf("%d warnings, want 5 (hourly in the last day)", n)
	}
	check(24 * time.Hour)
	if ok, reason, _ := w.Readiness(); ok || reason != ReasonTrustAnchorExpired {
		t.Fatalf("Readiness() = %v %q after the anchor expired", ok, reason)
	}
	if l.count("trust anchor EXPIRED") != 1 {
		t.Errorf("the anchor's expiry was not said:\n%s", l.b.String())
	}
}

func TestANewRootBesideTheOldOneKeepsIdentityRenewable(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := &x509.Certificate{NotAfter: start.Add(time.Hour)}
	fresh := &x509.Certificate{NotAfter: start.Add(365 * 24 * time.Hour)}
	w, f, l := newFake(t, time.Minute, old, fresh)
	f.issue(time.Minute)
	f.advance(2 * time.Hour)
	f.issue(time.Minute)
	w.Check(context.Background())
	if ok, _, _ := w.Readiness(); !ok {
		t.Error("not ready with one valid root left")
	}
	if l.count("trust anchor") != 0 {
		t.Errorf("warned about anchors with a root valid for a year:\n%s", l.b.String())
	}
}

func TestTheExpiryIsReadFromTheProxysMetrics(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       int64
		wantErr    bool
	}{
		{"the proxy's gauge", "# HELP x\nidentity_cert_refresh_count 3\nidentity_cert_expiration_timestamp_seconds 1767225600\n", 1767225600, false},
		{"the gauge under the newer control_ prefix", "control_identity_cert_expiration_timestamp_seconds 1767225600.5\n", 1767225600, false},
		{"no SVID held yet", "identity_cert_refresh_count 0\n", 0, true},
		{"a value that is not a timestamp", "identity_cert_expiration_timestamp_seconds NaN\n", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseExpiry(strings.NewReader(tc.body))
			if (err != nil) != tc.wantErr || (!tc.wantErr && got.Unix() != tc.want) {
				t.Errorf("parseExpiry = %v, %v", got, err)
			}
		})
	}
}
