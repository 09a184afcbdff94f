//go:build linux

package netfilter

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

func init() {
	// install-and-crash installs args[0]'s default plan and then waits to
	// be killed, as meshexp dying without teardown.
	netns.Register("install-and-crash", func(ctx context.Context, args []string) error {
		r, err := NewRunner(ctx, Backend(args[0]), nil)
		if err != nil {
			return err
		}
		o := DefaultOptions()
		o.IPv6 = IPv6On
		rs, err := Plan(o)
		if err != nil {
			return err
		}
		if err := r.Install(ctx, rs); err != nil {
			return err
		}
		fmt.Println("installed")
		<-ctx.Done()
		return nil
	})
}

// ruleset is everything a user could list in the host namespace: `nft list
// ruleset` and both families' iptables-save of both backends, without
// timestamps and with counters zeroed.
func (w *world) ruleset(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, cmd := range [][]string{{"nft", "list", "ruleset"}, {"iptables-nft-save"}, {"ip6tables-nft-save"}, {"iptables-legacy-save"}, {"ip6tables-legacy-save"}} {
		if _, err := exec.LookPath(cmd[0]); err != nil {
			t.Fatalf("%s is needed to compare rulesets: %v", cmd[0], err)
		}
		var keep []string
		for _, l := range strings.Split(w.NS.Run(t, cmd[0], cmd[1:]...), "\n") {
			if strings.HasPrefix(l, "#") {
				continue
			}
			l = counters.ReplaceAllString(l, "[0:0]")
			keep = append(keep, nftCounters.ReplaceAllString(l, "counter packets 0 bytes 0"))
		}
		out[strings.Join(cmd, " ")] = strings.Join(keep, "\n")
	}
	return out
}

var nftCounters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// emptyLegacyNat is what iptables-legacy-save prints for a nat table with
// no rule: once a legacy table was used in a namespace the kernel keeps it
// until the namespace ends (it has no call to unregister one).
const emptyLegacyNat = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"

// requireRestored fails unless now equals before, except, for the legacy
// backend started from no nat table, for that empty legacy nat table.
func requireRestored(t *testing.T, b Backend, before, now map[string]string) {
	t.Helper()
	for what, was := range before {
		is := now[what]
		if b == BackendLegacy && strings.Contains(what, "legacy") && !strings.Contains(was, "*nat") {
			is = strings.Replace(is, emptyLegacyNat, "", 1)
		}
		if is != was {
			t.Errorf("`%s` is not what it was\n--- before\n%s\n--- now\n%s", what, was, is)
		}
	}
}

func TestRemoveRestoresTheRulesetAsFound(t *testing.T) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) {
			t.Run("from a namespace without any table", func(t *testing.T) {
				w := newWorld(t, b)
				before := w.ruleset(t)
				if strings.Contains(before["nft list ruleset"], "table") {
					t.Fatalf("the namespace is not empty:\n%s", before["nft list ruleset"])
				}
				o := w.options()
				w.install(t, o)
				w.install(t, o)
				to := netip.AddrPortFrom(w.PeerAddr6, appPort)
				if got := w.dialAs(t, workloadUID, to); got != "outbound "+to.String() {
					t.Fatalf("not intercepted after install: %q", got)
				}
				w.remove(t)
				requireRestored(t, b, before, w.ruleset(t))
			})

			t.Run("with another tool's rule in a nat chain meshexp does not use", func(t *testing.T) {
				// The table exists, PREROUTING and OUTPUT (with nft) do not:
				// they go again, the table and POSTROUTING stay.
				w := newWorld(t, b)
				flavour := strings.TrimPrefix(string(b), "iptables-")
				w.NS.Run(t, "iptables-"+flavour, "-t", "nat", "-A", "POSTROUTING", "-s", "10.9.0.0/16", "-j", "MASQUERADE")
				w.NS.Run(t, "ip6tables-"+flavour, "-t", "nat", "-A", "POSTROUTING", "-s", "fd09::/64", "-j", "MASQUERADE")
				before := w.ruleset(t)
				w.install(t, w.options())
				w.remove(t)
				requireRestored(t, b, before, w.ruleset(t))
			})

			t.Run("a rule another tool adds after install survives remove, with the chain and table it needs", func(t *testing.T) {
				w := newWorld(t, b)
				flavour := strings.TrimPrefix(string(b), "iptables-")
				w.install(t, w.options())
				w.NS.Run(t, "iptables-"+flavour, "-t", "nat", "-A", "PREROUTING", "-p", "udp", "--dport", "53", "-j", "RETURN")
				w.remove(t)
				now := w.ruleset(t)
				for what, dump := range now {
					if strings.Contains(dump, "meshexp") || strings.Contains(dump, "PROXY_INIT") {
						t.Errorf("`%s` still holds meshexp's rules:\n%s", what, dump)
					}
				}
				if !strings.Contains(now["iptables-"+flavour+"-save"], "-A PREROUTING -p udp -m udp --dport 53 -j RETURN") {
					t.Errorf("the other tool's rule is gone:\n%s", now["iptables-"+flavour+"-save"])
				}
			})

			for _, next := range []string{"install and remove", "remove"} {
				t.Run("after meshexp is killed between removing its rules and deleting the table, the next "+next+" restores it", func(t *testing.T) {
					w := newWorld(t, b)
					before := w.ruleset(t)
					w.install(t, w.options())
					// The first step of Remove alone, as if killed right after.
					err := w.NS.Do(func() error {
						for _, f := range []Family{IPv4, IPv6} {
							nat, err := w.runner.dumpNat(context.Background(), f)
							if err != nil {
								return err
							}
							if _, err := w.runner.removeRules(context.Background(), f, nat, b == BackendNFT); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					// Nothing is intercepted any more.
					to := netip.AddrPortFrom(w.PeerAddr4, appPort)
					if got := w.dialAs(t, workloadUID, to); got != "peer "+to.String() {
						t.Errorf("after the rules went: %q", got)
					}
					w.runner = runnerIn(t, w.NS, b)
					if next == "install and remove" {
						w.install(t, w.options())
					}
					w.remove(t)
					requireRestored(t, b, before, w.ruleset(t))
				})
			}

			t.Run("after meshexp is killed, at any moment of an install or after it, the next start's cleanup restores it", func(t *testing.T) {
				w := newWorld(t, b)
				before := w.ruleset(t)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				for i := range 10 {
					child := w.NS.StartChild(t, nil, "install-and-crash", string(b))
					time.Sleep(jitter(time.Duration(2+i*4) * time.Millisecond))
					child.Kill()
					if _, err := child.Wait(ctx); err == nil {
						t.Fatalf("round %d: the installer ended by itself", i)
					}
				}
				// A later meshexp starts (installs over what is left) and
				// stops; or only `meshexp intercept remove` runs.
				w.runner = runnerIn(t, w.NS, b)
				w.install(t, w.options())
				w.remove(t)
				requireRestored(t, b, before, w.ruleset(t))

				child := w.NS.StartChild(t, nil, "install-and-crash", string(b))
				time.Sleep(500 * time.Millisecond)
				child.Kill()
				_, _ = child.Wait(ctx)
				w.runner = runnerIn(t, w.NS, b)
				w.remove(t)
				requireRestored(t, b, before, w.ruleset(t))
			})
		})
	}
}
