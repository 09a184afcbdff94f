//go:build linux

package netfilter

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

// The container network behind the host under test: link ctr0 on the host,
// eth0 in the container, as Docker's docker0/eth0.
var (
	ctrNet4  = netip.MustParsePrefix("10.213.2.0/24")
	ctrHost4 = netip.MustParseAddr("10.213.2.1")
	ctrAddr4 = netip.MustParseAddr("10.213.2.2")
	ctrNet6  = netip.MustParsePrefix("fd6d:6578:2::/64")
	ctrHost6 = netip.MustParseAddr("fd6d:6578:2::1")
	ctrAddr6 = netip.MustParseAddr("fd6d:6578:2::2")
)

const (
	ctrPort       = 80   // the container's server
	publishedPort = 8443 // the host port Docker-style DNAT publishes it on
)

// forwardingWorld is the world's host (NS) forwarding for a container
// namespace behind ctr0, with the peer as the client outside: the host of
// a Docker, podman or libvirt installation, or a router.
type forwardingWorld struct {
	*world
	ctr *netns.NS
}

func newForwardingWorld(t *testing.T, b Backend) *forwardingWorld {
	t.Helper()
	w := &forwardingWorld{world: newWorld(t, b), ctr: netns.New(t)}
	w.NS.Run(t, "ip", "link", "add", "ctr0", "type", "veth", "peer", "name", "eth0", "netns", w.ctr.Name)
	w.NS.AddAddr(t, "ctr0", netip.PrefixFrom(ctrHost4, ctrNet4.Bits()).String())
	w.NS.AddAddr(t, "ctr0", netip.PrefixFrom(ctrHost6, ctrNet6.Bits()).String())
	w.ctr.AddAddr(t, "eth0", netip.PrefixFrom(ctrAddr4, ctrNet4.Bits()).String())
	w.ctr.AddAddr(t, "eth0", netip.PrefixFrom(ctrAddr6, ctrNet6.Bits()).String())
	netns.VethUp(t, w.NS, "ctr0", w.ctr, "eth0")
	w.ctr.Run(t, "ip", "route", "add", "default", "via", ctrHost4.String())
	w.ctr.Run(t, "ip", "-6", "route", "add", "default", "via", ctrHost6.String())
	w.Peer.Run(t, "ip", "route", "add", ctrNet4.String(), "via", w.Addr4.String())
	w.Peer.Run(t, "ip", "-6", "route", "add", ctrNet6.String(), "via", w.Addr6.String())
	w.NS.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	w.serve(t, w.ctr, "tcp", fmt.Sprintf(":%d", ctrPort), "container")
	return w
}

// dockerRules are what Docker writes into the nat table for a container
// publishing ctrPort on publishedPort (docker run -p 8443:80), with the
// backend's own iptables, before meshexp starts: DNAT from a chain that
// PREROUTING and OUTPUT jump to, and MASQUERADE for the container's
// outbound traffic.
func (w *forwardingWorld) dockerRules(t *testing.T) {
	t.Helper()
	flavour := strings.TrimPrefix(string(w.backend), "iptables-")
	for _, f := range []struct {
		cmd, loopback string
		net           netip.Prefix
		ctr           string
	}{
		{"iptables-" + flavour, "127.0.0.0/8", ctrNet4, fmt.Sprintf("%s:%d", ctrAddr4, ctrPort)},
		{"ip6tables-" + flavour, "::1/128", ctrNet6, fmt.Sprintf("[%s]:%d", ctrAddr6, ctrPort)},
	} {
		for _, args := range [][]string{
			{"-N", "DOCKER"},
			{"-A", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
			{"-A", "OUTPUT", "!", "-d", f.loopback, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "DOCKER"},
			{"-A", "POSTROUTING", "-s", f.net.String(), "!", "-o", "ctr0", "-j", "MASQUERADE"},
			{"-A", "DOCKER", "-i", "ctr0", "-j", "RETURN"},
			{"-A", "DOCKER", "!", "-i", "ctr0", "-p", "tcp", "-m", "tcp", "--dport", fmt.Sprint(publishedPort), "-j", "DNAT", "--to-destination", f.ctr},
		} {
			w.NS.Run(t, f.cmd, append([]string{"-t", "nat"}, args...)...)
		}
	}
}

// TestForwardedTrafficIsNeverIntercepted proves, for each backend and
// family, that a host which forwards for a container leaves the forwarded
// connections alone — routed to the container, DNAT'd to its published
// port, or the container's own outbound — while connections addressed to
// the host itself still reach the proxy's inbound listener.
func TestForwardedTrafficIsNeverIntercepted(t *testing.T) {
	for _, b := range backends() {
		for _, docker := range []bool{false, true} {
			name := string(b) + "/plain routing"
			if docker {
				name = string(b) + "/Docker-style DNAT and MASQUERADE"
			}
			t.Run(name, func(t *testing.T) {
				w := newForwardingWorld(t, b)
				if docker {
					w.dockerRules(t)
				}
				type dial struct {
					name string
					from *netns.NS
					to   netip.AddrPort
					want string
				}
				cases := func(local, peer, ctr netip.Addr) []dial {
					ctrAt := netip.AddrPortFrom(ctr, ctrPort)
					ds := []dial{
						{"a client's connection routed through the host reaches the container's server", w.Peer, ctrAt, "container " + ctrAt.String()},
						{"the container's outbound connection through the host reaches the client's server", w.ctr, netip.AddrPortFrom(peer, appPort), "peer " + netip.AddrPortFrom(peer, appPort).String()},
					}
					if docker {
						ds = append(ds, dial{"a client's connection to the port the host publishes reaches the container's server", w.Peer, netip.AddrPortFrom(local, publishedPort), "container " + ctrAt.String()})
					}
					return ds
				}
				families := []struct {
					name             string
					local, peer, ctr netip.Addr
				}{{"IPv4", w.Addr4, w.PeerAddr4, ctrAddr4}, {"IPv6", w.Addr6, w.PeerAddr6, ctrAddr6}}

				for _, stage := range []string{"before install", "after install"} {
					if stage == "after install" {
						w.install(t, w.options())
					}
					for _, f := range families {
						t.Run(stage+"/"+f.name, func(t *testing.T) {
							for _, d := range cases(f.local, f.peer, f.ctr) {
								t.Run(d.name, func(t *testing.T) {
									if got := dialIn(t, d.from, &net.Dialer{}, d.to); got != d.want {
										t.Errorf("%s → %s answered %q, want %q", d.from.Name, d.to, got, d.want)
									}
								})
							}
						})
					}
				}
				for _, f := range families {
					t.Run("after install/"+f.name, func(t *testing.T) {
						t.Run("a client's connection to the host's own address still reaches the inbound listener, which names the real destination", func(t *testing.T) {
							to := netip.AddrPortFrom(f.local, appPort)
							if got := dialIn(t, w.Peer, &net.Dialer{}, to); got != "inbound "+to.String() {
								t.Errorf("peer → %s answered %q, want the inbound listener", to, got)
							}
						})
						t.Run("the host's own connection to the container is the host's outbound and is intercepted", func(t *testing.T) {
							to := netip.AddrPortFrom(f.ctr, ctrPort)
							if got := w.dialAs(t, workloadUID, to); got != "outbound "+to.String() {
								t.Errorf("uid %d → %s answered %q, want the outbound listener", workloadUID, to, got)
							}
						})
					})
				}
			})
		}
	}
}

// TestDNATAddedAfterInstall shows what happens when a container runtime
// starts after meshexp and appends its DNAT jump behind meshexp's: show
// names it, and installing again (as every meshexp start does) puts
// meshexp's jump last again, so the published port reaches the container.
func TestDNATAddedAfterInstall(t *testing.T) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) {
			w := newForwardingWorld(t, b)
			o := w.options()
			w.install(t, o)
			w.dockerRules(t)
			for _, st := range w.show(t, o) {
				if len(st.After) != 1 || !strings.Contains(st.After[0], "-j DOCKER") {
					t.Errorf("%s: show names %q after meshexp's jump, want Docker's jump", st.Family, st.After)
				}
			}
			w.install(t, o)
			for _, st := range w.show(t, o) {
				if len(st.After) != 0 || !st.Matches {
					t.Errorf("%s: after installing again, show names %q after meshexp's jump (matches: %v)", st.Family, st.After, st.Matches)
				}
			}
			for _, local := range []netip.Addr{w.Addr4, w.Addr6} {
				to := netip.AddrPortFrom(local, publishedPort)
				if got := dialIn(t, w.Peer, &net.Dialer{}, to); !strings.HasPrefix(got, "container ") {
					t.Errorf("peer → published %s answered %q, want the container", to, got)
				}
			}
		})
	}
}
