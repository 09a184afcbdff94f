// Package netns gives privileged tests throwaway network namespaces, so
// firewall rules, routes and sockets are exercised in the real kernel
// without touching the host's own namespace.
//
// Typical use:
//
//	func TestMain(m *testing.M) { netns.Main(m) } // enables StartChild
//
//	func TestSomething(t *testing.T) {
//		netns.RequireRoot(t)
//		p := netns.NewPair(t) // two namespaces joined by a veth, IPv4+IPv6
//		// run code on a thread inside p.NS (sockets made here stay there):
//		err := p.NS.Do(func() error { ln, err = net.Listen("tcp4", ":8080"); return err })
//		// run a command inside p.Peer:
//		out := p.Peer.Run(t, "ip", "addr")
//		// run a registered function in a child process as uid 1000 in p.NS:
//		out, err := p.NS.RunChild(ctx, t, netns.As(1000), "dial", "10.213.0.2:8080")
//	}
//
// Everything a test creates (namespaces, veths, child processes) is removed
// in t.Cleanup, on success and on failure. Names start with "mx" and carry
// the test process's pid so parallel test binaries do not collide.
//
// Functions run by StartChild/RunChild are registered with Register (from
// an init function or TestMain) and are dispatched by Main in the child:
// the child is the test binary itself, re-executed through /proc/self/exe
// so that a non-root uid can run it even though `go test` keeps it in a
// directory only root may enter.
package netns

import (
	"os"
	"testing"
)

// RequireRoot skips the test unless it runs as root: namespaces, veths and
// firewall rules need CAP_SYS_ADMIN and CAP_NET_ADMIN.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("skipped: needs root to create network namespaces (run `sudo go test` or the CI, which runs as root)")
	}
}
