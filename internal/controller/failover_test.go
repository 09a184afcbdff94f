package controller_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

func TestWhenTheLeaderDiesAnotherTakesOverAndHealthyHostsNeverFlap(t *testing.T) {
	admin, ctrlClient, ns := setup(t)
	m := newMesh(t)
	if err := applyGroup(t, admin, groupYAML(ns, "web", "notReadyAfterSeconds: 3, deleteAfterSeconds: 6", "notReadyAfterSeconds: 10, deleteAfterSeconds: 600")); err != nil {
		t.Fatal(err)
	}
	a := startReplica(t, m, ctrlClient, "a")
	eventually.OK(t, "replica a to lead", func() (bool, error) { return a.c.IsLeader(), nil })
	b := startReplica(t, m, ctrlClient, "b")
	// web-1 talks to the leader; web-2 to the follower, which relays.
	h1 := startHost(t, m, hostOpts{group: "web", namespace: ns, svid: m.svid(t, "spiffe://"+td.Name()+"/hosts/web-1"), addrs: []string{a.addr, b.addr}})
	h2 := startHost(t, m, hostOpts{group: "web", namespace: ns, svid: m.svid(t, "spiffe://"+td.Name()+"/hosts/web-2"), addrs: []string{b.addr, a.addr}})
	waitReady(t, admin, ns, "web-1", "True", "ProxyReady")
	waitReady(t, admin, ns, "web-2", "True", "ProxyReady")
	if b.c.IsLeader() {
		t.Fatal("replica b leads while a runs")
	}
	tr := watchReady(t, admin, ns)

	a.stop(t) // without releasing the Lease, as a crash
	eventually.OK(t, "replica b to take over", func() (bool, error) { return b.c.IsLeader(), nil })
	lease, err := admin.Resource(leaseGVR).Namespace(controller.DefaultNamespace).Get(ctxT(t), controller.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if holder, _, _ := unstructured.NestedString(lease.Object, "spec", "holderIdentity"); holder != b.addr {
		t.Errorf("Lease holder %q, want replica b %s", holder, b.addr)
	}
	eventually.OK(t, "web-1 to re-register through replica b", func() (bool, error) { return h1.client.State().Registered, nil })
	// Observe for longer than the group's grace after the takeover: a
	// flap would show as a Ready=False.
	time.Sleep(12 * time.Second)
	for _, s := range tr.list() {
		if strings.Contains(s, "False") || strings.Contains(s, "deleted") {
			t.Fatalf("a healthy host flapped during the failover: %q", tr.list())
		}
	}
	// Dead-host detection goes on under the new leader.
	h2.stop()
	waitReady(t, admin, ns, "web-2", "False", controller.ReasonSilent)
	waitReady(t, admin, ns, "web-1", "True", "ProxyReady")
}

// cutter is a TCP proxy whose link can be cut (every connection closed,
// the listening port closed so new dials are refused) and restored on the
// same port, standing in for a partition between a host and the
// controller.
type cutter struct {
	t      testing.TB
	addr   string
	target string
	mu     sync.Mutex
	lis    net.Listener
	conns  []net.Conn
}

func newCutter(t testing.TB, target string) *cutter {
	c := &cutter{t: t, target: target}
	c.listen("127.0.0.1:0")
	t.Cleanup(func() { c.setCut(true) })
	return c
}

func (c *cutter) listen(addr string) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.lis, c.addr = lis, lis.Addr().String()
	go func() {
		for {
			in, err := lis.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", c.target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
}

func (c *cutter) setCut(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !cut {
		if c.lis == nil {
			c.listen(c.addr)
		}
		return
	}
	if c.lis != nil {
		c.lis.Close()
		c.lis = nil
	}
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

func TestAPartitionedHostGoesNotReadyAndComesBackWithoutADuplicate(t *testing.T) {
	admin, ctrlClient, ns := setup(t)
	m := newMesh(t)
	if err := applyGroup(t, admin, groupYAML(ns, "web", "deleteAfterSeconds: 6", "deleteAfterSeconds: 600")); err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, m, ctrlClient, "a")
	link := newCutter(t, r.addr)
	h := startHost(t, m, hostOpts{group: "web", namespace: ns, svid: m.svid(t, "spiffe://"+td.Name()+"/hosts/web-1"), addrs: []string{link.addr}})
	first := waitReady(t, admin, ns, "web-1", "True", "ProxyReady")
	link.setCut(true)
	waitReady(t, admin, ns, "web-1", "False", controller.ReasonSilent)
	eventually.OK(t, "the host to see the link down", func() (bool, error) {
		s := h.client.State()
		return !s.Registered && s.LastError != "", errors.New(s.LastError)
	})
	link.setCut(false)
	back := waitReady(t, admin, ns, "web-1", "True", "ProxyReady")
	if back.GetUID() != first.GetUID() {
		t.Errorf("the ExternalWorkload was recreated (uid %s → %s)", first.GetUID(), back.GetUID())
	}
	list, err := admin.Resource(ewGVR).Namespace(ns).List(ctxT(t), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Errorf("want exactly one ExternalWorkload, got %d (%v)", len(list.Items), err)
	}
}

// A follower that once served a host keeps its last report; when the host
// has moved to another replica since and the follower takes over, the new
// leader must not take that old report for silence.
func TestANewLeaderDoesNotMistakeAHostThatMovedReplicasForDead(t *testing.T) {
	admin, ctrlClient, ns := setup(t)
	m := newMesh(t)
	if err := applyGroup(t, admin, groupYAML(ns, "web", "notReadyAfterSeconds: 3, deleteAfterSeconds: 6", "notReadyAfterSeconds: 6, deleteAfterSeconds: 600")); err != nil {
		t.Fatal(err)
	}
	a := startReplica(t, m, ctrlClient, "a")
	eventually.OK(t, "replica a to lead", func() (bool, error) { return a.c.IsLeader(), nil })
	b := startReplica(t, m, ctrlClient, "b")
	toB := newCutter(t, b.addr)
	h := startHost(t, m, hostOpts{group: "web", namespace: ns, svid: m.svid(t, "spiffe://"+td.Name()+"/hosts/web-1"), addrs: []string{toB.addr, a.addr}})
	waitReady(t, admin, ns, "web-1", "True", "ProxyReady")
	// The host moves to a; b keeps its last report from before the move.
	toB.setCut(true)
	eventually.OK(t, "the host to re-register through replica a", func() (bool, error) { return h.client.State().Registered, nil })
	time.Sleep(8 * time.Second) // b's last report from the host is now older than the grace
	tr := watchReady(t, admin, ns)
	a.stop(t)
	eventually.OK(t, "replica b to take over", func() (bool, error) { return b.c.IsLeader(), nil })
	// The host reaches b a little after the takeover, well within a grace
	// counted from it (and far enough within it for a loaded machine).
	time.Sleep(500 * time.Millisecond)
	toB.setCut(false)
	eventually.OK(t, "the host to re-register through replica b", func() (bool, error) { return h.client.State().Registered, nil })
	time.Sleep(8 * time.Second)
	for _, s := range tr.list() {
		if !strings.Contains(s, "True") {
			t.Fatalf("the host that moved replicas was taken for dead: %q", tr.list())
		}
	}
}
