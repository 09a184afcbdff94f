//go:build linux

package cli

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

// vmSettings are the settings the packages ship for a VM
// (deploy/systemd/meshexp.env), as systemd's EnvironmentFile reads them.
func vmSettings(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../../deploy/systemd/meshexp.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			env[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return env
}

// TestAfterACrashTheVMSettingsKeepSSHReachable installs the rules with the
// VM settings and no proxy, as they are after meshexp died without
// teardown: a connection to port 22 from another host still reaches its
// server, while any other port is redirected to the proxy's inbound port,
// where nothing listens.
func TestAfterACrashTheVMSettingsKeepSSHReachable(t *testing.T) {
	netns.RequireRoot(t)
	for _, backend := range []string{"iptables-legacy", "iptables-nft"} {
		t.Run(backend, func(t *testing.T) {
			p := netns.NewPair(t)
			for _, port := range []int{22, 8080} {
				var ln net.Listener
				if err := p.NS.Do(func() (err error) { ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); return err }); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						fmt.Fprintf(c, "server on %d\n", port)
						c.Close()
					}
				}()
			}
			env := vmSettings(t)
			env["MESHEXP_INTERCEPT_BACKEND"] = backend
			env["MESHEXP_INTERCEPT_IPV6"] = "on"
			if code, _, stderr := inNS(t, p.NS, []string{"intercept", "install"}, env); code != 0 {
				t.Fatalf("intercept install with the VM settings: exit %d: %s", code, stderr)
			}
			for _, host := range []netip.Addr{p.Addr4, p.Addr6} {
				ssh, app := netip.AddrPortFrom(host, 22), netip.AddrPortFrom(host, 8080)
				if got, err := dialFrom(p.Peer, ssh); err != nil || got != "server on 22" {
					t.Errorf("SSH to %s after a crash: %q, %v; want the server on 22", ssh, got, err)
				}
				if got, err := dialFrom(p.Peer, app); err == nil || !strings.Contains(err.Error(), "connection refused") {
					t.Errorf("%s after a crash answered %q, %v; want it redirected to the proxy's port, where nothing listens", app, got, err)
				}
			}
		})
	}
}

func dialFrom(ns *netns.NS, to netip.AddrPort) (line string, err error) {
	err = ns.Do(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", to.String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}
