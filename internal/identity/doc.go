// Package identity watches the proxy's identity while meshexp runs: the
// SVID the proxy holds (its expiry, read from the proxy's own metrics) and
// the trust anchors it verifies peers with. It says loudly when the SVID
// has not rotated by its half-life, withdraws readiness once the SVID (or
// every trust anchor) has expired, and notices by itself when a renewed
// SVID arrives. It changes nothing: the registrar consumes Readiness.
package identity
