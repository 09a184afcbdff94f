//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/trust"
)

// spireBinDir finds spire-server and spire-agent as hack/install-spire.sh
// leaves them, or skips (fails under MESHEXP_REQUIRE_SPIRE, as in CI).
func spireBinDir(t *testing.T) string {
	t.Helper()
	skip := func(msg string) {
		if os.Getenv("MESHEXP_REQUIRE_SPIRE") != "" {
			t.Fatal(msg + "; MESHEXP_REQUIRE_SPIRE is set")
		}
		t.Skip("skipped: " + msg)
	}
	if os.Geteuid() != 0 {
		skip("needs root to run the stand-in as uid 2102 beside a real SPIRE agent")
	}
	dir := os.Getenv("MESHEXP_SPIRE_BIN_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "meshexp", "spire-v1.13.3")
	}
	for _, b := range []string{"spire-server", "spire-agent"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			skip(fmt.Sprintf("%s not found in %s (set MESHEXP_SPIRE_BIN_DIR to the directory hack/install-spire.sh prints)", b, dir))
		}
	}
	return dir
}

// daemon starts a long-running command, killed by pid in t.Cleanup.
func daemon(t *testing.T, name string, args ...string) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	// A daemon that ends before the test says how (a SIGKILL leaves no
	// line in its own output).
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case err := <-done:
			t.Errorf("%s ended before the test did: %v", filepath.Base(name), err)
		default:
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), out.String())
		}
	})
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestARealSPIREAgentsSVIDMakesTheStandinReady runs the demo's SPIRE shape
// (server with the trust anchor as its disk UpstreamAuthority, agent joined
// by token, an entry for uid 2102) and the stand-in as uid 2102: the SVID a
// real agent hands out must verify against the anchor alone.
func TestARealSPIREAgentsSVIDMakesTheStandinReady(t *testing.T) {
	bin := spireBinDir(t)
	dir, err := os.MkdirTemp("", "mxsp") // short: socket paths must fit 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	sockDir := filepath.Join(dir, "public")
	if err := os.Mkdir(sockDir, 0o755); err != nil { // before SPIRE, whose umask is 0027
		t.Fatal(err)
	}
	root, err := trust.NewRoot(trust.DefaultTrustDomain, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caCrt, caKey := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := root.WriteFiles(caCrt, caKey); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	serverSock := filepath.Join(dir, "server.sock")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serverConf := write("server.conf", fmt.Sprintf(`server {
  bind_address = "127.0.0.1"
  bind_port = "%d"
  socket_path = %q
  trust_domain = "root.linkerd.cluster.local"
  data_dir = %q
  log_level = "WARN"
  ca_ttl = "24h"
  default_x509_svid_ttl = "1h"
  experimental { cache_reload_interval = "1s" }
}
plugins {
  DataStore "sql" { plugin_data { database_type = "sqlite3"
    connection_string = %q } }
  KeyManager "memory" { plugin_data {} }
  NodeAttestor "join_token" { plugin_data {} }
  UpstreamAuthority "disk" { plugin_data { cert_file_path = %q
    key_file_path = %q } }
}
`, port, serverSock, filepath.Join(dir, "server-data"), filepath.Join(dir, "ds.sqlite3"), caCrt, caKey))
	apiSock := filepath.Join(sockDir, "api.sock")
	agentConf := write("agent.conf", fmt.Sprintf(`agent {
  data_dir = %q
  log_level = "WARN"
  server_address = "127.0.0.1"
  server_port = "%d"
  socket_path = %q
  trust_bundle_path = %q
  trust_domain = "root.linkerd.cluster.local"
  experimental { sync_interval = "1s" }
}
plugins {
  NodeAttestor "join_token" { plugin_data {} }
  KeyManager "memory" { plugin_data {} }
  WorkloadAttestor "unix" { plugin_data {} }
}
`, filepath.Join(dir, "agent-data"), port, apiSock, caCrt))

	server := filepath.Join(bin, "spire-server")
	daemon(t, server, "run", "-config", serverConf)
	spire := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		out, err := exec.CommandContext(ctx, server, append(args, "-socketPath", serverSock)...).CombinedOutput()
		if err != nil {
			t.Fatalf("spire-server %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	eventually.True(t, "spire-server to be healthy", func() bool {
		return exec.Command(server, "healthcheck", "-socketPath", serverSock).Run() == nil
	})
	tokenOut := spire("token", "generate", "-spiffeID", "spiffe://root.linkerd.cluster.local/agent")
	m := regexp.MustCompile(`Token: (\S+)`).FindStringSubmatch(tokenOut)
	if m == nil {
		t.Fatalf("no token in %q", tokenOut)
	}
	spire("entry", "create", "-parentID", "spiffe://root.linkerd.cluster.local/agent", "-spiffeID", webID,
		"-selector", fmt.Sprintf("unix:uid:%d", meshexpProxyUID))

	agentStart := time.Now()
	daemon(t, filepath.Join(bin, "spire-agent"), "run", "-config", agentConf, "-joinToken", m[1])

	env := runnableEnv(t, root.CertPEM, "unix://"+apiSock)
	p := start(t, env, func(c *exec.Cmd) error {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: meshexpProxyUID, Gid: meshexpProxyUID}}
		return c.Start()
	})
	admin := "http://" + p.addr("Admin")
	eventually.True(t, "/ready with an SVID from the real SPIRE agent", func() bool { return isReady(t, admin) })
	t.Logf("agent start → stand-in ready: %v", time.Since(agentStart).Round(time.Millisecond))
	p.logLine("Certified identity id=" + webID)
	if code := p.terminate(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}
