//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/identity"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/spire"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
	"github.com/meshexp/meshexp/internal/trust"
)

// TestSoakExternal: a host whose agent joins a SPIRE server in the peer
// namespace, registered with a real API server, while the server restarts,
// is unreachable for longer than half an SVID's life and changes its trust
// bundle. TestSoakExternalExpiry keeps the server away until the SVID
// expires, on a host of its own, beside it.
func TestSoakExternal(t *testing.T) {
	t.Parallel() // mostly waiting for certificates to age: see doc.go
	h, xs, _, _ := startExternalHost(t)
	s := h.soak(t, soakExternalSVIDTTL)

	s.steady(t, soakSteady(t))
	s.fault(t, "restart of the external SPIRE server", func(t *testing.T) {
		xs.stop(t)
		xs.start(t)
	})
	s.fault(t, "the external server unreachable for longer than half an SVID's life", func(t *testing.T) {
		h.waitForSwap(t, soakExternalSVIDTTL) // cut just after a rotation: the SVID has its whole life ahead
		xs.cut(t)
		// Half the lifetime and 2s more; what is left covers the agent's
		// reconnection (see soakExternalSVIDTTL).
		time.Sleep(soakExternalSVIDTTL/2 + 2*time.Second)
		xs.restore(t)
	})
	s.fault(t, "a trust bundle change on the server", func(t *testing.T) {
		before := h.swaps(t).Repeats
		xs.addRoot(t)
		h.waitFor("the new bundle to reach the proxy", 2*soakExternalSVIDTTL, func() error {
			if r := h.swaps(t).Repeats; r == before {
				return fmt.Errorf("no Workload API update with the new bundle yet")
			}
			return nil
		})
	})
	s.finish(t)
}

// TestSoakExternalExpiry: the external server away until the SVID expires
// withdraws readiness, says so, and both come back with the server; the
// traffic runs throughout and recovers.
func TestSoakExternalExpiry(t *testing.T) {
	t.Parallel() // mostly waiting for certificates to age: see doc.go
	h, xs, admin, w := startExternalHost(t)
	s := h.soak(t, soakExternalSVIDTTL)
	t.Run("the server away until the SVID expires", func(t *testing.T) {
		h.waitForSwap(t, soakExternalSVIDTTL)
		cut := time.Now()
		xs.cut(t)
		h.waitFor("Ready=False IdentityExpired", 3*soakExternalSVIDTTL, func() error {
			return readyIs(admin, w, "False", identity.ReasonIdentityExpired)
		})
		withdrawn := time.Since(cut)
		xs.restore(t)
		restored := time.Now()
		h.waitFor("Ready=True again", 3*soakExternalSVIDTTL, func() error { return readyIs(admin, w, "True", "") })
		s.svidGapExcused = time.Now()
		rep := h.swaps(t)
		t.Logf("readiness withdrawn %s after the cut (SVID lifetime %s); identity and Ready=True back %s after the server; expired gap %s",
			withdrawn.Round(time.Second), soakExternalSVIDTTL, time.Since(restored).Round(time.Second), longestGap(rep.Swaps, time.Time{}, time.Now()))
		for _, want := range []string{"proxy identity not renewed past half", "proxy identity EXPIRED", "proxy identity renewed"} {
			if !strings.Contains(h.logs.String(), want) {
				t.Errorf("meshexp did not log %q", want)
			}
		}
	})
	s.finish(t)
}

// startExternalHost starts meshexp with its agent joined to an external
// server of its own in the peer namespace, registered with the API server,
// and waits for Ready=True.
func startExternalHost(t *testing.T) (*host, *externalServer, *kube.Client, *kube.Workload) {
	t.Helper()
	srv := kubetest.Get(t)
	h := newHost(t)
	xs := newExternalServer(t, h)
	admin, w := h.registerWith(t, srv)
	h.env = append(h.env, "MESHEXP_SPIRE_MODE=external",
		"MESHEXP_SPIRE_SERVER_ADDRESS="+h.pair.PeerAddr4.String(),
		"MESHEXP_SPIRE_SERVER_PORT=8081",
		"MESHEXP_SPIRE_JOIN_TOKEN_FILE="+xs.joinToken(t),
		"MESHEXP_REGISTER_PROBE_PERIOD=500ms")
	h.start()
	h.waitFor("Ready=True", 60*time.Second, func() error { return readyIs(admin, w, "True", "") })
	return h, xs, admin, w
}

// externalServer is a SPIRE server in the peer namespace, configured as
// meshexp's embedded one (spire.RenderConfigs) but run by the test, so it
// can be restarted, cut off and changed. Its agents' SVIDs outlive the
// outages (agent_ttl 10m): only the workload's short SVID is at stake.
type externalServer struct {
	h       *host
	bin     string
	conf    string
	socket  string
	roots   string // the upstream bundle: ca.crt, then any root added
	cmd     *exec.Cmd
	done    chan struct{}
	logs    syncBuffer
	ruleSet bool
}

func newExternalServer(t *testing.T, h *host) *externalServer {
	t.Helper()
	// Outside the host's base directory: not one of meshexp's processes.
	dir, err := os.MkdirTemp("/tmp", "mxs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	certs := filepath.Join(h.base, "certs")
	roots := filepath.Join(dir, "roots.pem")
	ca, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(roots, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	o := spire.Options{
		Mode: spire.ModeEmbedded, WorkloadName: "web",
		TrustAnchorPath:  filepath.Join(certs, "ca.crt"),
		UpstreamCertPath: filepath.Join(certs, "ca.crt"), UpstreamKeyPath: filepath.Join(certs, "ca.key"),
		UpstreamBundlePath: roots,
		DataDir:            dir, SocketPath: filepath.Join(dir, "unused.sock"),
		ServerBindAddress: h.pair.PeerAddr4.String(), ServerPort: 8081,
		SVIDTTL: soakExternalSVIDTTL, CATTL: time.Hour, AgentTTL: 10 * time.Minute,
	}
	files, err := spire.RenderConfigs(o)
	if err != nil {
		t.Fatal(err)
	}
	xs := &externalServer{h: h, bin: h.spireBin("spire-server"), roots: roots}
	for path, text := range files {
		if filepath.Base(path) != "server.conf" {
			continue
		}
		xs.conf = path
		xs.socket = filepath.Join(filepath.Dir(path), "api.sock")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	xs.start(t)
	t.Cleanup(func() {
		xs.restore(t)
		xs.stop(t)
		if t.Failed() {
			t.Logf("external SPIRE server output:\n%s", xs.logs.String())
		}
	})
	xs.cli(t, "entry", "create", "-parentID", "spiffe://root.linkerd.cluster.local/agent",
		"-spiffeID", "spiffe://root.linkerd.cluster.local/web", "-selector", "unix:uid:2102",
		"-x509SVIDTTL", fmt.Sprint(int(soakExternalSVIDTTL/time.Second)))
	return xs
}

func (xs *externalServer) start(t *testing.T) {
	t.Helper()
	xs.cmd = xs.h.pair.Peer.Command(context.Background(), xs.bin, "run", "-config", xs.conf)
	xs.cmd.Stdout, xs.cmd.Stderr = &xs.logs, &xs.logs
	if err := xs.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	xs.done = done
	go func(c *exec.Cmd) { c.Wait(); close(done) }(xs.cmd)
	xs.h.waitUntil("the external SPIRE server's health", 60*time.Second, func() error {
		out, err := exec.Command(xs.bin, "healthcheck", "-socketPath", xs.socket).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}

// stop ends the server gracefully (SIGTERM), as a restart by its operator.
func (xs *externalServer) stop(t *testing.T) {
	if xs.cmd == nil {
		return
	}
	xs.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-xs.done:
	case <-time.After(30 * time.Second):
		xs.cmd.Process.Kill()
		<-xs.done
	}
	xs.cmd = nil
}

func (xs *externalServer) cli(t *testing.T, args ...string) string {
	t.Helper()
	args = append(args, "-socketPath", xs.socket)
	out, err := exec.Command(xs.bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("spire-server %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// joinToken writes a fresh join token for the host's agent to a file.
func (xs *externalServer) joinToken(t *testing.T) string {
	t.Helper()
	out := xs.cli(t, "token", "generate", "-spiffeID", "spiffe://root.linkerd.cluster.local/agent", "-ttl", "600")
	tok := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "Token:"))
	path := filepath.Join(xs.h.base, "join-token")
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// cut drops every packet to and from the server's port in the peer
// namespace: to the agent the server is gone, as behind a cut link, while
// the rest of the peer (the traffic under test) stays reachable.
func (xs *externalServer) cut(t *testing.T) {
	t.Helper()
	xs.h.pair.Peer.Run(t, "iptables", "-I", "INPUT", "-p", "tcp", "--dport", "8081", "-j", "DROP")
	xs.h.pair.Peer.Run(t, "iptables", "-I", "OUTPUT", "-p", "tcp", "--sport", "8081", "-j", "DROP")
	xs.ruleSet = true
}

func (xs *externalServer) restore(t *testing.T) {
	t.Helper()
	if !xs.ruleSet {
		return
	}
	xs.h.pair.Peer.Run(t, "iptables", "-D", "INPUT", "-p", "tcp", "--dport", "8081", "-j", "DROP")
	xs.h.pair.Peer.Run(t, "iptables", "-D", "OUTPUT", "-p", "tcp", "--sport", "8081", "-j", "DROP")
	xs.ruleSet = false
}

// addRoot puts a new root beside the old one in the server's upstream
// bundle and has the server prepare a new CA, which publishes it: the
// trust bundle the agents get changes.
func (xs *externalServer) addRoot(t *testing.T) {
	t.Helper()
	root, err := trust.NewRoot(trust.DefaultTrustDomain, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(xs.roots, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(root.CertPEM); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := strings.Count(xs.cli(t, "bundle", "show"), "BEGIN CERTIFICATE")
	xs.cli(t, "localauthority", "x509", "prepare")
	xs.h.waitFor("the server's bundle to hold the new root", 60*time.Second, func() error {
		if n := strings.Count(xs.cli(t, "bundle", "show"), "BEGIN CERTIFICATE"); n <= before {
			return fmt.Errorf("bundle still holds %d certificates", n)
		}
		return nil
	})
}
