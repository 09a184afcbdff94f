//go:build linux

package route_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/meshexp/meshexp/internal/route"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
	"github.com/meshexp/meshexp/internal/testutil/netns"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// fakeNode is a network namespace standing in for a cluster node: joined to
// the host by a veth (its InternalIP on the far end), with an address of
// its pod CIDR on its loopback and a listener that answers with its name.
type fakeNode struct {
	name       string
	ns         *netns.NS
	ip4, ip6   netip.Addr   // InternalIPs
	pod4, pod6 netip.Prefix // pod CIDRs
	podIP4     netip.Addr   // a "pod" address inside pod4
	podIP6     netip.Addr
}

// cluster is the host under test (its own namespace) and n fake nodes,
// each also registered as a Node object in the real API server with a
// label unique to the test, so FromCluster sees exactly these nodes.
type cluster struct {
	host     *netns.NS
	nodes    []*fakeNode
	selector string
	core     corev1client.CoreV1Interface
	dyn      dynamic.Interface
	mgr      *route.Manager
}

const listenPort = 8080

func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	netns.RequireRoot(t)
	srv := kubetest.Get(t)
	cfg := srv.AdminConfig()
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(id) > 40 {
		id = id[len(id)-40:]
	}
	id = strings.Trim(id, "-")
	c := &cluster{host: netns.New(t), selector: "meshexp-test=" + id, core: core, dyn: dyn}
	for i := 1; i <= n; i++ {
		c.nodes = append(c.nodes, c.addNode(t, id, i))
	}
	mgr, err := route.NewManagerAt(c.host.Path(), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	c.mgr = mgr
	return c
}

func (c *cluster) addNode(t *testing.T, id string, i int) *fakeNode {
	t.Helper()
	nd := &fakeNode{
		name:   fmt.Sprintf("%s-node-%d", id, i),
		ns:     netns.New(t),
		ip4:    netip.MustParseAddr(fmt.Sprintf("10.77.%d.2", i)),
		ip6:    netip.MustParseAddr(fmt.Sprintf("fd00:77:%d::2", i)),
		pod4:   netip.MustParsePrefix(fmt.Sprintf("10.244.%d.0/24", i)),
		pod6:   netip.MustParsePrefix(fmt.Sprintf("fd00:244:%d::/64", i)),
		podIP4: netip.MustParseAddr(fmt.Sprintf("10.244.%d.1", i)),
		podIP6: netip.MustParseAddr(fmt.Sprintf("fd00:244:%d::1", i)),
	}
	link := fmt.Sprintf("n%d", i)
	// Both ends are created inside their namespaces: the host's own
	// namespace never sees them.
	c.host.Run(t, "ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", nd.ns.Name)
	c.host.AddAddr(t, link, fmt.Sprintf("10.77.%d.1/24", i))
	c.host.AddAddr(t, link, fmt.Sprintf("fd00:77:%d::1/64", i))
	nd.ns.AddAddr(t, "eth0", nd.ip4.String()+"/24")
	nd.ns.AddAddr(t, "eth0", nd.ip6.String()+"/64")
	nd.ns.AddAddr(t, "lo", nd.podIP4.String()+"/32")
	nd.ns.AddAddr(t, "lo", nd.podIP6.String()+"/128")
	netns.VethUp(t, c.host, link, nd.ns, "eth0")
	serveName(t, nd.ns, nd.name)

	ctx := context.Background()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nd.name, Labels: map[string]string{"meshexp-test": id}},
		Spec:       corev1.NodeSpec{PodCIDR: nd.pod4.String(), PodCIDRs: []string{nd.pod4.String(), nd.pod6.String()}},
	}
	got, err := c.core.Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Node %s: %v", nd.name, err)
	}
	t.Cleanup(func() { _ = c.core.Nodes().Delete(context.Background(), nd.name, metav1.DeleteOptions{}) })
	got.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: nd.ip4.String()},
		{Type: corev1.NodeInternalIP, Address: nd.ip6.String()},
		{Type: corev1.NodeHostName, Address: nd.name},
	}
	if _, err := c.core.Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set addresses of Node %s: %v", nd.name, err)
	}
	return nd
}

// serveName listens on every address of ns and answers each connection
// with name, so a client learns which namespace it reached.
func serveName(t *testing.T, ns *netns.NS, name string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", listenPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(conn, name)
			conn.Close()
		}
	}()
}

// reach connects from the host namespace to addr and returns the name of
// the namespace that answered.
func (c *cluster) reach(addr netip.Addr) (string, error) {
	var conn net.Conn
	if err := c.host.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(addr, listenPort).String(), 10*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(conn)
	return strings.TrimSpace(string(b)), err
}

// table is the host's routing tables, all of them, both families.
func (c *cluster) table(t *testing.T) string {
	t.Helper()
	return c.host.Run(t, "ip", "-4", "route", "show", "table", "all") + c.host.Run(t, "ip", "-6", "route", "show", "table", "all")
}

func (c *cluster) fromCluster(t *testing.T, services bool) []route.Route {
	t.Helper()
	routes, notes, err := route.FromCluster(context.Background(), c.dyn, route.ClusterOptions{NodeSelector: c.selector, ServiceCIDRs: services})
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) > 0 {
		t.Fatalf("FromCluster skipped nodes: %q", notes)
	}
	return routes
}

func TestEachPodCIDRReachesItsNodeAndRemoveRestoresTheTable(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	// A route someone else made, which meshexp must leave alone.
	c.host.Run(t, "ip", "route", "add", "10.99.0.0/16", "via", "10.77.1.2", "proto", "static")
	// The API server's default ServiceCIDR (--service-cluster-ip-range
	// kubetest.ServiceCIDR); a "ClusterIP" on the first node stands in for
	// kube-proxy.
	c.nodes[0].ns.AddAddr(t, "lo", "10.96.0.10/32")
	before := c.table(t)

	for _, nd := range c.nodes {
		if _, err := c.reach(nd.podIP4); err == nil {
			t.Fatalf("%s reachable before any route was added; the test proves nothing", nd.podIP4)
		}
	}

	routes := c.fromCluster(t, true)
	if len(routes) != 7 {
		t.Fatalf("FromCluster gave %d routes, want 3 nodes × 2 families + 1 service CIDR: %v", len(routes), routes)
	}
	if err := c.mgr.Add(ctx, routes); err != nil {
		t.Fatal(err)
	}
	for _, nd := range c.nodes {
		for _, ip := range []netip.Addr{nd.podIP4, nd.podIP6} {
			got, err := c.reach(ip)
			if err != nil {
				t.Errorf("pod address %s of %s: %v", ip, nd.name, err)
			} else if got != nd.name {
				t.Errorf("pod address %s reached %s, want its node %s", ip, got, nd.name)
			}
		}
	}
	if got, err := c.reach(netip.MustParseAddr("10.96.0.10")); err != nil || got != c.nodes[0].name {
		t.Errorf("service address 10.96.0.10 reached %q (%v), want the first node %s", got, err, c.nodes[0].name)
	}

	added := c.table(t)
	if err := c.mgr.Add(ctx, routes); err != nil {
		t.Fatalf("second add: %v", err)
	}
	if again := c.table(t); again != added {
		t.Errorf("a second add changed the table:\n--- after the first\n%s\n--- after the second\n%s", added, again)
	}
	listed, err := c.mgr.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 7 {
		t.Errorf("List gave %d routes, want 7: %v", len(listed), listed)
	}

	removed, err := c.mgr.Remove(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 7 {
		t.Errorf("Remove removed %d routes, want 7: %v", len(removed), removed)
	}
	if after := c.table(t); after != before {
		t.Errorf("remove did not restore the table:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if _, err := c.reach(c.nodes[1].podIP4); err == nil {
		t.Errorf("%s still reachable after remove", c.nodes[1].podIP4)
	}
}

func TestAddChangesNothingWhenARouteCannotBeAdded(t *testing.T) {
	c := newCluster(t, 2)
	routes := c.fromCluster(t, false)
	tests := []struct {
		name    string
		setup   func(t *testing.T)
		routes  []route.Route
		wantErr string
	}{
		{
			name: "a pod CIDR someone else already routes",
			setup: func(t *testing.T) {
				c.host.Run(t, "ip", "route", "add", "10.244.2.0/24", "via", "10.77.2.2", "proto", "static")
				t.Cleanup(func() { c.host.Run(t, "ip", "route", "del", "10.244.2.0/24", "via", "10.77.2.2", "proto", "static") })
			},
			routes:  routes,
			wantErr: "already routed by someone else",
		},
		{
			name:    "a gateway that is not on a local link",
			setup:   func(*testing.T) {},
			routes:  append(append([]route.Route(nil), routes...), mustRoute(t, "10.250.0.0/16=192.0.2.1")),
			wantErr: "192.0.2.1",
		},
		{
			name:    "a gateway that is the host's own address",
			setup:   func(*testing.T) {},
			routes:  append(append([]route.Route(nil), routes...), mustRoute(t, "10.250.0.0/16=10.77.1.1")),
			wantErr: "is an address of this host",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup(t)
			before := c.table(t)
			err := c.mgr.Add(context.Background(), tt.routes)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Add = %v, want an error containing %q", err, tt.wantErr)
			}
			if after := c.table(t); after != before {
				t.Errorf("a refused add changed the table:\n--- before\n%s\n--- after\n%s", before, after)
			}
		})
	}
}

func TestRemoveAndPruneTouchOnlyWhatTheyName(t *testing.T) {
	c := newCluster(t, 3)
	ctx := context.Background()
	if err := c.mgr.Add(ctx, c.fromCluster(t, false)); err != nil {
		t.Fatal(err)
	}
	removed, err := c.mgr.Remove(ctx, []netip.Prefix{c.nodes[0].pod4, netip.MustParsePrefix("10.99.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].Dst != c.nodes[0].pod4 {
		t.Fatalf("Remove of one pod CIDR and one unknown CIDR removed %v, want only %s", removed, c.nodes[0].pod4)
	}
	if _, err := c.reach(c.nodes[0].podIP4); err == nil {
		t.Errorf("%s still reachable after its route was removed", c.nodes[0].podIP4)
	}
	if got, err := c.reach(c.nodes[0].podIP6); err != nil || got != c.nodes[0].name {
		t.Errorf("%s: %q, %v; the IPv6 route of the same node should stay", c.nodes[0].podIP6, got, err)
	}

	// The third node leaves the cluster: prune drops its routes only.
	if err := c.core.Nodes().Delete(ctx, c.nodes[2].name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pruned, err := c.mgr.Prune(ctx, c.fromCluster(t, false))
	if err != nil {
		t.Fatal(err)
	}
	if len(pruned) != 2 {
		t.Errorf("Prune removed %v, want the two routes of %s", pruned, c.nodes[2].name)
	}
	if got, err := c.reach(c.nodes[1].podIP4); err != nil || got != c.nodes[1].name {
		t.Errorf("%s after prune: %q, %v; want it still routed", c.nodes[1].podIP4, got, err)
	}
	if _, err := c.reach(c.nodes[2].podIP4); err == nil {
		t.Errorf("%s of the departed node still reachable after prune", c.nodes[2].podIP4)
	}
}

func mustRoute(t *testing.T, s string) route.Route {
	t.Helper()
	r, err := route.ParseRoute(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
