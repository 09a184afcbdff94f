//go:build linux

package netfilter

import (
	"net"
	"net/netip"
	"testing"
)

// TestInterception proves the rules with traffic, for each backend and
// family: who connects where, and which listener answers.
func TestInterception(t *testing.T) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) {
			w := newWorld(t, b)
			w.install(t, w.options())
			families := []struct {
				name        string
				local, peer netip.Addr
				loopback    netip.Addr
				skipPeer    netip.Addr
			}{
				{"IPv4", w.Addr4, w.PeerAddr4, netip.MustParseAddr("127.0.0.1"), skipPeer4},
				{"IPv6", w.Addr6, w.PeerAddr6, netip.IPv6Loopback(), skipPeer6},
			}
			for _, f := range families {
				at := func(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
				peerApp := at(f.peer, appPort)
				t.Run(f.name, func(t *testing.T) {
					for _, tc := range []struct {
						name string
						uid  uint32
						to   netip.AddrPort
						want string
					}{
						{"a workload's connection to the peer arrives at the outbound listener, which names the real destination", workloadUID, peerApp, "outbound " + peerApp.String()},
						{"root's connection is intercepted too (the demo let uid 0 escape)", 0, peerApp, "outbound " + peerApp.String()},
						{"the proxy's own connection reaches the peer directly", proxyUID, peerApp, "peer " + peerApp.String()},
						{"loopback traffic is not intercepted", workloadUID, at(f.loopback, loopPort), "local " + at(f.loopback, loopPort).String()},
						{"traffic to the host's own address goes over loopback and is not intercepted", workloadUID, at(f.local, appPort), "app " + at(f.local, appPort).String()},
						{"a skipped outbound port reaches the peer directly", workloadUID, at(f.peer, skipPort), "peer " + at(f.peer, skipPort).String()},
						{"a port inside a skipped range reaches the peer directly", workloadUID, at(f.peer, rangePort), "peer " + at(f.peer, rangePort).String()},
						{"a skipped subnet is reached directly", workloadUID, at(f.skipPeer, appPort), "peer " + at(f.skipPeer, appPort).String()},
						{"an exempt destination (the SPIRE server, say) is reached directly", workloadUID, at(f.peer, exemptPort), "peer " + at(f.peer, exemptPort).String()},
					} {
						t.Run(tc.name, func(t *testing.T) {
							if got := w.dialAs(t, tc.uid, tc.to); got != tc.want {
								t.Errorf("uid %d → %s answered %q, want %q", tc.uid, tc.to, got, tc.want)
							}
						})
					}

					t.Run("meshexp's control connection carries the mark and reaches the peer directly", func(t *testing.T) {
						if got := dialIn(t, w.NS, ControlDialer(DefaultControlMark), peerApp); got != "peer "+peerApp.String() {
							t.Errorf("marked dial answered %q", got)
						}
						if got := dialIn(t, w.NS, &net.Dialer{}, peerApp); got != "outbound "+peerApp.String() {
							t.Errorf("the same dial from the same root process without the mark answered %q; the mark, not the uid, must decide", got)
						}
					})

					for _, tc := range []struct {
						name string
						port uint16
						want string
					}{
						{"the peer's connection to the host arrives at the inbound listener, which names the real destination", appPort, "inbound "},
						{"a skipped inbound port reaches the service directly", skipPort, "app "},
						{"the proxy's admin port is never redirected", DefaultAdminPort, "app "},
					} {
						t.Run(tc.name, func(t *testing.T) {
							to := at(f.local, tc.port)
							if got := dialIn(t, w.Peer, &net.Dialer{}, to); got != tc.want+to.String() {
								t.Errorf("peer → %s answered %q, want %q", to, got, tc.want+to.String())
							}
						})
					}
				})
			}

			t.Run("with an inbound-ports list only the listed ports are redirected", func(t *testing.T) {
				o := w.options()
				o.InboundPorts = []PortRange{Port(appPort)}
				w.install(t, o)
				for _, local := range []netip.Addr{w.Addr4, w.Addr6} {
					listed, other := netip.AddrPortFrom(local, appPort), netip.AddrPortFrom(local, listedPort)
					if got := dialIn(t, w.Peer, &net.Dialer{}, listed); got != "inbound "+listed.String() {
						t.Errorf("peer → listed %s answered %q", listed, got)
					}
					if got := dialIn(t, w.Peer, &net.Dialer{}, other); got != "app "+other.String() {
						t.Errorf("peer → unlisted %s answered %q", other, got)
					}
				}
			})

			t.Run("after remove nothing is intercepted", func(t *testing.T) {
				w.remove(t)
				for _, peer := range []netip.Addr{w.PeerAddr4, w.PeerAddr6} {
					to := netip.AddrPortFrom(peer, appPort)
					if got := w.dialAs(t, workloadUID, to); got != "peer "+to.String() {
						t.Errorf("uid %d → %s answered %q after remove", workloadUID, to, got)
					}
				}
				if got := dialIn(t, w.Peer, &net.Dialer{}, netip.AddrPortFrom(w.Addr4, appPort)); got != "app "+netip.AddrPortFrom(w.Addr4, appPort).String() {
					t.Errorf("inbound after remove answered %q", got)
				}
			})
		})
	}
}

// TestCustomPlanIsInstalledAsPlanned applies the customised golden plan
// (multiport splits, ranges, IPv6 subnets, exempt hosts, another mark) with
// each backend and checks that what the kernel holds reads back as the
// plan, which is what `show` relies on.
func TestCustomPlanIsInstalledAsPlanned(t *testing.T) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) {
			w := newWorld(t, b)
			o := customOptions()
			o.Backend = b
			w.install(t, o)
			for _, st := range w.show(t, o) {
				if !st.Matches {
					t.Errorf("%s does not match the plan: missing %q, unexpected %q", st.Family, st.Missing, st.Unexpected)
				}
			}
		})
	}
}
