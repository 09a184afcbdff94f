package main

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// admin serves the proxy's admin endpoints that meshexp and its tests use
// (linkerd/app/admin/src/server.rs): /live, /ready, /metrics and /shutdown.
type admin struct {
	ident           *identityWatcher
	stats           map[string]*connStats // by listener: inbound, outbound, control
	start           time.Time
	shutdownEnabled bool
	shutdown        func() // asks main to drain and exit
}

func (a *admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/live":
		text(w, http.StatusOK, "live\n")
	case "/ready":
		// Ready once the identity is certified: the proxy's readiness latch
		// is released by the identity daemon and never taken back.
		select {
		case <-a.ident.Ready():
			text(w, http.StatusOK, "ready\n")
		default:
			text(w, http.StatusServiceUnavailable, "not ready\n")
		}
	case "/metrics":
		a.metrics(w)
	case "/shutdown":
		a.shutdownEndpoint(w, r)
	case "/identity":
		// Stand-in only: every SVID swap (swaps.go), for rotation tests.
		a.ident.swaps.serveHTTP(w, a.ident.rejected.Load())
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// shutdownEndpoint answers POST /shutdown from loopback, and only when
// LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED=true (404 otherwise).
func (a *admin) shutdownEndpoint(w http.ResponseWriter, r *http.Request) {
	if !a.shutdownEnabled {
		text(w, http.StatusNotFound, "shutdown endpoint is not enabled\n")
		return
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !ap.Addr().Unmap().IsLoopback() {
		text(w, http.StatusForbidden, "Requests are only permitted from localhost.")
		return
	}
	text(w, http.StatusOK, "shutdown\n")
	go a.shutdown()
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(code)
	fmt.Fprint(w, body)
}

// metrics writes a few Prometheus text metrics, named like the proxy's
// where it has an equivalent.
func (a *admin) metrics(w http.ResponseWriter) {
	var b strings.Builder
	dirs := []string{"inbound", "outbound", "control"}
	b.WriteString("# HELP tcp_open_total Total count of opened connections.\n# TYPE tcp_open_total counter\n")
	for _, d := range dirs {
		fmt.Fprintf(&b, "tcp_open_total{direction=%q} %d\n", d, a.stats[d].opened.Load())
	}
	b.WriteString("# HELP tcp_close_total Total count of closed connections.\n# TYPE tcp_close_total counter\n")
	for _, d := range dirs {
		fmt.Fprintf(&b, "tcp_close_total{direction=%q} %d\n", d, a.stats[d].closed.Load())
	}
	b.WriteString("# HELP identity_cert_refresh_count The total number of times this proxy's mTLS identity certificate has been refreshed.\n# TYPE identity_cert_refresh_count counter\n")
	fmt.Fprintf(&b, "identity_cert_refresh_count %d\n", a.ident.updates.Load())
	b.WriteString("# HELP identity_svid_rejected_total Workload API updates without a usable SVID (stand-in only).\n# TYPE identity_svid_rejected_total counter\n")
	fmt.Fprintf(&b, "identity_svid_rejected_total %d\n", a.ident.rejected.Load())
	if cr := a.ident.Current(); cr != nil {
		b.WriteString("# HELP identity_cert_expiration_timestamp_seconds Time when this proxy's current mTLS identity certificate will expire (in seconds since the UNIX epoch).\n# TYPE identity_cert_expiration_timestamp_seconds gauge\n")
		fmt.Fprintf(&b, "identity_cert_expiration_timestamp_seconds %d\n", cr.notAfter.Unix())
	}
	b.WriteString("# HELP process_start_time_seconds Time that the process started (in seconds since the UNIX epoch).\n# TYPE process_start_time_seconds gauge\n")
	fmt.Fprintf(&b, "process_start_time_seconds %d\n", a.start.Unix())
	b.WriteString("# HELP meshexp_standin_info The meshexp linkerd2-proxy stand-in (not the real proxy).\n# TYPE meshexp_standin_info gauge\nmeshexp_standin_info 1\n")
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprint(w, b.String())
}

// serveAdmin runs the admin server on ln until srv is shut down.
func serveAdmin(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
