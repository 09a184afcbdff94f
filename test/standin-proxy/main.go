// Command standin-proxy is meshexp's test stand-in for linkerd2-proxy,
// which is a Rust binary that cannot be obtained where meshexp is built and
// tested. It is used by tests and by `make demo` only and is never installed
// as the proxy.
//
// It reads the same environment as linkerd2-proxy and holds it to the same
// contract (linkerd2-proxy linkerd/app/src/env.rs): it refuses to start,
// with exit status 64 and one log line per bad variable in the proxy's
// words ("NAME=value is not valid: …", "NAME must be set."), unless the
// required variables are present and every variable it knows is
// well-formed. It then
//
//   - fetches its X.509 SVID from the SPIRE Workload API named by
//     LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS (or the older
//     LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET), retrying on the proxy's
//     backoff (100ms to 1s), keeps the SVID whose ID is
//     LINKERD2_PROXY_IDENTITY_SERVER_ID only if it chains to
//     LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS, and follows rotations;
//   - listens on the inbound, outbound, admin and control addresses;
//   - serves /live, /ready (200 once it holds a verified SVID, 503
//     before), /metrics and, when LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED
//     is true, POST /shutdown on the admin address;
//   - answers each connection on the inbound, outbound and control
//     listeners with one line,
//     "meshexp-standin <listener> orig_dst=<ip:port> peer=<ip:port> identity=<spiffe id>",
//     where orig_dst is the connection's SO_ORIGINAL_DST (the local address
//     when it was not redirected); an HTTP/1 client gets the line as the
//     body of a 200 response;
//   - logs to stdout like the proxy (plain, or JSON when
//     LINKERD2_PROXY_LOG_FORMAT=json) and exits 0 after SIGTERM or SIGINT
//     once connections have drained, within
//     LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD (default 2m).
//
// It does not proxy anything, speak TLS, or talk to the Linkerd control
// plane: it proves the parts around the proxy, not the proxy.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Exit statuses, as linkerd2-proxy's main (linkerd2-proxy/src/main.rs).
const (
	exitUsage   = 64 // EX_USAGE: invalid configuration
	exitInitErr = 1  // initialization failure, such as a port in use
)

// meshexpProxyUID is the uid meshexp runs the proxy as (Linkerd's chart
// uses 2102 too).
const meshexpProxyUID = 2102

func main() { os.Exit(run()) }

func run() int {
	start := time.Now()
	cfg, problems, warnings := loadConfig(os.LookupEnv)
	level := new(slog.LevelVar)
	level.Set(cfg.logLevel)
	log := slog.New(newProxyHandler(os.Stdout, cfg.logJSON, level, start))

	log.Info("release meshexp-standin (a test stand-in for linkerd2-proxy, not the proxy)")
	if uid := os.Getuid(); uid == 0 {
		log.Warn("RUNNING AS ROOT (uid 0): the proxy must run as its own uid, or every root process bypasses interception and can fetch the proxy's SVID; meshexp runs it as uid 2102",
			"want_uid", meshexpProxyUID)
	}
	for _, w := range warnings {
		log.Warn(w)
	}
	for _, name := range unknownVars(os.Environ()) {
		log.Warn("Unknown variable; the stand-in does not read it (check the spelling)", "name", name)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			log.Error(p.msg)
		}
		fmt.Fprintln(os.Stderr, "Invalid configuration: invalid environment variable")
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, log, cfg, start); err != nil {
		log.Error("Initialization failure", "error", err.Error())
		fmt.Fprintf(os.Stderr, "Initialization failure: %v\n", err)
		return exitInitErr
	}
	return 0
}

// serve binds everything, then runs until ctx ends or /shutdown is called,
// then drains within the grace period.
func serve(ctx context.Context, log *slog.Logger, cfg *config, start time.Time) error {
	ident := newIdentityWatcher(log, cfg)
	stats := map[string]*connStats{"inbound": {}, "outbound": {}, "control": {}}

	var listeners []net.Listener
	closeAll := func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}
	bind := func(what string, addr interface{ String() string }, ap func() (net.Listener, error)) (net.Listener, error) {
		ln, err := ap()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("binding %s interface on %s: %w", what, addr, err)
		}
		listeners = append(listeners, ln)
		return ln, nil
	}
	adminLn, err := bind("admin", cfg.admin, func() (net.Listener, error) { return listen(ctx, cfg.admin) })
	if err != nil {
		return err
	}
	inLn, err := bind("inbound", cfg.inbound, func() (net.Listener, error) { return listen(ctx, cfg.inbound) })
	if err != nil {
		return err
	}
	var outLns []net.Listener
	for _, a := range cfg.outbound {
		ln, err := bind("outbound", a, func() (net.Listener, error) { return listen(ctx, a) })
		if err != nil {
			return err
		}
		outLns = append(outLns, ln)
	}
	ctlLn, err := bind("control", cfg.control, func() (net.Listener, error) { return listen(ctx, cfg.control) })
	if err != nil {
		return err
	}

	log.Info("Admin interface on " + adminLn.Addr().String())
	log.Info("Inbound interface on " + inLn.Addr().String())
	for _, ln := range outLns {
		log.Info("Outbound interface on " + ln.Addr().String())
	}
	log.Info("Tap interface on " + ctlLn.Addr().String())
	log.Info("SNI is " + cfg.serverName)
	log.Info("Local identity is " + cfg.serverID)
	log.Info("Identity verified via unix://" + cfg.workloadAPI)
	log.Info(fmt.Sprintf("Destinations resolved via %s", cfg.destination))
	log.Info(fmt.Sprintf("Policy resolved via %s", cfg.policy))

	var servers []*connServer
	servers = append(servers, newConnServer("inbound", inLn, log, ident, stats["inbound"]))
	for _, ln := range outLns {
		servers = append(servers, newConnServer("outbound", ln, log, ident, stats["outbound"]))
	}
	servers = append(servers, newConnServer("control", ctlLn, log, ident, stats["control"]))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() { defer wg.Done(); s.serve() }()
	}

	shutdownReq := make(chan struct{})
	var once sync.Once
	adm := &admin{ident: ident, stats: stats, start: start, shutdownEnabled: cfg.shutdownEnabled,
		shutdown: func() { once.Do(func() { close(shutdownReq) }) }}
	adminSrv := &http.Server{Handler: adm, ReadHeaderTimeout: 10 * time.Second}
	adminErr := make(chan error, 1)
	go func() { adminErr <- serveAdmin(adminSrv, adminLn) }()

	idCtx, cancelID := context.WithCancel(context.Background())
	idDone := make(chan struct{})
	go func() {
		defer close(idDone)
		if err := watchIdentity(idCtx, log, cfg, ident); err != nil && idCtx.Err() == nil {
			log.Error("SPIRE identity watch ended; the proxy will not become ready", "error", err.Error())
		}
	}()

	select {
	case <-ctx.Done():
		log.Info("Received shutdown signal")
	case <-shutdownReq:
		log.Info("Received shutdown via admin interface")
	case err := <-adminErr:
		log.Error("Admin server failed", "error", fmt.Sprint(err))
	}

	// Drain: stop accepting, let connections finish within the grace
	// period, then close the rest.
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownGrace)
	defer cancel()
	var dwg sync.WaitGroup
	for _, s := range servers {
		dwg.Add(1)
		go func() { defer dwg.Done(); s.drain(graceCtx) }()
	}
	adminSrv.Shutdown(graceCtx)
	adminSrv.Close()
	dwg.Wait()
	wg.Wait()
	cancelID()
	<-idDone
	log.Info("Shutdown complete")
	return nil
}

// unknownVars lists LINKERD2_PROXY_* variables the stand-in does not know,
// so a misspelt name in meshexp's rendering shows up in the log. The real
// proxy ignores unknown names silently.
func unknownVars(environ []string) []string {
	known := knownVars()
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && !known[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func knownVars() map[string]bool {
	k := map[string]bool{}
	for _, n := range []string{
		envInboundListenAddr, envOutboundListenAddr, envOutboundListenAddrs, envAdminListenAddr, envControlListenAddr,
		envPolicyWorkload, envDestinationContext, envClusterNetworks, envInboundDefaultPolicy,
		envTrustAnchors, envServerID, envServerName, envLocalName, envIdentityDisabled, envIdentityDir,
		envIdentityTokenFile, envSPIREWorkloadAPI, envSPIRESocket, envTapSvcName, envLogFormat, envLog,
		envControlInitTimeout, envControlIdleTimeout, envControlLifetime,
		"LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS", "LINKERD2_PROXY_INBOUND_IPS",
		// Read by the proxy, not checked by the stand-in.
		"LINKERD2_PROXY_CORES", "LINKERD2_PROXY_RESOLV_CONF", "LINKERD2_PROXY_TRACE_ATTRIBUTES_PATH",
		"LINKERD2_PROXY_TRACE_SERVICE_NAME", "LINKERD2_PROXY_TRACE_PROTOCOL", "LINKERD2_PROXY_TRACE_EXTRA_ATTRIBUTES",
		"LINKERD2_PROXY_LOG_LEVEL", "LINKERD2_PROXY_LOG_HTTP_HEADERS",
	} {
		k[n] = true
	}
	for _, base := range []string{envDestinationSvc, envPolicySvc, envIdentitySvc, envTraceCollectorSvc} {
		k[base+"_ADDR"], k[base+"_NAME"] = true, true
	}
	for _, lists := range [][]string{durationVars, boolVars, portSetVars, suffixVars} {
		for _, n := range lists {
			k[n] = true
		}
	}
	for n := range numberVars {
		k[n] = true
	}
	for _, base := range backoffBases {
		for _, s := range []string{"_EXP_BACKOFF_MIN", "_EXP_BACKOFF_MAX", "_EXP_BACKOFF_JITTER"} {
			k[envPrefix+base+s] = true
		}
	}
	return k
}
