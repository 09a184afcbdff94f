package identity

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// When trust-anchor warnings start and how often they repeat.
const (
	anchorWarnDays  = 30 * 24 * time.Hour // then daily
	anchorWarnHours = 24 * time.Hour      // then hourly
)

// ReadAnchors reads every certificate of a PEM bundle (ca.crt).
func ReadAnchors(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading trust anchors: %w", err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing trust anchor in %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate in " + path)
	}
	return out, nil
}

// anchorsNotAfter is when the last trust anchor expires: with several
// roots (a rotation), identity lapses only when none is left.
func (w *Watcher) anchorsNotAfter() time.Time {
	var last time.Time
	for _, c := range w.o.Anchors {
		if c.NotAfter.After(last) {
			last = c.NotAfter
		}
	}
	return last
}

func (w *Watcher) anchorMessage() string {
	return fmt.Sprintf("every trust anchor expired (the last at %s): no SVID can be verified or renewed until ca.crt holds a valid root",
		w.anchorsNotAfter().UTC().Format(time.RFC3339))
}

// checkAnchors warns days ahead (daily), then hours ahead (hourly), and
// says once when the last anchor has expired.
func (w *Watcher) checkAnchors(now time.Time) {
	last := w.anchorsNotAfter()
	if last.IsZero() {
		return
	}
	left := last.Sub(now)
	level, every := 0, time.Duration(0)
	switch {
	case left <= 0:
		level = 3
	case left <= anchorWarnHours:
		level, every = 2, time.Hour
	case left <= anchorWarnDays:
		level, every = 1, anchorWarnHours
	}
	switch {
	case level == 3 && w.anchorLevel != 3:
		w.o.Logger.Error("trust anchor EXPIRED: identity can no longer be renewed; readiness withdrawn",
			"not_after", last.UTC().Format(time.RFC3339), "reason", ReasonTrustAnchorExpired,
			"fix", "put a new root in ca.crt beside the old one (meshexp certs), then restart meshexp")
	case level > 0 && level < 3 && (level != w.anchorLevel || !now.Before(w.anchorNext)):
		w.o.Logger.Warn("trust anchor expires soon: identity cannot be renewed after it",
			"not_after", last.UTC().Format(time.RFC3339), "left", left.Round(time.Minute).String(),
			"fix", "rotate the trust anchor: put a new root in ca.crt beside the old one before this one expires")
		w.anchorNext = now.Add(every)
	case level == 0 && w.anchorLevel == 3:
		w.o.Logger.Info("trust anchor valid again")
	}
	w.anchorLevel = level
}
