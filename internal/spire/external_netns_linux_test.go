//go:build linux

package spire

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/netfilter"
	"github.com/meshexp/meshexp/internal/testutil/netns"
)

// inNS starts every command inside ns through `ip netns exec`, which execs
// the command itself (same pid, same process group), so restarts and
// signals work as they do outside.
func inNS(ns *netns.NS, next Starter) Starter {
	ip, _ := exec.LookPath("ip")
	return func(ctx context.Context, c Command) (Process, error) {
		c.Args = append([]string{"netns", "exec", ns.Name, c.Path}, c.Args...)
		c.Path = ip
		return next(ctx, c)
	}
}

// fakeOutbound listens where the proxy's outbound listener would be and
// answers each connection with its original destination. It counts the
// connections from other processes.
func fakeOutbound(t *testing.T, ns *netns.NS) *atomic.Int64 {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", netfilter.DefaultOutboundPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			od, err := netfilter.OriginalDst(c.(*net.TCPConn))
			if err != nil {
				fmt.Fprintf(c, "outbound error %v\n", err)
			} else {
				fmt.Fprintf(c, "outbound %s\n", od)
			}
			c.Close()
		}
	}()
	return &n
}

// dialFrom connects from ns as root (this process) and returns the first
// line the other side sends.
func dialFrom(t *testing.T, ns *netns.NS, addr netip.AddrPort) string {
	t.Helper()
	var line string
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ns.Name, err)
	}
	return strings.TrimSpace(line)
}

// intercept installs meshexp's interception in ns, exempting exempt.
func intercept(t *testing.T, ns *netns.NS, exempt []netip.AddrPort) {
	t.Helper()
	o := netfilter.DefaultOptions()
	o.IPv6 = netfilter.IPv6Off
	o.ExemptDestinations = exempt
	rs, err := netfilter.Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := testLogger(t)
	err = ns.Do(func() error {
		r, err := netfilter.NewRunner(context.Background(), netfilter.BackendAuto, logger)
		if err != nil {
			return err
		}
		return r.Install(context.Background(), rs)
	})
	if err != nil {
		t.Fatalf("installing interception in %s: %v", ns.Name, err)
	}
}

func TestExternalModeAcrossNamespacesWithInterceptionInstalled(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	p := netns.NewPair(t)
	logger, _ := testLogger(t)

	// The SPIRE server (and its own agent) in the peer namespace, on the
	// veth address and SPIRE's default port.
	_, server := testServer(t, bin, func(o *Options) {
		o.ServerBindAddress = p.PeerAddr4.String()
		o.ServerPort = DefaultServerPort
		o.Starter = inNS(p.Peer, ExecStarter(logger, time.Second))
	})
	serverAddr := netip.AddrPortFrom(p.PeerAddr4, DefaultServerPort)

	// The host under test: the proxy's outbound port, and interception
	// that lets the agent's connection to its server through.
	outbound := fakeOutbound(t, p.NS)
	intercept(t, p.NS, []netip.AddrPort{serverAddr})

	opts, _ := externalOptions(t, bin, server)
	opts.ServerAddress = p.PeerAddr4.String()
	opts.JoinToken = newJoinToken(t, server)
	opts.Starter = inNS(p.NS, ExecStarter(logger, time.Second))
	id := startIdentity(t, opts, logger)

	t.Run("the agent in one namespace got the SVID from the server in the other", func(t *testing.T) {
		assertChainsTo(t, id.SVID().Certificates, opts.TrustAnchorPath)
	})
	t.Run("interception still redirects other traffic from the agent's namespace", func(t *testing.T) {
		other := netip.AddrPortFrom(p.PeerAddr4, 8000)
		if got, want := dialFrom(t, p.NS, other), "outbound "+other.String(); got != want {
			t.Errorf("a root connection to %s answered %q, want %q", other, got, want)
		}
	})
	t.Run("without the exemption the agent's connection would be intercepted", func(t *testing.T) {
		intercept(t, p.NS, nil) // replaces the rules
		t.Cleanup(func() { intercept(t, p.NS, []netip.AddrPort{serverAddr}) })
		if got, want := dialFrom(t, p.NS, serverAddr), "outbound "+serverAddr.String(); got != want {
			t.Errorf("a connection to the SPIRE server answered %q, want %q", got, want)
		}
		again, dir := externalOptions(t, bin, server)
		again.ServerAddress = p.PeerAddr4.String()
		again.JoinToken = newJoinToken(t, server)
		again.Starter = inNS(p.NS, ExecStarter(logger, time.Second))
		again.Timeout = 8 * time.Second
		before := outbound.Load()
		err := failing(t, again, dir)
		if !strings.Contains(err.Error(), "does traffic interception redirect the agent?") {
			t.Errorf("want the interception hint, got: %v", err)
		}
		if outbound.Load() == before {
			t.Error("the agent's attempts never reached the outbound listener")
		}
	})
}
