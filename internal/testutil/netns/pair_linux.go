//go:build linux

package netns

import (
	"net/netip"
	"strings"
	"testing"
	"time"
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
	p.NS.Run(tb, "ip", "link", "set", p.Link, "up")
	p.Peer.Run(tb, "ip", "link", "set", p.PeerLink, "up")
	// The kernel turns a link's carrier on asynchronously (linkwatch, up to
	// a second later); until then the veth drops packets and a first TCP SYN
	// would only get through on its retransmission.
	p.NS.waitOperUp(tb, p.Link)
	p.Peer.waitOperUp(tb, p.PeerLink)
	return p
}

func (n *NS) waitOperUp(tb testing.TB, link string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := n.Run(tb, "ip", "-o", "link", "show", link)
		if strings.Contains(out, " state UP ") {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("netns %s: link %s did not come up within 10s: %s", n.Name, link, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
