//go:build linux

package netns

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

// The addresses of every Pair. Each pair lives in its own namespaces, so
// parallel tests reuse them without conflict. They are private (RFC 1918,
// RFC 4193) so a mistake could never reach a real network.
var (
	Prefix4   = netip.MustParsePrefix("10.213.0.0/24")
	Addr4     = netip.MustParseAddr("10.213.0.1")
	PeerAddr4 = netip.MustParseAddr("10.213.0.2")
	Prefix6   = netip.MustParsePrefix("fd6d:6578::/64")
	Addr6     = netip.MustParseAddr("fd6d:6578::1")
	PeerAddr6 = netip.MustParseAddr("fd6d:6578::2")
)

// Pair is two namespaces joined by a veth: NS (the host under test, link
// "veth0", Addr4/Addr6) and Peer (the rest of the network, link "veth1",
// PeerAddr4/PeerAddr6). Both links and loopbacks are up.
type Pair struct {
	NS, Peer       *NS
	Link, PeerLink string
	Addr4, Addr6   netip.Addr
	PeerAddr4      netip.Addr
	PeerAddr6      netip.Addr
}

// NewPair creates the two namespaces and the veth between them; everything
// is removed in tb.Cleanup.
func NewPair(tb testing.TB) *Pair {
	tb.Helper()
	p := &Pair{
		NS: New(tb), Peer: New(tb),
		Link: "veth0", PeerLink: "veth1",
		Addr4: Addr4, Addr6: Addr6, PeerAddr4: PeerAddr4, PeerAddr6: PeerAddr6,
	}
	// Both ends are created directly inside their namespaces, so the host
	// namespace never sees them, even briefly.
	p.NS.Run(tb, "ip", "link", "add", p.Link, "type", "veth", "peer", "name", p.PeerLink, "netns", p.Peer.Name)
	p.NS.AddAddr(tb, p.Link, netip.PrefixFrom(Addr4, Prefix4.Bits()).String())
	p.NS.AddAddr(tb, p.Link, netip.PrefixFrom(Addr6, Prefix6.Bits()).String())
	p.Peer.AddAddr(tb, p.PeerLink, netip.PrefixFrom(PeerAddr4, Prefix4.Bits()).String())
	p.Peer.AddAddr(tb, p.PeerLink, netip.PrefixFrom(PeerAddr6, Prefix6.Bits()).String())
	VethUp(tb, p.NS, p.Link, p.Peer, p.PeerLink)
	return p
}

// VethUp brings up both ends of a veth (a's link and b's) and waits until
// the kernel is done with each: the carrier on (linkwatch turns it on
// asynchronously, up to a second later, and until then a veth drops
// packets: a first TCP SYN would only get through on its retransmission)
// and, where the link has IPv6, its link-local address in use (its local
// route appears then: a test comparing routing tables would otherwise see
// it appear mid-test).
func VethUp(tb testing.TB, a *NS, aLink string, b *NS, bLink string) {
	tb.Helper()
	a.Run(tb, "ip", "link", "set", aLink, "up")
	b.Run(tb, "ip", "link", "set", bLink, "up")
	a.waitUp(tb, aLink)
	b.waitUp(tb, bLink)
}

func (n *NS) waitUp(tb testing.TB, link string) {
	tb.Helper()
	eventually.NoError(tb, "link "+link+" in "+n.Name+" to be up", func() error {
		if out := n.Run(tb, "ip", "-o", "link", "show", link); !strings.Contains(out, " state UP ") {
			return fmt.Errorf("%s", strings.TrimSpace(out))
		}
		if strings.TrimSpace(n.Run(tb, "ip", "-6", "-o", "addr", "show", "dev", link)) == "" {
			return nil // no IPv6 on this link
		}
		if out := n.Run(tb, "ip", "-6", "route", "show", "table", "local", "dev", link); !strings.Contains(out, "local fe80::") {
			return fmt.Errorf("no link-local address in use yet: %s", strings.TrimSpace(out))
		}
		return nil
	})
}
