package identity

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Reasons a Watcher gives for withdrawing readiness (the Ready condition's
// reason on the ExternalWorkload).
const (
	ReasonIdentityExpired    = "IdentityExpired"
	ReasonTrustAnchorExpired = "TrustAnchorExpired"
)

// Source reports the NotAfter of the SVID the proxy uses now. An error
// means "not known at the moment" (the proxy is starting or restarting).
type Source func(ctx context.Context) (time.Time, error)

// Options configure a Watcher. Zero values take the defaults named.
type Options struct {
	Source Source
	// Lifetime is the SVID lifetime SPIRE issues (--spire-svid-ttl in
	// embedded mode); 0: learned from each SVID, from when it was first
	// seen to its NotAfter (a lower bound, so warnings come no earlier).
	Lifetime time.Duration
	// Anchors are the trust anchors the proxy verifies with (ca.crt).
	Anchors []*x509.Certificate
	// Period between checks; default a tenth of Lifetime, within 1s–10s.
	Period time.Duration
	Now    func() time.Time // default time.Now
	Logger *slog.Logger
}

// Watcher follows the proxy's identity. Run it; ask Readiness any time.
type Watcher struct {
	o Options

	mu        sync.Mutex
	notAfter  time.Time // of the SVID in use; zero until known
	firstSeen time.Time // when this NotAfter was first seen
	lifetime  time.Duration
	// warnedAt is the remaining fraction of the lifetime (1/2, 1/4, …) at
	// which the last "not rotated" warning was given; 0 when none.
	warnedAt    float64
	expired     bool
	anchorLevel int // 0 fine, 1 days left, 2 hours left, 3 expired
	anchorNext  time.Time
}

// New returns a Watcher for o.
func New(o Options) *Watcher {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Period <= 0 {
		o.Period = min(max(o.Lifetime/10, time.Second), 10*time.Second)
	}
	return &Watcher{o: o, lifetime: o.Lifetime}
}

// Run checks every Period until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	lifetime := "learned from each SVID"
	if w.o.Lifetime > 0 {
		lifetime = w.o.Lifetime.String()
	}
	w.o.Logger.Info("watching the proxy's identity", "svid_lifetime", lifetime, "trust_anchors", len(w.o.Anchors),
		"trust_anchors_expire", w.anchorsNotAfter().UTC().Format(time.RFC3339), "period", w.o.Period.String())
	t := time.NewTicker(w.o.Period)
	defer t.Stop()
	for {
		w.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Readiness says whether the identity lets the workload serve: false, with
// a reason and a message in plain words, once the SVID or every trust
// anchor has expired. Unknown (nothing read yet) counts as ready: the
// proxy's own /ready covers a proxy that has no SVID at all.
func (w *Watcher) Readiness() (ready bool, reason, message string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.anchorLevel == 3:
		return false, ReasonTrustAnchorExpired, w.anchorMessage()
	case w.expired:
		return false, ReasonIdentityExpired, fmt.Sprintf("the proxy's SVID expired at %s and SPIRE has not renewed it; the proxy cannot prove its identity", w.notAfter.UTC().Format(time.RFC3339))
	}
	return true, "", ""
}

// Check reads the source once and logs what changed.
func (w *Watcher) Check(ctx context.Context) {
	now := w.o.Now()
	notAfter, err := w.o.Source(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checkAnchors(now)
	if err != nil {
		w.o.Logger.Debug("proxy identity not readable", "err", err)
	} else if !notAfter.Equal(w.notAfter) {
		w.renewed(now, notAfter)
	}
	w.checkSVID(now)
}

// renewed takes a new SVID expiry.
func (w *Watcher) renewed(now, notAfter time.Time) {
	first := w.notAfter.IsZero()
	if !first && (w.warnedAt > 0 || w.expired) {
		w.o.Logger.Info("proxy identity renewed", "not_after", notAfter.UTC().Format(time.RFC3339), "was_expired", w.expired)
	}
	if w.o.Lifetime == 0 {
		// The longest lifetime seen is the best lower bound.
		w.lifetime = max(w.lifetime, notAfter.Sub(now))
	}
	w.notAfter, w.firstSeen, w.warnedAt, w.expired = notAfter, now, 0, false
	if notAfter.Before(now) {
		w.expired = true
	}
}

// checkSVID warns from half-life on, at each halving of what remains, and
// says once when the SVID has expired.
func (w *Watcher) checkSVID(now time.Time) {
	if w.notAfter.IsZero() || w.lifetime <= 0 {
		return
	}
	left := w.notAfter.Sub(now)
	if left <= 0 {
		if !w.expired {
			w.o.Logger.Error("proxy identity EXPIRED: SPIRE did not renew the SVID; readiness withdrawn until it does",
				"not_after", w.notAfter.UTC().Format(time.RFC3339), "reason", ReasonIdentityExpired)
		}
		w.expired = true
		return
	}
	frac := float64(left) / float64(w.lifetime)
	step := 0.5
	for step/2 >= frac && step > 1.0/64 {
		step /= 2
	}
	if frac <= 0.5 && (w.warnedAt == 0 || step < w.warnedAt) {
		w.warnedAt = step
		w.o.Logger.Warn("proxy identity not renewed past half its lifetime: is the SPIRE server reachable?",
			"not_after", w.notAfter.UTC().Format(time.RFC3339), "left", left.Round(time.Second).String(), "lifetime", w.lifetime.Round(time.Second).String())
	}
}
