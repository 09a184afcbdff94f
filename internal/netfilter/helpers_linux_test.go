//go:build linux

package netfilter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

func TestMain(m *testing.M) { netns.Main(m) }

// Uids the tests connect as. workloadUID is any ordinary user; the proxy's
// is the default.
const (
	workloadUID = 1000
	proxyUID    = DefaultProxyUID
)

// Second subnets on the veth, for the skip-subnet case.
var (
	skipNet4  = netip.MustParsePrefix("10.213.1.0/24")
	skipAddr4 = netip.MustParseAddr("10.213.1.1")
	skipPeer4 = netip.MustParseAddr("10.213.1.2")
	skipNet6  = netip.MustParsePrefix("fd6d:6578:1::/64")
	skipAddr6 = netip.MustParseAddr("fd6d:6578:1::1")
	skipPeer6 = netip.MustParseAddr("fd6d:6578:1::2")
)

// Ports of the test world.
const (
	appPort     = 8080 // a service on the peer and on the host
	listedPort  = 7070 // a host service outside an inbound-ports list
	skipPort    = 4567 // Linkerd's default skip port, both directions
	rangePort   = 5005 // inside the skipped range 5000-5010
	exemptPort  = 9090 // an exempt destination's port on the peer
	loopPort    = 9999 // a loopback-only service on the host
	foreignPort = 7777 // redirected to loopPort by a foreign nat rule
)

func init() {
	// dial connects to args[0] and prints the line the server answers.
	netns.Register("dial", func(ctx context.Context, args []string) error {
		line, err := dialAndRead(ctx, &net.Dialer{}, args[0])
		fmt.Print(line)
		return err
	})
	// install-loop installs and removes args[0]'s default plan until
	// killed, so a test can kill it at an arbitrary point.
	netns.Register("install-loop", func(ctx context.Context, args []string) error {
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
		for ctx.Err() == nil {
			if err := r.Install(ctx, rs); err != nil {
				return err
			}
			if err := r.Remove(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}

func dialAndRead(ctx context.Context, d *net.Dialer, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read the answer from %s: %w", addr, err)
	}
	return line, nil
}

// world is a host namespace joined to a peer, with listeners that say who
// answered: "outbound <original destination>" and "inbound <original
// destination>" (the proxy's listeners), "peer <address>" (the peer reached
// directly), "app <address>" and "local <address>" (services on the host).
type world struct {
	*netns.Pair
	backend Backend
	runner  *Runner
}

func backends() []Backend { return []Backend{BackendLegacy, BackendNFT} }

// probed caches, per backend, whether its commands exist.
var probed sync.Map // Backend → func() error

// requireBackend skips the test when this kernel or userland cannot run
// the backend, with the measured reason.
func requireBackend(t *testing.T, b Backend) {
	t.Helper()
	netns.RequireRoot(t)
	v, _ := probed.LoadOrStore(b, sync.OnceValue(func() error {
		for _, f := range []Family{IPv4, IPv6} {
			if _, err := findTools(context.Background(), b, f); err != nil {
				return err
			}
		}
		return nil
	}))
	if err := v.(func() error)(); err != nil {
		t.Skipf("skipped: backend %s unusable here: %v", b, err)
	}
	ns := netns.New(t)
	flavour := strings.TrimPrefix(string(b), "iptables-")
	for _, prefix := range []string{"iptables", "ip6tables"} {
		out, err := ns.Command(context.Background(), prefix+"-"+flavour, "-t", "nat", "-N", "MX_PROBE").CombinedOutput()
		if err != nil {
			t.Skipf("skipped: this kernel refuses %s nat chains with backend %s: %v: %s", prefix, b, err, out)
		}
	}
}

func newWorld(t *testing.T, b Backend) *world {
	t.Helper()
	requireBackend(t, b)
	w := &world{Pair: netns.NewPair(t), backend: b}
	w.NS.AddAddr(t, w.Link, netip.PrefixFrom(skipAddr4, skipNet4.Bits()).String())
	w.NS.AddAddr(t, w.Link, netip.PrefixFrom(skipAddr6, skipNet6.Bits()).String())
	w.Peer.AddAddr(t, w.PeerLink, netip.PrefixFrom(skipPeer4, skipNet4.Bits()).String())
	w.Peer.AddAddr(t, w.PeerLink, netip.PrefixFrom(skipPeer6, skipNet6.Bits()).String())

	// The proxy's listeners, family-specific so SO_ORIGINAL_DST answers.
	w.serve(t, w.NS, "tcp4", "127.0.0.1:4140", "outbound")
	w.serve(t, w.NS, "tcp6", "[::1]:4140", "outbound")
	w.serve(t, w.NS, "tcp4", "0.0.0.0:4143", "inbound")
	w.serve(t, w.NS, "tcp6", "[::]:4143", "inbound")
	for _, p := range []int{appPort, listedPort, skipPort, DefaultAdminPort} {
		w.serve(t, w.NS, "tcp", fmt.Sprintf(":%d", p), "app")
	}
	w.serve(t, w.NS, "tcp4", fmt.Sprintf("127.0.0.1:%d", loopPort), "local")
	w.serve(t, w.NS, "tcp6", fmt.Sprintf("[::1]:%d", loopPort), "local")
	for _, p := range []int{appPort, skipPort, rangePort, exemptPort} {
		w.serve(t, w.Peer, "tcp", fmt.Sprintf(":%d", p), "peer")
	}

	r, err := NewRunner(context.Background(), b, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	w.runner = r
	return w
}

// serve answers every connection on addr with one line naming role.
func (w *world) serve(t *testing.T, ns *netns.NS, network, addr, role string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatalf("listen on %s %s in %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				where := c.LocalAddr().String()
				if role == "outbound" || role == "inbound" {
					od, err := OriginalDst(c.(*net.TCPConn))
					if err != nil {
						where = "error: " + err.Error()
					} else {
						where = od.String()
					}
				}
				fmt.Fprintf(c, "%s %s\n", role, where)
			}()
		}
	}()
}

// options are the defaults with the test world's exceptions.
func (w *world) options() Options {
	o := DefaultOptions()
	o.Backend = w.backend
	o.IPv6 = IPv6On
	o.SkipOutboundPorts = append(o.SkipOutboundPorts, PortRange{5000, 5010})
	o.SkipOutboundSubnets = []netip.Prefix{skipNet4, skipNet6}
	o.ExemptDestinations = []netip.AddrPort{netip.AddrPortFrom(w.PeerAddr4, exemptPort), netip.AddrPortFrom(w.PeerAddr6, exemptPort)}
	return o
}

func (w *world) install(t *testing.T, o Options) {
	t.Helper()
	if err := w.tryInstall(o); err != nil {
		t.Fatal(err)
	}
}

func (w *world) tryInstall(o Options) error {
	rs, err := Plan(o)
	if err != nil {
		return err
	}
	return w.NS.Do(func() error { return w.runner.Install(context.Background(), rs) })
}

func (w *world) remove(t *testing.T) {
	t.Helper()
	if err := w.NS.Do(func() error { return w.runner.Remove(context.Background()) }); err != nil {
		t.Fatal(err)
	}
}

func (w *world) show(t *testing.T, o Options) []Status {
	t.Helper()
	rs, err := Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	var st []Status
	if err := w.NS.Do(func() (err error) { st, err = w.runner.Show(context.Background(), rs); return err }); err != nil {
		t.Fatal(err)
	}
	return st
}

// dialAs connects from the host namespace as uid and returns the answer.
func (w *world) dialAs(t *testing.T, uid uint32, addr netip.AddrPort) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := w.NS.RunChild(ctx, t, netns.As(uid), "dial", addr.String())
	if err != nil {
		t.Fatalf("uid %d → %s: %v", uid, addr, err)
	}
	return strings.TrimSpace(out)
}

// dialIn connects from ns (as root, in this process) with d.
func dialIn(t *testing.T, ns *netns.NS, d *net.Dialer, addr netip.AddrPort) string {
	t.Helper()
	var line string
	err := ns.Do(func() (err error) { line, err = dialAndRead(context.Background(), d, addr.String()); return err })
	if err != nil {
		t.Fatalf("from %s → %s: %v", ns.Name, addr, err)
	}
	return strings.TrimSpace(line)
}

// dump is every table of one family as iptables-save prints it, without
// its comment lines (they hold timestamps) and with the built-in chains'
// packet counters zeroed (traffic moves them).
func (w *world) dump(t *testing.T, f Family) string {
	t.Helper()
	var out []byte
	err := w.NS.Do(func() (err error) {
		out, err = exec.Command(w.runner.tools[f].save).Output()
		return err
	})
	if err != nil {
		t.Fatalf("dump %s: %v", f, err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, ":") {
			l = counters.ReplaceAllString(l, "[0:0]")
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

var counters = regexp.MustCompile(`\[\d+:\d+\]$`)

// meshexpRules counts the rules carrying meshexp's comment, not counting
// the records of what install created (see CreatedTable).
func meshexpRules(dump string) int {
	return strings.Count(dump, commentOwner+`"`) - strings.Count(dump, `"`+commentPrefix+createdPrefix)
}

// testLogger logs through t, so the debug trail (every command run and
// every restore input) shows with -v or on failure.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// jitter is a random pause below max, for kills at arbitrary moments.
func jitter(max time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(max))) }

func isForeign(err error) bool {
	var fe *ForeignRulesError
	return errors.As(err, &fe)
}

func init() {
	// dial-marked connects with meshexp's control dialer.
	netns.Register("dial-marked", func(ctx context.Context, args []string) error {
		line, err := dialAndRead(ctx, ControlDialer(DefaultControlMark), args[0])
		fmt.Print(line)
		return err
	})
}
