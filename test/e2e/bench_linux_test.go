//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkStartToProxyReady compares start → proxy /ready for meshexp and
// for the demo's own method (fixed sleeps, SPIRE CLI, default SPIRE
// intervals) with the same SPIRE binaries, stand-in proxy and namespaces.
// It reports seconds per start (the mean) and, for meshexp, its
// steady-state RSS. "meshexp" starts cold every time (a fresh data dir, as
// on a new host); "meshexp-warm-restart" restarts on the same host after a
// clean shutdown, with SPIRE's kept state (server keys, datastore, agent
// SVID).
//
//	sudo MESHEXP_SPIRE_BIN_DIR=… go test -run '^$' -bench StartToProxyReady -benchtime 3x ./test/e2e
func BenchmarkStartToProxyReady(b *testing.B) {
	// meshexp's admin endpoint is on by default; admin-off runs the same
	// binary with it off, so the two MiB-rss figures side by side are the
	// endpoint's cost at run time. The endpoint writes its text by hand
	// (internal/admin/metrics.go): with prometheus/client_golang v1.25.0
	// this benchmark measured 26.3 MiB on against 24.6 MiB for the binary
	// before the endpoint.
	for _, v := range []struct{ name, env string }{{"meshexp", ""}, {"meshexp-admin-off", "MESHEXP_STATUS_ADDR=off"}} {
		b.Run(v.name, func(b *testing.B) {
			var rss, anon, total float64
			for i := 0; i < b.N; i++ {
				var env []string
				if v.env != "" {
					env = append(env, v.env)
				}
				h := newHost(b, env...)
				total += h.startToReady()
				// Steady state: identity, rules, proxy and workload are up,
				// and /metrics has been scraped once.
				time.Sleep(2 * time.Second)
				if v.env == "" {
					if _, err := h.get("http://127.0.0.1:4192/metrics"); err != nil {
						b.Fatalf("scrape /metrics: %v", err)
					}
				}
				rss = max(rss, statusMiB(h.cmd.Process.Pid, "VmRSS:"))
				anon = max(anon, statusMiB(h.cmd.Process.Pid, "RssAnon:"))
				h.signal(15)
				h.wait(60 * time.Second)
			}
			b.ReportMetric(total/float64(b.N), "s/ready")
			b.ReportMetric(rss, "MiB-rss")
			// Heap and stacks; the rest of the RSS is the binary's own pages.
			b.ReportMetric(anon, "MiB-anon")
		})
	}
	b.Run("meshexp-warm-restart", func(b *testing.B) {
		h := newHost(b)
		h.startToReady() // the first start on this host is cold
		var total float64
		for i := 0; i < b.N; i++ {
			h.stopWhenRunning()
			total += h.startToReady()
		}
		b.ReportMetric(total/float64(b.N), "s/ready")
		h.stopWhenRunning()
	})
	b.Run("demo-method", func(b *testing.B) {
		var total float64
		for i := 0; i < b.N; i++ {
			d := newHost(b)
			begin := time.Now()
			d.runDemoMethod(b)
			total += time.Since(begin).Seconds()
		}
		b.ReportMetric(total/float64(b.N), "s/ready")
	})
}

// stopWhenRunning waits until the workload answers (every phase has run),
// then stops meshexp with SIGTERM and waits for a clean exit.
func (h *host) stopWhenRunning() {
	h.waitFor("the workload to answer on :8000", 120*time.Second, func() error {
		_, err := h.get("http://127.0.0.1:8000/whoami")
		return err
	})
	h.signal(15)
	if code := h.wait(60 * time.Second); code != 0 {
		h.t.Fatalf("meshexp exited %d on SIGTERM", code)
	}
}

// startToReady starts meshexp bootstrap and returns the seconds until the
// proxy's /ready answers.
func (h *host) startToReady() float64 {
	begin := time.Now()
	h.startNoWait()
	h.waitFor("the proxy's /ready", 120*time.Second, func() error {
		_, err := h.get("http://127.0.0.1:4191/ready")
		return err
	})
	return time.Since(begin).Seconds()
}

// statusMiB reads a kB field of /proc/PID/status, in MiB.
func statusMiB(pid int, field string) float64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, field) {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// runDemoMethod does what the demo's bootstrap and run-proxy scripts do,
// in order, with their sleeps: SPIRE server signing with the root, sleep
// 10, join token from the CLI, agent with the token on its command line,
// sleep 20, entry for uid 0 from the CLI, workload, nine iptables calls,
// then the proxy as root; it returns when the proxy is ready.
func (h *host) runDemoMethod(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	spireBin := os.Getenv("MESHEXP_SPIRE_BIN_DIR")
	dir := filepath.Join(h.base, "demo")
	for _, d := range []string{dir, filepath.Join(dir, "server"), filepath.Join(dir, "agent")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	certs := filepath.Join(h.base, "certs")
	serverSock := filepath.Join(dir, "server.sock")
	agentSock := filepath.Join(dir, "agent.sock")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	serverConf := write("server.conf", fmt.Sprintf(`server {
  bind_address = "127.0.0.1"
  bind_port = "8081"
  socket_path = %q
  trust_domain = "root.linkerd.cluster.local"
  data_dir = %q
  log_level = "WARN"
  ca_ttl = "168h"
  default_x509_svid_ttl = "48h"
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3" connection_string = %q } }
  KeyManager "disk" { plugin_data { keys_path = %q } }
  NodeAttestor "join_token" { plugin_data {} }
  UpstreamAuthority "disk" { plugin_data { cert_file_path = %q key_file_path = %q } }
}
`, serverSock, filepath.Join(dir, "server"), filepath.Join(dir, "server", "ds.sqlite3"), filepath.Join(dir, "server", "keys.json"),
		filepath.Join(certs, "ca.crt"), filepath.Join(certs, "ca.key")))
	agentConf := write("agent.conf", fmt.Sprintf(`agent {
  data_dir = %q
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "8081"
  socket_path = %q
  insecure_bootstrap = true
  trust_domain = "root.linkerd.cluster.local"
}
plugins {
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "disk" { plugin_data { directory = %q } }
  WorkloadAttestor "unix" { plugin_data {} }
}
`, filepath.Join(dir, "agent"), agentSock, filepath.Join(dir, "agent")))

	start := func(name string, args ...string) {
		cmd := h.pair.NS.Command(ctx, name, args...)
		cmd.Stdout, cmd.Stderr = h.logs, h.logs
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	run := func(name string, args ...string) string {
		out, err := h.pair.NS.Command(ctx, name, args...).CombinedOutput()
		if err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}

	start(filepath.Join(spireBin, "spire-server"), "run", "-config", serverConf)
	time.Sleep(10 * time.Second)
	tok := run(filepath.Join(spireBin, "spire-server"), "token", "generate", "-socketPath", serverSock,
		"-spiffeID", "spiffe://root.linkerd.cluster.local/agent")
	token := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(tok), "Token:"))
	start(filepath.Join(spireBin, "spire-agent"), "run", "-config", agentConf, "-joinToken", token)
	time.Sleep(20 * time.Second)
	run(filepath.Join(spireBin, "spire-server"), "entry", "create", "-socketPath", serverSock,
		"-parentID", "spiffe://root.linkerd.cluster.local/agent",
		"-spiffeID", "spiffe://root.linkerd.cluster.local/web", "-selector", "unix:uid:0")
	start(bins.workload)
	for _, rule := range [][]string{
		{"-t", "nat", "-N", "PROXY_INIT_REDIRECT"},
		{"-t", "nat", "-A", "PROXY_INIT_REDIRECT", "-p", "tcp", "--match", "multiport", "--dports", "4190,4191,4567,4568", "-j", "RETURN"},
		{"-t", "nat", "-A", "PROXY_INIT_REDIRECT", "-p", "tcp", "-j", "REDIRECT", "--to-port", "4143"},
		{"-t", "nat", "-A", "PREROUTING", "-j", "PROXY_INIT_REDIRECT"},
		{"-t", "nat", "-N", "PROXY_INIT_OUTPUT"},
		{"-t", "nat", "-A", "PROXY_INIT_OUTPUT", "-m", "owner", "--uid-owner", "0", "-j", "RETURN"},
		{"-t", "nat", "-A", "PROXY_INIT_OUTPUT", "-o", "lo", "-j", "RETURN"},
		{"-t", "nat", "-A", "PROXY_INIT_OUTPUT", "-p", "tcp", "--match", "multiport", "--dports", "443,6443", "-j", "RETURN"},
		{"-t", "nat", "-A", "PROXY_INIT_OUTPUT", "-p", "tcp", "-j", "REDIRECT", "--to-port", "4140"},
		{"-t", "nat", "-A", "OUTPUT", "-j", "PROXY_INIT_OUTPUT"},
	} {
		run("iptables", rule...)
	}
	anchors, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err != nil {
		b.Fatal(err)
	}
	proxy := h.pair.NS.Command(ctx, bins.proxy)
	proxy.Env = demoProxyEnv(agentSock, string(anchors))
	var out bytes.Buffer
	proxy.Stdout, proxy.Stderr = &out, &out
	if err := proxy.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { proxy.Process.Kill(); proxy.Wait() })
	deadline := time.Now().Add(120 * time.Second)
	for {
		if _, err := h.get("http://127.0.0.1:4191/ready"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("demo method: proxy not ready after 120s:\n%s\n%s", out.String(), h.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// demoProxyEnv is the demo's run-proxy environment (docs/DESIGN.md).
func demoProxyEnv(sock, anchors string) []string {
	return []string{
		"LINKERD2_PROXY_LOG=warn", "LINKERD2_PROXY_LOG_FORMAT=plain",
		"LINKERD2_PROXY_DESTINATION_SVC_ADDR=linkerd-dst-headless.linkerd.svc.cluster.local.:8086",
		"LINKERD2_PROXY_DESTINATION_SVC_NAME=linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
		"LINKERD2_PROXY_POLICY_SVC_ADDR=linkerd-policy.linkerd.svc.cluster.local.:8090",
		"LINKERD2_PROXY_POLICY_SVC_NAME=linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
		`LINKERD2_PROXY_POLICY_WORKLOAD={"ns":"e2e", "external_workload":"web"}`,
		`LINKERD2_PROXY_DESTINATION_CONTEXT={"ns":"e2e", "nodeName":"vm-1", "external_workload":"web"}`,
		"LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS=10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16",
		"LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS=10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16",
		"LINKERD2_PROXY_INBOUND_DEFAULT_POLICY=all-unauthenticated",
		"LINKERD2_PROXY_CONTROL_LISTEN_ADDR=0.0.0.0:4190", "LINKERD2_PROXY_ADMIN_LISTEN_ADDR=0.0.0.0:4191",
		"LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR=127.0.0.1:4140", "LINKERD2_PROXY_INBOUND_LISTEN_ADDR=0.0.0.0:4143",
		"LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS=" + anchors,
		"LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET=unix://" + sock,
		"LINKERD2_PROXY_IDENTITY_SERVER_ID=spiffe://root.linkerd.cluster.local/web",
		"LINKERD2_PROXY_IDENTITY_SERVER_NAME=web.cluster.local",
	}
}
