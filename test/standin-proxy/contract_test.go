package main

import (
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/standin"
)

func set(name, value string) func(map[string]string) {
	return func(e map[string]string) { e[name] = value }
}

func unset(names ...string) func(map[string]string) {
	return func(e map[string]string) {
		for _, n := range names {
			delete(e, n)
		}
	}
}

func both(fs ...func(map[string]string)) func(map[string]string) {
	return func(e map[string]string) {
		for _, f := range fs {
			f(e)
		}
	}
}

// refusals are environments the real proxy refuses (or, where noted in the
// stand-in's source, that the stand-in refuses more strictly); each must
// name the variable at fault.
var refusals = []struct {
	name   string
	change func(map[string]string)
	want   string // the variable named
	text   string // and something of the reason
}{
	{"a missing destination address is refused", unset("LINKERD2_PROXY_DESTINATION_SVC_ADDR", "LINKERD2_PROXY_DESTINATION_SVC_NAME"), "LINKERD2_PROXY_DESTINATION_SVC_ADDR", "must be set"},
	{"a destination address without its identity name is refused", unset("LINKERD2_PROXY_DESTINATION_SVC_NAME"), "LINKERD2_PROXY_DESTINATION_SVC_ADDR", "must be specified together"},
	{"a destination identity name without an address is refused", unset("LINKERD2_PROXY_DESTINATION_SVC_ADDR"), "LINKERD2_PROXY_DESTINATION_SVC_ADDR", "must be specified together"},
	{"a destination address without a port is refused", set("LINKERD2_PROXY_DESTINATION_SVC_ADDR", "linkerd-dst-headless.linkerd.svc.cluster.local."), "LINKERD2_PROXY_DESTINATION_SVC_ADDR", "missing port"},
	{"a destination address with a bad host is refused", set("LINKERD2_PROXY_DESTINATION_SVC_ADDR", "linkerd dst:8086"), "LINKERD2_PROXY_DESTINATION_SVC_ADDR", "not a valid"},
	{"a destination identity that is not a DNS name is refused", set("LINKERD2_PROXY_DESTINATION_SVC_NAME", "linkerd destination"), "LINKERD2_PROXY_DESTINATION_SVC_NAME", "not a valid DNS name"},
	{"a missing policy address is refused", unset("LINKERD2_PROXY_POLICY_SVC_ADDR", "LINKERD2_PROXY_POLICY_SVC_NAME"), "LINKERD2_PROXY_POLICY_SVC_ADDR", "must be set"},
	{"a policy address without its identity name is refused", unset("LINKERD2_PROXY_POLICY_SVC_NAME"), "LINKERD2_PROXY_POLICY_SVC_ADDR", "must be specified together"},
	{"a policy address without the policy workload is refused", unset("LINKERD2_PROXY_POLICY_WORKLOAD"), "LINKERD2_PROXY_POLICY_WORKLOAD", "must be set"},
	{"a policy workload that is not JSON is refused", set("LINKERD2_PROXY_POLICY_WORKLOAD", `{"ns":"mixed-env",`), "LINKERD2_PROXY_POLICY_WORKLOAD", "not JSON"},
	{"a policy workload without a namespace is refused", set("LINKERD2_PROXY_POLICY_WORKLOAD", `{"external_workload":"web"}`), "LINKERD2_PROXY_POLICY_WORKLOAD", `"ns"`},
	{"a policy workload naming no workload is refused", set("LINKERD2_PROXY_POLICY_WORKLOAD", `{"ns":"mixed-env"}`), "LINKERD2_PROXY_POLICY_WORKLOAD", "exactly one"},
	{"a policy workload naming a pod and an external workload is refused", set("LINKERD2_PROXY_POLICY_WORKLOAD", `{"ns":"a","pod":"p","external_workload":"w"}`), "LINKERD2_PROXY_POLICY_WORKLOAD", "exactly one"},
	{"a policy workload in neither form is refused", set("LINKERD2_PROXY_POLICY_WORKLOAD", "web"), "LINKERD2_PROXY_POLICY_WORKLOAD", "external_workload"},
	{"a destination context that is not JSON is refused", set("LINKERD2_PROXY_DESTINATION_CONTEXT", "ns=mixed-env"), "LINKERD2_PROXY_DESTINATION_CONTEXT", "JSON"},
	{"an inbound listen address with a host name is refused", set("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "localhost:4143"), "LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "host is not an IP address"},
	{"an outbound listen address without a port is refused", set("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", "127.0.0.1"), "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", "not a valid address"},
	{"an admin listen address with a port out of range is refused", set("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "0.0.0.0:99999"), "LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "not a valid"},
	{"a control listen address that is not an address is refused", set("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", "tap"), "LINKERD2_PROXY_CONTROL_LISTEN_ADDR", "not a valid address"},
	{"three outbound listen addresses are refused", set("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS", "127.0.0.1:0,[::1]:0,127.0.0.2:0"), "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS", "only two addresses"},
	{"a duration without a unit is refused", set("LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT", "100"), "LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT", "needs a unit"},
	{"a fractional duration is refused", set("LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT", "1.5s"), "LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT", "not a valid duration"},
	{"a duration with a space before its unit is refused", set("LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE", "10 s"), "LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE", "not a valid duration"},
	{"a duration in years is refused", set("LINKERD2_PROXY_CONTROL_STREAM_LIFETIME", "1y"), "LINKERD2_PROXY_CONTROL_STREAM_LIFETIME", "not a valid duration"},
	{"a Go-style compound duration is refused", set("LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "1m30s"), "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "not a valid duration"},
	{"an initial control stream timeout above the idle timeout is refused", set("LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT", "10m"), "LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT", "must be less than"},
	{"a backwards port range is refused", set("LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION", "25,80-79"), "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION", "not a valid port range"},
	{"a named port is refused", set("LINKERD2_PROXY_INBOUND_PORTS", "80,http"), "LINKERD2_PROXY_INBOUND_PORTS", "not a valid port range"},
	{"a port above 65535 is refused", set("LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION", "69420"), "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION", "not a valid port range"},
	{"a half-open port range is refused", set("LINKERD2_PROXY_INBOUND_PORTS", "1,2-,50"), "LINKERD2_PROXY_INBOUND_PORTS", "not a valid port range"},
	{"a cluster network without a prefix length is refused", set("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", "10.0.0.0,fd00::/8"), "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", "not a valid subnet mask"},
	{"a profile network with a prefix too long is refused", set("LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS", "10.0.0.0/33"), "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS", "not a valid subnet mask"},
	{"a profile suffix with a space is refused", set("LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES", "svc .cluster.local."), "LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES", "not a valid DNS domain suffix"},
	{"an empty inbound IP allowlist is refused, as the proxy does", set("LINKERD2_PROXY_INBOUND_IPS", ""), "LINKERD2_PROXY_INBOUND_IPS", "not a valid IP address"},
	{"an unknown default inbound policy is refused", set("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "allow"), "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "not a valid port policy"},
	{"a cluster-scoped default policy without cluster networks is refused", both(set("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "cluster-authenticated"), unset("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS")), "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "needs LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"},
	{"the audit default policy with empty cluster networks is refused, as the proxy does", both(set("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "audit"), set("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", "")), "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "needs LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"},
	{"a DNS server ID with SPIRE identity is refused", set("LINKERD2_PROXY_IDENTITY_SERVER_ID", "web.cluster.local"), "LINKERD2_PROXY_IDENTITY_SERVER_ID", "requires a SPIFFE TLS Id"},
	{"an https server ID with SPIRE identity is refused", set("LINKERD2_PROXY_IDENTITY_SERVER_ID", "https://root.linkerd.cluster.local/web"), "LINKERD2_PROXY_IDENTITY_SERVER_ID", "requires a SPIFFE TLS Id"},
	{"a SPIFFE server ID without a trust domain is refused", set("LINKERD2_PROXY_IDENTITY_SERVER_ID", "spiffe:///web"), "LINKERD2_PROXY_IDENTITY_SERVER_ID", "not a valid"},
	{"a SPIFFE server ID with an upper-case trust domain is refused", set("LINKERD2_PROXY_IDENTITY_SERVER_ID", "spiffe://Root.Linkerd.cluster.local/web"), "LINKERD2_PROXY_IDENTITY_SERVER_ID", "not a valid SPIFFE ID"},
	{"a missing server ID is refused", unset("LINKERD2_PROXY_IDENTITY_SERVER_ID"), "LINKERD2_PROXY_IDENTITY_SERVER_ID", "must be set"},
	{"a missing server name is refused", unset("LINKERD2_PROXY_IDENTITY_SERVER_NAME"), "LINKERD2_PROXY_IDENTITY_SERVER_NAME", "must be set"},
	{"a server name that is not a DNS name is refused", set("LINKERD2_PROXY_IDENTITY_SERVER_NAME", "web cluster"), "LINKERD2_PROXY_IDENTITY_SERVER_NAME", "not a valid identity name"},
	{"a server name with a label starting with a hyphen is refused", set("LINKERD2_PROXY_IDENTITY_SERVER_NAME", "-web.cluster.local"), "LINKERD2_PROXY_IDENTITY_SERVER_NAME", "hyphen"},
	{"missing trust anchors are refused", unset("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"), "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "must be set"},
	{"empty trust anchors are refused", set("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", ""), "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "invalid trust anchors"},
	{"trust anchors that are not PEM are refused", set("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "ca.crt"), "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "no PEM CERTIFICATE block"},
	{"a private key given as trust anchors is refused", set("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "want CERTIFICATE"},
	{"no Workload API address is refused: the stand-in implements only SPIRE identity", unset("LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET"), "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS", "must be set"},
	{"a TCP Workload API address is refused", set("LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET", "tcp://127.0.0.1:8081"), "LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET", "only unix sockets"},
	{"an empty Workload API address is refused", set("LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS", "unix:"), "LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS", "empty"},
	{"disabling identity is refused", set("LINKERD2_PROXY_IDENTITY_DISABLED", "true"), "LINKERD2_PROXY_IDENTITY_DISABLED", "no longer supported"},
	{"a shutdown endpoint switch that is not true or false is refused", set("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "yes"), "LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "not a boolean"},
	{"a negative queue capacity is refused", set("LINKERD2_PROXY_INBOUND_HTTP_QUEUE_CAPACITY", "-1"), "LINKERD2_PROXY_INBOUND_HTTP_QUEUE_CAPACITY", "not an integer"},
	{"an HTTP/2 window beyond 32 bits is refused", set("LINKERD2_PROXY_HTTP2_INITIAL_STREAM_WINDOW_SIZE", "4294967296"), "LINKERD2_PROXY_HTTP2_INITIAL_STREAM_WINDOW_SIZE", "not an integer"},
	{"a SPIRE backoff minimum without a maximum is refused", set("LINKERD2_PROXY_LINKERD2_PROXY_IDENTITY_SPIRE_EXP_BACKOFF_MIN", "100ms"), "LINKERD2_PROXY_LINKERD2_PROXY_IDENTITY_SPIRE_EXP_BACKOFF_MIN", "either all of"},
	{"a connect backoff whose minimum exceeds its maximum is refused", both(set("LINKERD2_PROXY_OUTBOUND_CONNECT_EXP_BACKOFF_MIN", "2s"), set("LINKERD2_PROXY_OUTBOUND_CONNECT_EXP_BACKOFF_MAX", "1s")), "LINKERD2_PROXY_OUTBOUND_CONNECT_EXP_BACKOFF_MIN", "maximum must not be less than minimum"},
	{"a backoff jitter that is not a number is refused", both(set("LINKERD2_PROXY_INBOUND_CONNECT_EXP_BACKOFF_MIN", "1s"), set("LINKERD2_PROXY_INBOUND_CONNECT_EXP_BACKOFF_MAX", "2s"), set("LINKERD2_PROXY_INBOUND_CONNECT_EXP_BACKOFF_JITTER", "ten")), "LINKERD2_PROXY_INBOUND_CONNECT_EXP_BACKOFF_JITTER", "not a floating-point number"},
}

func TestEnvironmentsTheProxyRefusesAreRefusedNamingTheVariable(t *testing.T) {
	standin.Build(t)
	ca := standin.NewCA(t)
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := runnableEnv(t, ca.RootPEM(), "unix:///nonexistent/api.sock")
			tc.change(env)
			code, out := runToExit(t, env)
			if code != exitUsage {
				t.Fatalf("exit status %d, want %d (EX_USAGE, as linkerd2-proxy); output:\n%s", code, exitUsage, out)
			}
			var named string
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, " ERROR ") && strings.Contains(line, tc.want) {
					named = line
					break
				}
			}
			if named == "" {
				t.Fatalf("no error line names %s; output:\n%s", tc.want, out)
			}
			if !strings.Contains(named, tc.text) {
				t.Errorf("the error naming %s does not say %q: %s", tc.want, tc.text, named)
			}
			if !strings.Contains(out, "Invalid configuration: invalid environment variable") {
				t.Errorf("missing the proxy's closing message; output:\n%s", out)
			}
		})
	}
}

func TestEveryDurationVariableUsesTheProxysFormat(t *testing.T) {
	standin.Build(t)
	ca := standin.NewCA(t)
	env := runnableEnv(t, ca.RootPEM(), "unix:///nonexistent/api.sock")
	for _, name := range durationVars {
		env[name] = "2.5s"
	}
	code, out := runToExit(t, env)
	if code != exitUsage {
		t.Fatalf("exit status %d, want %d; output:\n%s", code, exitUsage, out)
	}
	for _, name := range durationVars {
		if !strings.Contains(out, name+`="2.5s" is not valid`) {
			t.Errorf("%s=2.5s was not reported", name)
		}
	}
}

func TestEveryProblemIsReportedInOneRun(t *testing.T) {
	env := map[string]string{
		envInboundListenAddr:   "localhost:4143",
		envServerName:          "web cluster",
		"LINKERD2_PROXY_LOG":   "info",
		"LINKERD2_PROXY_CORES": "1",
	}
	code, out := runToExit(t, env)
	if code != exitUsage {
		t.Fatalf("exit status %d, want %d; output:\n%s", code, exitUsage, out)
	}
	for _, want := range []string{envInboundListenAddr, "LINKERD2_PROXY_DESTINATION_SVC_ADDR", "LINKERD2_PROXY_POLICY_SVC_ADDR",
		envTrustAnchors, envServerID, envServerName, envSPIREWorkloadAPI} {
		if !strings.Contains(out, want) {
			t.Errorf("%s is not named; output:\n%s", want, out)
		}
	}
}

// acceptances start and then stop on SIGTERM: each is an environment the
// proxy accepts.
var acceptances = []struct {
	name   string
	change func(map[string]string)
}{
	{"meshexp's default environment is accepted", func(map[string]string) {}},
	{"a loopback destination address needs no identity name", both(set("LINKERD2_PROXY_DESTINATION_SVC_ADDR", "127.0.0.1:8086"), unset("LINKERD2_PROXY_DESTINATION_SVC_NAME"))},
	{"localhost. as the policy address needs no identity name", both(set("LINKERD2_PROXY_POLICY_SVC_ADDR", "localhost.:8090"), unset("LINKERD2_PROXY_POLICY_SVC_NAME"))},
	{"the newer Workload API variable is accepted in place of the older", func(e map[string]string) {
		e[envSPIREWorkloadAPI] = e[envSPIRESocket]
		delete(e, envSPIRESocket)
	}},
	{"a bare socket path is accepted as the proxy strips only unix:", func(e map[string]string) {
		e[envSPIRESocket] = strings.TrimPrefix(e[envSPIRESocket], "unix://")
	}},
	{"cluster-unauthenticated with cluster networks is accepted", set("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "cluster-unauthenticated")},
	{"audit with cluster networks is accepted", set("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "audit")},
	{"deny without cluster networks is accepted", both(set("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "deny"), unset("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"))},
	{"empty control stream limits mean unset", both(set(envControlInitTimeout, ""), set(envControlIdleTimeout, ""), set(envControlLifetime, ""))},
	{"a zero duration without a unit is accepted", set("LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT", "0")},
	{"durations in days are accepted", set("LINKERD2_PROXY_CONTROL_STREAM_LIFETIME", "1d")},
	{"port lists with spaces and empty items are accepted", set("LINKERD2_PROXY_INBOUND_PORTS", " 80, ,8080-8090,")},
	{"an empty inbound port list is accepted", set("LINKERD2_PROXY_INBOUND_PORTS", "")},
	{"the legacy ns:pod policy workload is accepted", set("LINKERD2_PROXY_POLICY_WORKLOAD", "mixed-env:web-0")},
	{"two outbound listen addresses are accepted", set("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS", "127.0.0.1:0,127.0.0.2:0")},
	{"a full SPIRE backoff is accepted under the proxy's doubled name", both(set("LINKERD2_PROXY_LINKERD2_PROXY_IDENTITY_SPIRE_EXP_BACKOFF_MIN", "50ms"), set("LINKERD2_PROXY_LINKERD2_PROXY_IDENTITY_SPIRE_EXP_BACKOFF_MAX", "500ms"))},
}

func TestEnvironmentsTheProxyAcceptsStart(t *testing.T) {
	standin.Build(t)
	ca := standin.NewCA(t)
	for _, tc := range acceptances {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := runnableEnv(t, ca.RootPEM(), "unix://"+standin.SocketPath(t))
			tc.change(env)
			p := start(t, env, nil)
			p.addr("Admin")
			if code := p.terminate(); code != 0 {
				t.Fatalf("exit status %d after SIGTERM, want 0", code)
			}
			if out := p.out.String(); strings.Contains(out, " ERROR ") {
				t.Errorf("errors logged for an accepted environment:\n%s", out)
			}
		})
	}
}

// default.env's trust anchors are a placeholder ("MIIBfixture") that keeps
// proxyenv's golden file stable; everything else in it is what meshexp
// really renders. The only thing the stand-in may object to is the
// placeholder; with real anchors (and ports free on this host) it starts.
func TestMeshexpsRenderedEnvironmentMeetsTheContract(t *testing.T) {
	env := defaultEnv(t)
	for _, name := range []string{envInboundListenAddr, envOutboundListenAddr, envAdminListenAddr, envControlListenAddr} {
		env[name] = "127.0.0.1:0"
	}
	env[envSPIRESocket] = "unix://" + standin.SocketPath(t)

	code, out := runToExit(t, env)
	if code != exitUsage {
		t.Fatalf("the placeholder anchors were accepted (exit %d); output:\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " ERROR ") && !strings.Contains(line, envTrustAnchors+"=") {
			t.Errorf("default.env has a problem besides the placeholder anchors: %s", line)
		}
	}

	env[envTrustAnchors] = string(standin.NewCA(t).RootPEM())
	p := start(t, env, nil)
	p.addr("Admin")
	if code := p.terminate(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	if strings.Contains(p.out.String(), " ERROR ") {
		t.Errorf("errors logged for meshexp's default environment:\n%s", p.out.String())
	}
}
