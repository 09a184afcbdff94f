package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Variable names, as linkerd2-proxy spells them (linkerd/app/src/env.rs).
const (
	envPrefix = "LINKERD2_PROXY_"

	envInboundListenAddr   = "LINKERD2_PROXY_INBOUND_LISTEN_ADDR"
	envOutboundListenAddr  = "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR"
	envOutboundListenAddrs = "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS"
	envAdminListenAddr     = "LINKERD2_PROXY_ADMIN_LISTEN_ADDR"
	envControlListenAddr   = "LINKERD2_PROXY_CONTROL_LISTEN_ADDR"

	envDestinationSvc     = "LINKERD2_PROXY_DESTINATION_SVC"
	envPolicySvc          = "LINKERD2_PROXY_POLICY_SVC"
	envIdentitySvc        = "LINKERD2_PROXY_IDENTITY_SVC"
	envTraceCollectorSvc  = "LINKERD2_PROXY_TRACE_COLLECTOR_SVC"
	envPolicyWorkload     = "LINKERD2_PROXY_POLICY_WORKLOAD"
	envDestinationContext = "LINKERD2_PROXY_DESTINATION_CONTEXT"

	envClusterNetworks      = "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"
	envInboundDefaultPolicy = "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY"

	envTrustAnchors       = "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"
	envServerID           = "LINKERD2_PROXY_IDENTITY_SERVER_ID"
	envServerName         = "LINKERD2_PROXY_IDENTITY_SERVER_NAME"
	envLocalName          = "LINKERD2_PROXY_IDENTITY_LOCAL_NAME"
	envIdentityDisabled   = "LINKERD2_PROXY_IDENTITY_DISABLED"
	envIdentityDir        = "LINKERD2_PROXY_IDENTITY_DIR"
	envIdentityTokenFile  = "LINKERD2_PROXY_IDENTITY_TOKEN_FILE"
	envSPIREWorkloadAPI   = "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS"
	envSPIRESocket        = "LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET" // the older name, still read as an alias
	envTapSvcName         = "LINKERD2_PROXY_TAP_SVC_NAME"
	envShutdownEnabled    = "LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED"
	envShutdownGrace      = "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD"
	envLogFormat          = "LINKERD2_PROXY_LOG_FORMAT"
	envLog                = "LINKERD2_PROXY_LOG"
	envControlInitTimeout = "LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT"
	envControlIdleTimeout = "LINKERD2_PROXY_CONTROL_STREAM_IDLE_TIMEOUT"
	envControlLifetime    = "LINKERD2_PROXY_CONTROL_STREAM_LIFETIME"
)

// Defaults the proxy uses when a listen address is unset (env.rs DEFAULT_*).
const (
	defaultOutboundListenAddr = "127.0.0.1:4140"
	defaultInboundListenAddr  = "0.0.0.0:4143"
	defaultControlListenAddr  = "0.0.0.0:4190"
	defaultAdminListenAddr    = "127.0.0.1:4191"
	// DEFAULT_SHUTDOWN_GRACE_PERIOD: two minutes.
	defaultShutdownGrace = 2 * time.Minute
)

// durationVars are read with parse_duration by the proxy.
var durationVars = []string{
	"LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT",
	"LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT",
	"LINKERD2_PROXY_INBOUND_HTTP_FAILFAST_TIMEOUT",
	"LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT",
	"LINKERD2_PROXY_OUTBOUND_TCP_FAILFAST_TIMEOUT",
	"LINKERD2_PROXY_OUTBOUND_HTTP_FAILFAST_TIMEOUT",
	"LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT",
	"LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE",
	"LINKERD2_PROXY_OUTBOUND_ACCEPT_KEEPALIVE",
	"LINKERD2_PROXY_INBOUND_CONNECT_KEEPALIVE",
	"LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE",
	"LINKERD2_PROXY_INBOUND_ACCEPT_USER_TIMEOUT",
	"LINKERD2_PROXY_OUTBOUND_ACCEPT_USER_TIMEOUT",
	"LINKERD2_PROXY_INBOUND_CONNECT_USER_TIMEOUT",
	"LINKERD2_PROXY_OUTBOUND_CONNECT_USER_TIMEOUT",
	envShutdownGrace,
	"LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT",
	"LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT",
	"LINKERD2_PROXY_METRICS_RETAIN_IDLE",
	"LINKERD2_PROXY_DNS_MIN_TTL",
	"LINKERD2_PROXY_DNS_MAX_TTL",
	"LINKERD2_PROXY_DESTINATION_PROFILE_INITIAL_TIMEOUT",
	"LINKERD2_PROXY_INBOUND_HTTP1_CONNECTION_POOL_IDLE_TIMEOUT",
	"LINKERD2_PROXY_OUTBOUND_HTTP1_CONNECTION_POOL_IDLE_TIMEOUT",
	"LINKERD2_PROXY_IDENTITY_MIN_REFRESH",
	"LINKERD2_PROXY_IDENTITY_MAX_REFRESH",
}

// numberVars are read with parse_number; the value is the integer width
// (usize is 64 bits on the proxy's targets).
var numberVars = map[string]int{
	"LINKERD2_PROXY_INBOUND_HTTP_QUEUE_CAPACITY":          64,
	"LINKERD2_PROXY_OUTBOUND_TCP_QUEUE_CAPACITY":          64,
	"LINKERD2_PROXY_OUTBOUND_HTTP_QUEUE_CAPACITY":         64,
	"LINKERD2_PROXY_MAX_IDLE_CONNS_PER_ENDPOINT":          64,
	"LINKERD2_PROXY_OUTBOUND_MAX_IDLE_CONNS_PER_ENDPOINT": 64,
	"LINKERD2_PROXY_INBOUND_MAX_IN_FLIGHT":                64,
	"LINKERD2_PROXY_OUTBOUND_MAX_IN_FLIGHT":               64,
	"LINKERD2_PROXY_HTTP2_INITIAL_STREAM_WINDOW_SIZE":     32,
	"LINKERD2_PROXY_HTTP2_INITIAL_CONNECTION_WINDOW_SIZE": 32,
}

var boolVars = []string{
	envShutdownEnabled,
	"LINKERD2_PROXY_INGRESS_MODE",
	"LINKERD2_PROXY_OUTBOUND_DISABLE_INFORMATIONAL_HEADERS",
}

var portSetVars = []string{
	"LINKERD2_PROXY_INBOUND_PORTS",
	"LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
	"LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY",
	"LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_TLS",
}

var suffixVars = []string{
	"LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES",
	"LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES",
}

// backoffBases are parse_backoff's bases. The proxy formats the names as
// "LINKERD2_PROXY_{base}_EXP_BACKOFF_MIN" and passes the SPIRE base as
// IDENTITY_SPIRE_BASE, which already carries the prefix: the SPIRE backoff
// is therefore read from LINKERD2_PROXY_LINKERD2_PROXY_IDENTITY_SPIRE_*.
// The doubled prefix is the proxy's, kept here on purpose.
const spireBackoffBase = "LINKERD2_PROXY_IDENTITY_SPIRE"

var backoffBases = []string{spireBackoffBase, "INBOUND_CONNECT", "OUTBOUND_CONNECT"}

// config is what the stand-in needs from a valid environment.
type config struct {
	logJSON  bool
	logLevel slog.Level

	inbound  netip.AddrPort
	outbound []netip.AddrPort
	admin    netip.AddrPort
	control  netip.AddrPort

	destination controlAddr
	policy      controlAddr

	serverID     string
	serverName   string
	anchors      []*x509.Certificate
	workloadAPI  string // absolute path of the Workload API socket
	spireBackoff expBackoff

	shutdownEnabled bool
	shutdownGrace   time.Duration
}

// problem is one reason the environment is refused, phrased as the proxy
// logs it.
type problem struct {
	name string // the variable the problem is about
	msg  string
}

func (p problem) String() string { return p.msg }

// loader reads variables and collects every problem, as the proxy's
// parse_config does ("defer returning any errors until all of them have
// been parsed"), so one run names them all.
type loader struct {
	get      func(string) (string, bool)
	problems []problem
	warnings []string
}

func (l *loader) invalid(name, value string, err error) {
	l.problems = append(l.problems, problem{name, fmt.Sprintf("%s=%s is not valid: %v", name, quote(value), err)})
}

func (l *loader) fail(name, format string, args ...any) {
	l.problems = append(l.problems, problem{name, fmt.Sprintf(format, args...)})
}

// quote prints a value as the proxy's {value:?} does, shortened so a PEM
// bundle does not flood the log.
func quote(v string) string {
	const max = 120
	if len(v) > max {
		return strconv.Quote(v[:max]) + fmt.Sprintf("…(%d bytes)", len(v))
	}
	return strconv.Quote(v)
}

// loadConfig applies linkerd2-proxy's environment contract to get. It
// returns the problems that make the proxy refuse to start (the config is
// usable only when there are none, but its logging fields always are), and
// warnings for things the proxy accepts but that are probably mistakes.
func loadConfig(get func(string) (string, bool)) (*config, []problem, []string) {
	l := &loader{get: get}
	c := &config{}

	l.logging(c)
	l.listeners(c)
	l.scalars(c)
	l.controlPlane(c)
	l.inboundPolicy()
	l.identity(c)
	for _, base := range backoffBases {
		b, ok := l.backoff(base)
		if ok && base == spireBackoffBase {
			c.spireBackoff = b
		}
	}
	return c, l.problems, l.warnings
}

func (l *loader) logging(c *config) {
	// The proxy picks JSON when LINKERD2_PROXY_LOG_FORMAT is "json" in any
	// case and plain text otherwise (linkerd/tracing); it never refuses one.
	f, _ := l.get(envLogFormat)
	c.logJSON = strings.EqualFold(f, "json")
	c.logLevel = slog.LevelInfo
	if v, ok := l.get(envLog); ok {
		c.logLevel = logLevelOf(v)
	}
}

// logLevelOf takes the global level from a tracing filter such as
// "warn,linkerd=info": the last directive without a target.
func logLevelOf(filter string) slog.Level {
	level := slog.LevelInfo
	for _, d := range strings.Split(filter, ",") {
		switch strings.ToLower(strings.TrimSpace(d)) {
		case "trace", "debug":
			level = slog.LevelDebug
		case "info":
			level = slog.LevelInfo
		case "warn":
			level = slog.LevelWarn
		case "error", "off":
			level = slog.LevelError
		}
	}
	return level
}

func (l *loader) socketAddr(name, def string) netip.AddrPort {
	v, ok := l.get(name)
	if !ok {
		v = def
	}
	ap, err := parseSocketAddr(v)
	if err != nil {
		l.invalid(name, v, err)
	}
	return ap
}

func (l *loader) listeners(c *config) {
	c.inbound = l.socketAddr(envInboundListenAddr, defaultInboundListenAddr)
	c.admin = l.socketAddr(envAdminListenAddr, defaultAdminListenAddr)
	c.control = l.socketAddr(envControlListenAddr, defaultControlListenAddr)
	// LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS (one or two addresses) wins over
	// the single-address variable, which is still parsed (and must be valid).
	single := l.socketAddr(envOutboundListenAddr, defaultOutboundListenAddr)
	if v, ok := l.get(envOutboundListenAddrs); ok {
		addrs, err := parseSocketAddrs(v)
		if err != nil {
			l.invalid(envOutboundListenAddrs, v, err)
		}
		c.outbound = addrs
	} else {
		c.outbound = []netip.AddrPort{single}
	}
}

// scalars checks every variable whose value has a simple type.
func (l *loader) scalars(c *config) {
	for _, name := range durationVars {
		if v, ok := l.get(name); ok {
			if _, err := parseDuration(v); err != nil {
				l.invalid(name, v, err)
			}
		}
	}
	for name, bits := range numberVars {
		if v, ok := l.get(name); ok {
			if _, err := parseUint(v, bits); err != nil {
				l.invalid(name, v, err)
			}
		}
	}
	for _, name := range boolVars {
		if v, ok := l.get(name); ok {
			if _, err := parseBool(v); err != nil {
				l.invalid(name, v, err)
			}
		}
	}
	for _, name := range portSetVars {
		if v, ok := l.get(name); ok {
			if _, err := parsePortRangeSet(v); err != nil {
				l.invalid(name, v, err)
			}
		}
	}
	for _, name := range suffixVars {
		if v, ok := l.get(name); ok {
			if _, err := parseDNSSuffixes(v); err != nil {
				l.invalid(name, v, err)
			}
		}
	}
	if v, ok := l.get("LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS"); ok {
		if _, err := parseNetworks(v); err != nil {
			l.invalid("LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS", v, err)
		}
	}
	if v, ok := l.get("LINKERD2_PROXY_INBOUND_IPS"); ok {
		if _, err := parseIPSet(v); err != nil {
			l.invalid("LINKERD2_PROXY_INBOUND_IPS", v, err)
		}
	}
	if v, ok := l.get(envShutdownEnabled); ok {
		c.shutdownEnabled, _ = parseBool(v)
	}
	c.shutdownGrace = defaultShutdownGrace
	if v, ok := l.get(envShutdownGrace); ok {
		if d, err := parseDuration(v); err == nil {
			c.shutdownGrace = d
		}
	}
	l.controlStreamLimits()
}

// controlStreamLimits mirrors linkerd/app/src/env/control.rs: empty means
// unset, and initial ≤ idle ≤ lifetime.
func (l *loader) controlStreamLimits() {
	read := func(name string) (time.Duration, bool) {
		v, _ := l.get(name)
		d, set, err := parseDurationOpt(v)
		if err != nil {
			l.invalid(name, v, err)
		}
		return d, set
	}
	initial, iok := read(envControlInitTimeout)
	idle, dok := read(envControlIdleTimeout)
	life, lok := read(envControlLifetime)
	if iok && dok && initial > idle {
		l.fail(envControlInitTimeout, "%s must be less than %s", envControlInitTimeout, envControlIdleTimeout)
	}
	if iok && lok && initial > life {
		l.fail(envControlInitTimeout, "%s must be less than %s", envControlInitTimeout, envControlLifetime)
	}
	if dok && lok && idle > life {
		l.fail(envControlIdleTimeout, "%s must be less than %s", envControlIdleTimeout, envControlLifetime)
	}
}

// svc is parse_control_addr: BASE_ADDR and BASE_NAME, which must come
// together unless the address is loopback.
func (l *loader) svc(base string) (controlAddr, bool) {
	addrName, nameName := base+"_ADDR", base+"_NAME"
	av, aok := l.get(addrName)
	nv, nok := l.get(nameName)
	var addr controlAddr
	bad := false
	if aok {
		var err error
		if addr, err = parseControlAddr(av); err != nil {
			l.invalid(addrName, av, err)
			bad = true
		}
	}
	if nok {
		if err := checkDNSName(nv); err != nil {
			l.invalid(nameName, nv, err)
			bad = true
		}
	}
	switch {
	case bad:
		return controlAddr{}, false
	case !aok && !nok:
		return controlAddr{}, false
	case aok && addr.loopback, aok && nok:
		return addr, true
	}
	l.fail(addrName, "%s and %s must be specified together", addrName, nameName)
	return controlAddr{}, false
}

func (l *loader) controlPlane(c *config) {
	var ok bool
	if c.destination, ok = l.svc(envDestinationSvc); !ok && !l.has(envDestinationSvc+"_ADDR") {
		l.fail(envDestinationSvc+"_ADDR", "%s_ADDR must be set: no destination service configured", envDestinationSvc)
	}
	if c.policy, ok = l.svc(envPolicySvc); !ok && !l.has(envPolicySvc+"_ADDR") {
		l.fail(envPolicySvc+"_ADDR", "%s_ADDR must be set: no policy service configured", envPolicySvc)
	}
	l.svc(envTraceCollectorSvc)
	if v, ok := l.get(envTapSvcName); ok {
		if _, err := parseIdentity(v); err != nil {
			l.invalid(envTapSvcName, v, err)
		}
	}
	if l.has(envPolicySvc + "_ADDR") {
		l.policyWorkload()
	}
	// The proxy passes the destination context on as an opaque token; the
	// destination controller reads it as JSON (linkerd2
	// controller/api/destination/server.go), so the stand-in insists.
	if v, ok := l.get(envDestinationContext); ok {
		var obj map[string]any
		if err := json.Unmarshal([]byte(v), &obj); err != nil {
			l.invalid(envDestinationContext, v, fmt.Errorf("not a JSON object: %w", err))
		}
	}
}

func (l *loader) has(name string) bool {
	_, ok := l.get(name)
	return ok
}

// policyWorkload checks LINKERD2_PROXY_POLICY_WORKLOAD. The proxy only
// requires it to be set with the policy address; the policy controller
// then parses it (linkerd2 policy-controller/grpc/src/workload.rs): a JSON
// object with "ns" and exactly one of "pod" or "external_workload", or the
// legacy "ns:pod" form. The stand-in checks what the controller would.
func (l *loader) policyWorkload() {
	v, ok := l.get(envPolicyWorkload)
	if !ok {
		l.fail(envPolicyWorkload, "%s must be set with %s_ADDR", envPolicyWorkload, envPolicySvc)
		return
	}
	if !strings.HasPrefix(v, "{") {
		ns, pod, found := strings.Cut(v, ":")
		if !found || ns == "" || pod == "" {
			l.invalid(envPolicyWorkload, v, errors.New(`want {"ns":"<namespace>","external_workload":"<name>"}`))
		}
		return
	}
	var w map[string]any
	if err := json.Unmarshal([]byte(v), &w); err != nil {
		l.invalid(envPolicyWorkload, v, fmt.Errorf("not JSON: %w", err))
		return
	}
	str := func(k string) (string, bool) { s, ok := w[k].(string); return s, ok && s != "" }
	_, hasNS := str("ns")
	_, hasEW := str("external_workload")
	_, hasPod := str("pod")
	switch {
	case !hasNS:
		l.invalid(envPolicyWorkload, v, errors.New(`"ns" must be a non-empty string`))
	case hasEW == hasPod:
		l.invalid(envPolicyWorkload, v, errors.New(`want exactly one of "external_workload" or "pod" as a non-empty string`))
	}
}

// inboundPolicy is parse_default_policy. Any policy other than deny,
// all-authenticated and all-unauthenticated needs cluster networks; in the
// proxy that guard comes before "audit" too, so audit needs them as well.
func (l *loader) inboundPolicy() {
	var nets []netip.Prefix
	if v, ok := l.get(envClusterNetworks); ok {
		var err error
		if nets, err = parseNetworks(v); err != nil {
			l.invalid(envClusterNetworks, v, err)
		}
	}
	v, ok := l.get(envInboundDefaultPolicy)
	if !ok {
		l.warnings = append(l.warnings, envInboundDefaultPolicy+" was not set; using `all-unauthenticated`")
		return
	}
	switch v {
	case "deny", "all-authenticated", "all-unauthenticated":
		return
	case "cluster-authenticated", "cluster-unauthenticated", "audit":
		if len(nets) == 0 {
			l.invalid(envInboundDefaultPolicy, v, fmt.Errorf("not a valid port policy: %s needs %s", v, envClusterNetworks))
		}
		return
	}
	l.invalid(envInboundDefaultPolicy, v, errors.New("not a valid port policy (want deny, all-authenticated, all-unauthenticated, cluster-authenticated, cluster-unauthenticated or audit)"))
}

// backoff is parse_backoff: all of MIN and MAX (JITTER optional) or none.
func (l *loader) backoff(base string) (expBackoff, bool) {
	minName := envPrefix + base + "_EXP_BACKOFF_MIN"
	maxName := envPrefix + base + "_EXP_BACKOFF_MAX"
	jitName := envPrefix + base + "_EXP_BACKOFF_JITTER"
	var lo, hi time.Duration
	var jitter float64
	minV, minOK := l.get(minName)
	maxV, maxOK := l.get(maxName)
	jitV, jitOK := l.get(jitName)
	bad := false
	if minOK {
		var err error
		if lo, err = parseDuration(minV); err != nil {
			l.invalid(minName, minV, err)
			bad = true
		}
	}
	if maxOK {
		var err error
		if hi, err = parseDuration(maxV); err != nil {
			l.invalid(maxName, maxV, err)
			bad = true
		}
	}
	if jitOK {
		var err error
		if jitter, err = strconv.ParseFloat(strings.TrimSpace(jitV), 64); err != nil || strings.TrimSpace(jitV) != jitV {
			l.invalid(jitName, jitV, errors.New("not a floating-point number"))
			bad = true
		}
	}
	switch {
	case bad:
		return expBackoff{}, false
	case !minOK && !maxOK && !jitOK:
		return defaultSPIREBackoff, base == spireBackoffBase
	case !minOK || !maxOK:
		l.fail(minName, "You need to specify either all of %s %s %s or none of them to use the default backoff", minName, maxName, jitName)
		return expBackoff{}, false
	}
	b, err := newExpBackoff(lo, hi, jitter)
	if err != nil {
		l.fail(minName, "%s, %s and %s: %v", minName, maxName, jitName, err)
		return expBackoff{}, false
	}
	return b, true
}

// identity checks the TLS parameters (parse_tls_params) and the identity
// mode (env/identity.rs parse_identity_config).
func (l *loader) identity(c *config) {
	idName, snName := envServerID, envServerName
	if l.has(envLocalName) {
		idName, snName = envLocalName, envLocalName
	}
	anchorsV, anchorsOK := l.get(envTrustAnchors)
	idV, idOK := l.get(idName)
	snV, snOK := l.get(snName)

	if anchorsOK {
		if anchorsV == "" {
			l.invalid(envTrustAnchors, anchorsV, errors.New("invalid trust anchors: empty"))
		} else if certs, err := parseTrustAnchors(anchorsV); err != nil {
			l.invalid(envTrustAnchors, anchorsV, fmt.Errorf("invalid trust anchors: %w", err))
		} else {
			c.anchors = certs
		}
	} else {
		l.fail(envTrustAnchors, "%s must be set.", envTrustAnchors)
	}
	var id identity
	if idOK {
		var err error
		if id, err = parseIdentity(idV); err != nil {
			l.invalid(idName, idV, err)
		}
	} else {
		l.fail(idName, "%s must be set.", idName)
	}
	if snOK {
		if err := checkDNSName(snV); err != nil {
			l.invalid(snName, snV, fmt.Errorf("not a valid identity name: %w", err))
		} else {
			c.serverName = snV
		}
	} else {
		l.fail(snName, "%s must be set.", snName)
	}
	if v, ok := l.get(envIdentityDisabled); ok && v != "" {
		l.fail(envIdentityDisabled, "%s is no longer supported. Identity is must be enabled.", envIdentityDisabled)
	}

	// The newer name wins; the older one is read when it is absent
	// (parse_deprecated).
	apiName := envSPIREWorkloadAPI
	apiV, apiOK := l.get(envSPIREWorkloadAPI)
	if !apiOK {
		apiName = envSPIRESocket
		if apiV, apiOK = l.get(envSPIRESocket); apiOK {
			l.warnings = append(l.warnings, fmt.Sprintf("%s has been deprecated; use %s", envSPIRESocket, envSPIREWorkloadAPI))
		}
	}
	if !apiOK {
		l.linkerdIdentity(idV, snV)
		return
	}
	if idOK && id.raw != "" && !id.isSPIFFE() {
		l.fail(idName, "%s=%s is not valid: Spire support requires a SPIFFE TLS Id (spiffe://...) because %s is set", idName, quote(idV), apiName)
		return
	}
	if id.isSPIFFE() {
		// Stricter than the proxy, which only checks the scheme (its TODO asks
		// for full SPIFFE ID validation): an ID SPIRE could never issue would
		// only leave the proxy waiting for an SVID that never comes.
		if _, err := spiffeid.FromString(idV); err != nil {
			l.invalid(idName, idV, fmt.Errorf("not a valid SPIFFE ID: %w", err))
		} else {
			c.serverID = idV
		}
	}
	path, err := workloadAPIPath(apiV)
	if err != nil {
		l.invalid(apiName, apiV, err)
		return
	}
	c.workloadAPI = path
}

// linkerdIdentity reports what the proxy needs without SPIRE (the Linkerd
// identity controller): the stand-in implements only SPIRE identity, so it
// refuses even when those are present.
func (l *loader) linkerdIdentity(idV, snV string) {
	for _, name := range []string{envIdentitySvc + "_ADDR", envIdentityDir, envIdentityTokenFile} {
		if !l.has(name) {
			l.fail(name, "%s must be set (or set %s for SPIRE identity).", name, envSPIREWorkloadAPI)
		}
	}
	if idV != "" && snV != "" && idV != snV {
		l.fail(envServerID, "%s and %s must match without SPIRE identity", envServerID, envServerName)
	}
	l.fail(envSPIREWorkloadAPI, "%s (or %s) must be set: the meshexp stand-in implements only SPIRE identity", envSPIREWorkloadAPI, envSPIRESocket)
}

// workloadAPIPath turns the proxy's Workload API address into a socket
// path. The proxy strips a "unix:" prefix and connects to the rest
// (linkerd/app/src/spire.rs), so "unix:///run/x.sock", "unix:/run/x.sock"
// and "/run/x.sock" all work. Another scheme would only fail at connect
// time in the proxy; the stand-in refuses it up front.
func workloadAPIPath(v string) (string, error) {
	p := strings.TrimPrefix(v, "unix:")
	if p == "" {
		return "", errors.New("empty Workload API address (want unix:///path/to/api.sock)")
	}
	if i := strings.Index(p, "://"); i > 0 && !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("only unix sockets are supported (want unix:///path/to/api.sock), not %q", p[:i])
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("resolving socket path: %w", err)
	}
	return abs, nil
}
