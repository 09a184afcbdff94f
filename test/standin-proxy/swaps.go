package main

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// swap is one SVID the stand-in started using: when, which, until when.
// The sequence lets a test prove there was never a moment without a valid
// SVID: each swap must come before the previous SVID's NotAfter.
type swap struct {
	At        time.Time `json:"at"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// swapLog records every change of the SVID held (a new serial); updates
// that repeat the SVID (a bundle change) are only counted.
type swapLog struct {
	mu      sync.Mutex
	swaps   []swap
	repeats int64
}

// record notes leaf as the SVID in use from now on and says whether it is
// a new one.
func (l *swapLog) record(now time.Time, leaf *x509.Certificate) bool {
	serial := leaf.SerialNumber.Text(16)
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.swaps); n > 0 && l.swaps[n-1].Serial == serial {
		l.repeats++
		return false
	}
	l.swaps = append(l.swaps, swap{At: now.UTC(), Serial: serial, NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC()})
	return true
}

// identityReport is what GET /identity answers (stand-in only).
type identityReport struct {
	Swaps    []swap `json:"swaps"`
	Repeats  int64  `json:"repeats"`  // updates that kept the SVID (bundle changes)
	Rejected int64  `json:"rejected"` // updates without a usable SVID
}

func (l *swapLog) serveHTTP(w http.ResponseWriter, rejected int64) {
	l.mu.Lock()
	rep := identityReport{Swaps: append([]swap{}, l.swaps...), Repeats: l.repeats, Rejected: rejected}
	l.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}
