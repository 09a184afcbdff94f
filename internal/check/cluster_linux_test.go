//go:build linux

package check

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/route"
	"github.com/meshexp/meshexp/internal/spire"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
	"github.com/meshexp/meshexp/internal/testutil/netns"
	"github.com/meshexp/meshexp/internal/trust"
)

func TestTheClockAgreesWithTheRealAPIServer(t *testing.T) {
	s := kubetest.Get(t)
	cfg := s.AdminConfig()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st, msg := outcome(t, ClockSkew(hc, cfg.Host+"/version")); st != OK {
		t.Errorf("%s: %s", st, msg)
	}
}

func TestTheExternalWorkloadMustMatchThisHostAndAgreeWithTheProxy(t *testing.T) {
	s := kubetest.Get(t)
	ns := s.CreateNamespace(t, "check")
	cl, err := kube.NewClient(s.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	w := kube.Workload{Name: "vm1", Namespace: ns, Identity: "spiffe://root.linkerd.cluster.local/vm1", ServerName: "vm1.cluster.local",
		IPs: []netip.Addr{netip.MustParseAddr("10.213.0.1")}, Ports: []kube.Port{{Name: "http", Port: 8000, Protocol: "TCP"}}}
	ctx := context.Background()
	get := func(ctx context.Context) (*kube.ExternalWorkload, error) { return cl.GetWorkload(ctx, &w) }
	ready := func(context.Context) error { return nil }
	notReady := func(context.Context) error { return errors.New("http://127.0.0.1:4191/ready answered 503") }

	if st, _ := outcome(t, ExternalWorkload(get, w, ready)); st != Fail {
		t.Errorf("before it exists: %s, want error", st)
	}
	if _, err := cl.ApplyWorkload(ctx, &w); err != nil {
		t.Fatal(err)
	}
	if st, msg := outcome(t, ExternalWorkload(get, w, notReady)); st != OK {
		t.Errorf("no condition yet, proxy not ready: %s %s", st, msg)
	}
	if st, msg := outcome(t, ExternalWorkload(get, w, ready)); st != Fail || !strings.Contains(msg, "but this host is ready") {
		t.Errorf("no condition, proxy ready: %s %s", st, msg)
	}
	if _, err := cl.ApplyReady(ctx, &w, kube.Condition{Type: kube.ConditionReady, Status: "True", Reason: kube.ReasonProxyReady}); err != nil {
		t.Fatal(err)
	}
	if st, msg := outcome(t, ExternalWorkload(get, w, ready)); st != OK {
		t.Errorf("Ready=True, proxy ready: %s %s", st, msg)
	}
	if st, msg := outcome(t, ExternalWorkload(get, w, notReady)); st != Fail || !strings.Contains(msg, "this host is not ready") {
		t.Errorf("Ready=True, proxy not ready: %s %s", st, msg)
	}
	other := w
	other.IPs = []netip.Addr{netip.MustParseAddr("10.213.0.9")}
	other.Identity = "spiffe://root.linkerd.cluster.local/vm2"
	st, msg := outcome(t, ExternalWorkload(get, other, ready))
	if st != Fail || !strings.Contains(msg, "workloadIPs are [10.213.0.1], this host is [10.213.0.9]") || !strings.Contains(msg, "meshTLS.identity") {
		t.Errorf("another host's view: %s %s", st, msg)
	}
}

func TestPodCIDRsMustBeRoutedViaTheirNodes(t *testing.T) {
	p := netns.NewPair(t)
	want := []route.Route{{Dst: netip.MustParsePrefix("10.244.1.0/24"), Via: p.PeerAddr4}}
	list := func(context.Context) ([]route.Route, error) { return want, nil }
	if st, msg := inNS(t, p.NS, Routes(list)); st != Fail || !strings.Contains(msg, "no route to 10.244.1.0/24") {
		t.Errorf("without the route: %s %s", st, msg)
	}
	p.NS.Run(t, "ip", "route", "add", "10.244.1.0/24", "via", p.PeerAddr4.String())
	if st, msg := inNS(t, p.NS, Routes(list)); st != OK {
		t.Errorf("with the route: %s %s", st, msg)
	}
	// A route via another gateway is not a route via the node.
	want = append(want, route.Route{Dst: netip.MustParsePrefix("10.244.2.0/24"), Via: netip.MustParseAddr("10.213.0.3")})
	p.NS.Run(t, "ip", "route", "add", "10.244.2.0/24", "via", p.PeerAddr4.String())
	if st, msg := inNS(t, p.NS, Routes(list)); st != Fail || !strings.Contains(msg, "goes via 10.213.0.2, not the node 10.213.0.3") {
		t.Errorf("via another node: %s %s", st, msg)
	}
}

// shortDir is a temporary directory with a short path (unix socket paths
// are limited to 107 bytes), searchable by everyone.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "mxc")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestOnlyTheProxyMayReachTheWorkloadAPISocket(t *testing.T) {
	netns.RequireRoot(t)
	proxy := Cred{Name: "the proxy", UID: 2102, Groups: []uint32{2102}}
	workload := Cred{Name: "the workload", UID: 65534, Groups: []uint32{65534}}
	dir := filepath.Join(shortDir(t), "public")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	if st, msg := outcome(t, SocketAccess(sock, proxy, workload)); st != Warn || !strings.Contains(msg, "the workload can connect") {
		t.Errorf("open to everyone: %s %s", st, msg)
	}
	if err := os.Chown(dir, 2102, 2102); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if st, msg := outcome(t, SocketAccess(sock, proxy, workload)); st != OK {
		t.Errorf("directory owned by the proxy, 0700: %s %s", st, msg)
	}
	if err := os.Chown(dir, 0, 0); err != nil {
		t.Fatal(err)
	}
	if st, msg := outcome(t, SocketAccess(sock, proxy, workload)); st != Fail || !strings.Contains(msg, "the proxy cannot connect") {
		t.Errorf("directory owned by root, 0700: %s %s", st, msg)
	}
}

func spireBinDir(t *testing.T) string {
	t.Helper()
	netns.RequireRoot(t)
	dir := os.Getenv("MESHEXP_SPIRE_BIN_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "meshexp", "spire-v1.13.3")
	}
	if _, err := os.Stat(filepath.Join(dir, "spire-agent")); err != nil {
		if os.Getenv("MESHEXP_REQUIRE_SPIRE") != "" {
			t.Fatalf("spire-agent not found in %s", dir)
		}
		t.Skipf("spire-agent not found in %s (set MESHEXP_SPIRE_BIN_DIR)", dir)
	}
	return dir
}

func TestTheSVIDCheckFetchesAsTheProxyFromRealSPIRE(t *testing.T) {
	bin := spireBinDir(t)
	dir := shortDir(t)
	kp, err := trust.NewRoot(trust.DefaultTrustDomain, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	anchor := filepath.Join(dir, "ca.crt")
	if err := kp.WriteFiles(anchor, filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(strings.TrimPrefix(l.Addr().String(), "127.0.0.1:"))
	l.Close()
	opts := spire.Options{
		Mode: spire.ModeEmbedded, WorkloadName: "vm-1", TrustAnchorPath: anchor, UpstreamKeyPath: filepath.Join(dir, "ca.key"),
		BinDir: bin, DataDir: filepath.Join(dir, "data"), SocketPath: filepath.Join(dir, "run", "api.sock"),
		ServerPort: uint16(port), Timeout: 60 * time.Second,
	}
	id, err := spire.Start(context.Background(), opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("start SPIRE: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = id.Stop(ctx)
	})
	fo := spire.FetchOptions{SocketPath: id.SocketPath(), ID: opts.SPIFFEID(), UID: spire.DefaultProxyUID, GID: spire.DefaultProxyUID, TrustAnchorPath: anchor}
	t.Run("the proxy's uid gets a verified SVID", func(t *testing.T) {
		if st, msg := outcome(t, SVID(fo, time.Now)); st != OK || !strings.Contains(msg, "spiffe://root.linkerd.cluster.local/vm-1") {
			t.Errorf("%s %s", st, msg)
		}
	})
	t.Run("an SVID past half its life warns", func(t *testing.T) {
		later := func() time.Time { return id.SVID().Certificates[0].NotAfter.Add(-time.Minute) }
		if st, msg := outcome(t, SVID(fo, later)); st != Warn {
			t.Errorf("%s %s", st, msg)
		}
	})
	t.Run("an SVID that does not chain to the anchor fails", func(t *testing.T) {
		other, err := trust.NewRoot(trust.DefaultTrustDomain, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		otherPath := filepath.Join(dir, "other.crt")
		if err := os.WriteFile(otherPath, other.CertPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		bad := fo
		bad.TrustAnchorPath = otherPath
		if st, msg := outcome(t, SVID(bad, time.Now)); st != Fail || !strings.Contains(msg, "does not verify") {
			t.Errorf("%s %s", st, msg)
		}
	})
	t.Run("another uid gets no SVID", func(t *testing.T) {
		bad := fo
		bad.UID, bad.GID = 2103, 2103
		// The agent refuses at once, but the fetch keeps asking until its
		// wait ends (an entry may still be syncing): the wait only needs to
		// be long enough for the fetcher to start and hear one answer.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := SVID(bad, time.Now)(ctx); err == nil || !strings.Contains(err.Error(), "no identity issued") {
			t.Errorf("want the agent's 'no identity issued', got %v", err)
		}
	})
	t.Run("the agent's version is read from the binary", func(t *testing.T) {
		v, err := BinaryVersion(context.Background(), filepath.Join(bin, "spire-agent"), "--version")
		if err != nil || v != "1.13.3" {
			t.Errorf("version %q, %v", v, err)
		}
	})
}
