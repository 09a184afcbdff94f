//go:build linux

package netfilter

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

func TestHostWithoutIPv6(t *testing.T) {
	for _, b := range backends() {
		t.Run(string(b), func(t *testing.T) {
			w := newWorld(t, b)
			w.NS.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
			w.runner = runnerIn(t, w.NS, b)
			v6Before := w.dump(t, IPv6)

			t.Run("auto installs IPv4 only and leaves the IPv6 tables alone", func(t *testing.T) {
				o := w.options()
				o.IPv6 = IPv6Auto
				w.install(t, o)
				if after := w.dump(t, IPv6); after != v6Before {
					t.Errorf("IPv6 tables changed on a host without IPv6:\n%s", after)
				}
				to := netip.AddrPortFrom(w.PeerAddr4, appPort)
				if got := w.dialAs(t, workloadUID, to); got != "outbound "+to.String() {
					t.Errorf("IPv4 not intercepted: %q", got)
				}
				var skipped bool
				for _, st := range w.show(t, o) {
					skipped = skipped || (st.Family == IPv6 && strings.Contains(st.Skipped, "disabled"))
				}
				if !skipped {
					t.Error("show does not say IPv6 was skipped and why")
				}
				w.remove(t)
			})
			t.Run("rules installed before IPv6 was disabled are still removed", func(t *testing.T) {
				w.NS.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0")
				w.runner = runnerIn(t, w.NS, b)
				w.install(t, w.options())
				w.NS.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
				w.runner = runnerIn(t, w.NS, b) // as after a restart
				w.remove(t)
				if n := meshexpRules(w.dump(t, IPv6)); n != 0 {
					t.Errorf("%d IPv6 rules left after remove", n)
				}
			})
			t.Run("on is refused with the setting to change", func(t *testing.T) {
				err := w.tryInstall(w.options())
				if err == nil || !strings.Contains(err.Error(), "intercept-ipv6") {
					t.Fatalf("install with IPv6 on = %v, want an error naming intercept-ipv6", err)
				}
			})
		})
	}
}

func TestControlDialerWithoutCapNetAdminFailsInsteadOfBeingIntercepted(t *testing.T) {
	w := newWorld(t, BackendNFT)
	w.install(t, w.options())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := w.NS.RunChild(ctx, t, netns.As(workloadUID), "dial-marked", netip.AddrPortFrom(w.PeerAddr4, appPort).String())
	if err == nil || !strings.Contains(err.Error(), "needs CAP_NET_ADMIN") {
		t.Fatalf("an unprivileged marked dial = %q, %v; want it to fail naming CAP_NET_ADMIN", out, err)
	}
}

// runnerIn makes a runner inside ns: it looks at the host it runs on.
func runnerIn(t *testing.T, ns *netns.NS, b Backend) *Runner {
	t.Helper()
	var r *Runner
	if err := ns.Do(func() (err error) { r, err = NewRunner(context.Background(), b, testLogger(t)); return err }); err != nil {
		t.Fatal(err)
	}
	return r
}
