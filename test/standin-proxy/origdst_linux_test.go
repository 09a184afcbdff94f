//go:build linux

package main

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/netns"
	"github.com/meshexp/meshexp/internal/testutil/standin"
)

// ask dials addr from inside ns, speaks first, and returns the stand-in's
// line.
func ask(t *testing.T, ns *netns.NS, addr string) string {
	t.Helper()
	var line string
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, waitFor)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitFor))
		if _, err := io.WriteString(c, "hello\n"); err != nil {
			return err
		}
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	if err != nil {
		t.Fatalf("asking %s from namespace %s: %v", addr, ns.Name, err)
	}
	return line
}

// TestRedirectedConnectionsReportTheirOriginalDestination proves the
// stand-in's SO_ORIGINAL_DST with real netfilter REDIRECT rules inside a
// throwaway namespace pair: inbound over IPv4 and IPv6 into a dual-stack
// listener, and outbound from the host to its peer.
func TestRedirectedConnectionsReportTheirOriginalDestination(t *testing.T) {
	netns.RequireRoot(t)
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("skipped: %s not installed (hack/install-deps.sh installs it)", bin)
		}
	}
	p := netns.NewPair(t)
	p.NS.Run(t, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "4143")
	p.NS.Run(t, "ip6tables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "4143")
	p.NS.Run(t, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", p.PeerAddr4.String(), "--dport", "9090", "-j", "REDIRECT", "--to-ports", "4140")

	ca := standin.NewCA(t)
	api := standin.NewWorkloadAPI(t) // a unix socket: reachable from any network namespace
	api.Set(ca.MintSVID(t, webID, time.Hour))
	env := runnableEnv(t, ca.RootPEM(), api.Addr())
	env[envInboundListenAddr] = "[::]:4143" // dual-stack, as Linkerd configures for IPv6
	env[envOutboundListenAddr] = "127.0.0.1:4140"
	env[envAdminListenAddr] = "127.0.0.1:4191"
	env[envControlListenAddr] = "127.0.0.1:4190"
	proc := start(t, env, p.NS.Start)
	proc.logLine("Certified identity")

	cases := []struct {
		name      string
		from      *netns.NS
		dial      string
		listener  string
		wantDst   string
		wantPeerA netip.Addr
	}{
		{"a peer's IPv4 connection to port 8080 arrives inbound with its destination", p.Peer,
			netip.AddrPortFrom(p.Addr4, 8080).String(), "inbound", netip.AddrPortFrom(p.Addr4, 8080).String(), p.PeerAddr4},
		{"a peer's IPv6 connection to port 8080 arrives inbound with its destination", p.Peer,
			netip.AddrPortFrom(p.Addr6, 8080).String(), "inbound", netip.AddrPortFrom(p.Addr6, 8080).String(), p.PeerAddr6},
		{"a local connection to the peer's port 9090 arrives outbound with its destination", p.NS,
			netip.AddrPortFrom(p.PeerAddr4, 9090).String(), "outbound", netip.AddrPortFrom(p.PeerAddr4, 9090).String(), netip.Addr{}},
		{"a peer's connection straight to the inbound port reports that port", p.Peer,
			netip.AddrPortFrom(p.Addr4, 4143).String(), "inbound", netip.AddrPortFrom(p.Addr4, 4143).String(), p.PeerAddr4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line := ask(t, tc.from, tc.dial)
			dir, dst, peer, id := parseAnswer(t, line)
			if dir != tc.listener || dst != tc.wantDst || id != webID {
				t.Errorf("answer %q, want %s orig_dst=%s identity=%s", strings.TrimSpace(line), tc.listener, tc.wantDst, webID)
			}
			if tc.wantPeerA.IsValid() {
				if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr() != tc.wantPeerA {
					t.Errorf("peer=%s, want %s", peer, tc.wantPeerA)
				}
			}
		})
	}
	if code := proc.terminate(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}
