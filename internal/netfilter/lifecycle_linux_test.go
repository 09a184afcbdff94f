//go:build linux

package netfilter

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

// planned is how many rules a plan puts in one family, jumps included.
func planned(t *testing.T, o Options, f Family) int {
	t.Helper()
	rs, err := Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	fr := rs.Family(f)
	return len(fr.Rules) + len(fr.Jumps)
}

// requireOneCopy checks that each family holds exactly one copy of the
// plan, that show agrees, and that interception works.
func (w *world) requireOneCopy(t *testing.T, o Options) {
	t.Helper()
	for _, f := range []Family{IPv4, IPv6} {
		if got, want := meshexpRules(w.dump(t, f)), planned(t, o, f); got != want {
			t.Errorf("%s holds %d meshexp rules, want exactly one copy (%d):\n%s", f, got, want, w.dump(t, f))
		}
	}
	for _, st := range w.show(t, o) {
		if !st.Matches {
			t.Errorf("show: %s differs from the plan: missing %q, unexpected %q", st.Family, st.Missing, st.Unexpected)
		}
	}
	to := netip.AddrPortFrom(w.PeerAddr4, appPort)
	if got := w.dialAs(t, workloadUID, to); got != "outbound "+to.String() {
		t.Errorf("uid %d → %s answered %q, want the outbound listener", workloadUID, to, got)
	}
}

func TestInstallTwiceLeavesOneCopy(t *testing.T) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) {
			w := newWorld(t, b)
			o := w.options()
			for range 3 {
				w.install(t, o)
			}
			w.requireOneCopy(t, o)
		})
	}
}

func TestInstallAfterACrashLeavesOneCopy(t *testing.T) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) {
			t.Run("chains and duplicate jumps left behind by a non-atomic installer are replaced", func(t *testing.T) {
				w := newWorld(t, b)
				o := w.options()
				// What a crash of a rule-at-a-time installer such as the
				// demo's leaves: a half-filled chain, the other chain
				// missing, a jump twice.
				flavour := strings.TrimPrefix(string(b), "iptables-")
				for _, cmd := range [][]string{
					{"-t", "nat", "-N", ChainOutput},
					{"-t", "nat", "-A", ChainOutput, "-m", "owner", "--uid-owner", "2102", "-m", "comment", "--comment", "proxy-init/ignore-proxy-user-id/meshexp", "-j", "RETURN"},
					{"-t", "nat", "-A", "OUTPUT", "-m", "comment", "--comment", "proxy-init/install-proxy-init-output/meshexp", "-j", ChainOutput},
					{"-t", "nat", "-A", "OUTPUT", "-m", "comment", "--comment", "proxy-init/install-proxy-init-output/meshexp", "-j", ChainOutput},
				} {
					for _, prefix := range []string{"iptables", "ip6tables"} {
						w.NS.Run(t, prefix+"-"+flavour, cmd...)
					}
				}
				w.install(t, o)
				w.requireOneCopy(t, o)
			})

			t.Run("an install killed with SIGKILL at any moment commits all or nothing", func(t *testing.T) {
				w := newWorld(t, b)
				o := w.options()
				o.SkipOutboundPorts, o.SkipOutboundSubnets, o.ExemptDestinations = DefaultOptions().SkipOutboundPorts, nil, nil
				rounds, partial, seen := 20, 0, map[string]int{}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				for i := range rounds {
					child := w.NS.StartChild(t, nil, "install-loop", string(b))
					time.Sleep(jitter(time.Duration(5+i*5) * time.Millisecond))
					child.Kill()
					if out, err := child.Wait(ctx); err == nil {
						t.Fatalf("round %d: install loop ended by itself: %s", i, out)
					}
					// Each family must hold the whole plan or nothing.
					var state []string
					for _, f := range []Family{IPv4, IPv6} {
						n, want := meshexpRules(w.dump(t, f)), planned(t, o, f)
						switch n {
						case 0:
							state = append(state, f.String()+" clean")
						case want:
							state = append(state, f.String()+" installed")
						default:
							partial++
							t.Errorf("round %d: %s holds %d of %d meshexp rules after the kill", i, f, n, want)
						}
					}
					seen[strings.Join(state, ", ")]++
				}
				w.install(t, o)
				w.requireOneCopy(t, o)
				t.Logf("%d kills, %d left a partial family; states seen after the kills: %v", rounds, partial, seen)
			})
		})
	}
}

func TestRemoveRestoresTheTablesExactly(t *testing.T) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) {
			w := newWorld(t, b)
			flavour := strings.TrimPrefix(string(b), "iptables-")
			// Foreign rules in the same tables and chains meshexp uses, and
			// one elsewhere; the nat one is proven to survive by traffic.
			for _, f := range []struct {
				prefix string
				peer   netip.Addr
				lo     string
			}{{"iptables", w.PeerAddr4, "127.0.0.1"}, {"ip6tables", w.PeerAddr6, "::1"}} {
				cmd := f.prefix + "-" + flavour
				w.NS.Run(t, cmd, "-t", "nat", "-A", "OUTPUT", "-d", f.peer.String(), "-p", "tcp", "--dport", fmt.Sprint(foreignPort), "-j", "REDIRECT", "--to-ports", fmt.Sprint(loopPort))
				w.NS.Run(t, cmd, "-t", "nat", "-A", "PREROUTING", "-p", "udp", "--dport", "53", "-j", "RETURN")
				w.NS.Run(t, cmd, "-t", "nat", "-N", "OTHER_TOOL")
				w.NS.Run(t, cmd, "-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
			}
			before := map[Family]string{IPv4: w.dump(t, IPv4), IPv6: w.dump(t, IPv6)}

			o := w.options()
			w.install(t, o)
			w.install(t, o)
			w.remove(t)
			for _, f := range []Family{IPv4, IPv6} {
				if after := w.dump(t, f); after != before[f] {
					t.Errorf("%s tables differ after install+remove\n--- before\n%s\n--- after\n%s", f, before[f], after)
				}
			}
			for _, peer := range []netip.Addr{w.PeerAddr4, w.PeerAddr6} {
				to := netip.AddrPortFrom(peer, foreignPort)
				if got := w.dialAs(t, workloadUID, to); !strings.HasPrefix(got, "local ") {
					t.Errorf("the foreign redirect of %s no longer works after remove: %q", to, got)
				}
			}

			t.Run("removing again changes nothing", func(t *testing.T) {
				w.remove(t)
				for _, f := range []Family{IPv4, IPv6} {
					if after := w.dump(t, f); after != before[f] {
						t.Errorf("%s changed on a second remove", f)
					}
				}
			})
		})
	}
}

func TestInstallRefusesChainsAnotherToolFilled(t *testing.T) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) {
			w := newWorld(t, b)
			flavour := strings.TrimPrefix(string(b), "iptables-")
			// The demo's rules: proxy-init comments with a timestamp.
			w.NS.Run(t, "iptables-"+flavour, "-t", "nat", "-N", ChainOutput)
			w.NS.Run(t, "iptables-"+flavour, "-t", "nat", "-A", ChainOutput, "-m", "owner", "--uid-owner", "0", "-m", "comment", "--comment", "proxy-init/ignore-proxy-user-id/1700000000", "-j", "RETURN")
			w.NS.Run(t, "iptables-"+flavour, "-t", "nat", "-A", "OUTPUT", "-j", ChainOutput)
			before := map[Family]string{IPv4: w.dump(t, IPv4), IPv6: w.dump(t, IPv6)}

			err := w.tryInstall(w.options())
			if !isForeign(err) {
				t.Fatalf("install over another tool's chain = %v, want a ForeignRulesError", err)
			}
			for _, f := range []Family{IPv4, IPv6} {
				if after := w.dump(t, f); after != before[f] {
					t.Errorf("%s changed by a refused install\n--- before\n%s\n--- after\n%s", f, before[f], after)
				}
			}
			w.remove(t)
			if after := w.dump(t, IPv4); after != before[IPv4] {
				t.Errorf("remove deleted another tool's rules\n--- before\n%s\n--- after\n%s", before[IPv4], after)
			}
		})
	}
}

func TestDetectPicksTheBackendInUse(t *testing.T) {
	netns.RequireRoot(t)
	for _, tc := range []struct {
		name  string
		setup []string
		want  Backend
	}{
		{"legacy rules make it legacy", []string{"iptables-legacy", "-t", "filter", "-A", "INPUT", "-j", "ACCEPT"}, BackendLegacy},
		{"nft rules make it nft", []string{"iptables-nft", "-t", "filter", "-A", "INPUT", "-j", "ACCEPT"}, BackendNFT},
		{"kubelet's canary decides over rule counts", []string{"sh", "-c", "iptables-nft -t mangle -N KUBE-IPTABLES-HINT && iptables-legacy -A INPUT -j ACCEPT && iptables-legacy -A INPUT -j ACCEPT"}, BackendNFT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireBackend(t, tc.want)
			ns := netns.New(t)
			ns.Run(t, tc.setup[0], tc.setup[1:]...)
			var got Backend
			var why string
			if err := ns.Do(func() error { got, why = Detect(context.Background(), testLogger(t)); return nil }); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Detect = %s (%s), want %s", got, why, tc.want)
			}
		})
	}
	t.Run("with no rules anywhere it follows the system's iptables and changes nothing", func(t *testing.T) {
		ns := netns.New(t)
		var why string
		if err := ns.Do(func() error { _, why = Detect(context.Background(), testLogger(t)); return nil }); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(why, "no rules") {
			t.Errorf("reason = %q", why)
		}
		for _, cmd := range []string{"iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save"} {
			if out := ns.Run(t, cmd); strings.Contains(out, "*") {
				t.Errorf("detection created a table (%s):\n%s", cmd, out)
			}
		}
	})
}

func TestAFailedInstallLeavesNoRuleInAnyFamily(t *testing.T) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) {
			w := newWorld(t, b)
			flavour := strings.TrimPrefix(string(b), "iptables-")
			// IPv4 installs fine; IPv6 then fails on another tool's chain.
			// (The IPv4 nat table exists beforehand, as on any host with
			// rules: one that did not would stay, empty, see Remove.)
			w.NS.Run(t, "iptables-"+flavour, "-t", "nat", "-A", "OUTPUT", "-d", "203.0.113.5", "-j", "RETURN")
			w.NS.Run(t, "ip6tables-"+flavour, "-t", "nat", "-N", ChainRedirect)
			w.NS.Run(t, "ip6tables-"+flavour, "-t", "nat", "-A", ChainRedirect, "-j", "RETURN")
			before := map[Family]string{IPv4: w.dump(t, IPv4), IPv6: w.dump(t, IPv6)}
			if err := w.tryInstall(w.options()); !isForeign(err) {
				t.Fatalf("install = %v, want a ForeignRulesError for IPv6", err)
			}
			for _, f := range []Family{IPv4, IPv6} {
				if after := w.dump(t, f); after != before[f] {
					t.Errorf("%s changed by a failed install (IPv4 must be rolled back)\n--- before\n%s\n--- after\n%s", f, before[f], after)
				}
			}
		})
	}
}
