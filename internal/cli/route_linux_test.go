//go:build linux

package cli

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

// The commands run on a thread inside a throwaway namespace (the netlink
// socket is opened there), never in the host's own.
func TestRouteAddShowRemoveInANamespace(t *testing.T) {
	netns.RequireRoot(t)
	p := netns.NewPair(t)
	p.Peer.AddAddr(t, "lo", "10.244.9.1/32")
	var ln net.Listener
	if err := p.Peer.Do(func() (err error) { ln, err = net.Listen("tcp", "10.244.9.1:8080"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "peer")
			c.Close()
		}
	}()
	table := func() string { return p.NS.Run(t, "ip", "-4", "route", "show", "table", "all") }
	before := table()
	runIn := func(args ...string) (int, string, string) {
		var code int
		var stdout, stderr string
		if err := p.NS.Do(func() error { code, stdout, stderr = run(t, args, nil); return nil }); err != nil {
			t.Fatal(err)
		}
		return code, stdout, stderr
	}

	if code, _, stderr := runIn("route", "add", "--via", p.PeerAddr4.String(), "--cidr", "10.244.9.0/24"); code != ExitOK {
		t.Fatalf("route add: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runIn("route", "add", "--via", p.PeerAddr4.String(), "--cidr", "10.244.9.0/24"); code != ExitOK {
		t.Fatalf("a second route add: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runIn("route", "show")
	if code != ExitOK || !strings.Contains(stdout, "10.244.9.0/24") || !strings.Contains(stdout, p.PeerAddr4.String()) {
		t.Fatalf("route show: exit %d: %s%s", code, stdout, stderr)
	}
	var conn net.Conn
	if err := p.NS.Do(func() (err error) { conn, err = net.DialTimeout("tcp", "10.244.9.1:8080", 10*time.Second); return err }); err != nil {
		t.Fatalf("connect through the route: %v", err)
	}
	b, _ := io.ReadAll(conn)
	conn.Close()
	if strings.TrimSpace(string(b)) != "peer" {
		t.Errorf("reached %q, want the peer", b)
	}
	if code, _, stderr := runIn("route", "remove"); code != ExitOK {
		t.Fatalf("route remove: exit %d: %s", code, stderr)
	}
	if after := table(); after != before {
		t.Errorf("route remove left the table changed:\n--- before\n%s\n--- after\n%s", before, after)
	}
}
