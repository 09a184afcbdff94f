//go:build linux

package controller_test

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/fleet"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

// BenchmarkControllerFailover: two `meshexp controller` processes with the
// default election timing (15 s / 10 s / 2 s), N hosts spread over both
// (each dials its replica, then the other, as a Service would send it on),
// all Ready. The leader is killed with SIGKILL; measured from the kill:
// when the follower leads, and when it has heard from every host (directly
// or relayed: its table caught up, meshexp_controller_hosts_heard = N),
// and how many hosts' Ready flapped (any Ready≠True seen by a watch until
// a full group grace after the catch-up), and the new leader's API writes
// in that time.
//
//	make bench-controller   (… -bench ControllerFailover … -args -failover-hosts 1000)
var failoverHosts = flag.String("failover-hosts", "1000", "comma-separated fleet sizes for BenchmarkControllerFailover")

func BenchmarkControllerFailover(b *testing.B) {
	runFleetSizes(b, "failover-hosts", *failoverHosts, benchFailover)
}

func benchFailover(b *testing.B, n int) {
	admin, _, ns := setup(b)
	srv := kubetest.Get(b)
	f := newProcessFleet(b, srv, admin)
	// The default dead-host policy: notReadyAfter 15 s.
	if err := applyGroup(b, admin, groupYAML(ns, "bench", "deadHost: {notReadyAfterSeconds: 3, deleteAfterSeconds: 6}", "deadHost: {}")); err != nil {
		b.Fatal(err)
	}
	metricsA, metricsB := freeAddr(b), freeAddr(b)
	leader, addrA := f.controller(b, "--metrics-addr", metricsA)
	eventually.OK(b, "the first controller to lead", func() (bool, error) { return strings.Contains(leader.output(), "became leader"), nil })
	_, addrB := f.controller(b, "--metrics-addr", metricsB)
	rb := &replica{metrics: "http://" + metricsB + "/metrics"}
	waitMetric(b, rb, "the second controller to follow", func(s scrape) bool { return s.value("meshexp_controller_leader") == 0 })

	cancels := make([]context.CancelFunc, n)
	var wg sync.WaitGroup
	defer func() {
		for _, c := range cancels {
			if c != nil {
				c()
			}
		}
		wg.Wait()
	}()
	for i := range n {
		svid := f.m.svid(b, fmt.Sprintf("spiffe://%s/hosts/f-%d", td.Name(), i))
		tlsCfg, err := fleet.ClientTLS(svid, f.m.bundle, td, f.m.ctrl.ID.String())
		if err != nil {
			b.Fatal(err)
		}
		addrs := []string{addrA, addrB}
		if i%2 == 1 {
			addrs = []string{addrB, addrA}
		}
		c, err := fleet.NewClient(fleet.ClientOptions{Addr: "meshexp-controller:8443", TLS: tlsCfg, Group: "bench", Namespace: ns,
			IPs: []string{fmt.Sprintf("10.%d.%d.%d", 1+i>>16, (i>>8)&255, i&255)}, Ready: func(context.Context) error { return nil },
			Dial: dialFirst(addrs)})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Run(ctx) }()
	}
	eventually.OK(b, fmt.Sprintf("all %d hosts Ready=True", n), func() (bool, error) {
		g, err := admin.Resource(controller.GroupGVR).Namespace(ns).Get(ctxT(b), "bench", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready, _, _ := unstructured.NestedInt64(g.Object, "status", "ready")
		return ready == int64(n), fmt.Errorf("%d ready", ready)
	})
	waitMetric(b, rb, "the follower's half of the hosts", func(s scrape) bool { return s.value("meshexp_controller_streams", "from", "host") >= float64(n/2) })
	time.Sleep(5 * time.Second) // a heartbeat round in steady state

	// Every Ready≠True from now on is a flap.
	wt, err := admin.Resource(ewGVR).Namespace(ns).Watch(ctxT(b), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer wt.Stop()
	var flapMu sync.Mutex
	flapped := map[string]string{}
	go func() {
		for ev := range wt.ResultChan() {
			obj, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			if s, r := ready(obj); s != "True" {
				flapMu.Lock()
				flapped[obj.GetName()] = string(ev.Type) + " Ready=" + s + " " + r
				flapMu.Unlock()
			}
		}
	}()
	w0 := writes(b, srv)

	killed := time.Now()
	leader.kill()
	var led, caughtUp time.Duration
	var s scrape
	eventually.OK(b, "the follower to lead and hear from every host", func() (bool, error) {
		var err error
		if s, err = tryScrape(rb); err != nil {
			return false, err
		}
		if led == 0 && s.value("meshexp_controller_leader") == 1 {
			led = time.Since(killed)
		}
		if led != 0 && s.value("meshexp_controller_hosts_heard") == float64(n) {
			caughtUp = time.Since(killed)
			return true, nil
		}
		return false, fmt.Errorf("leader %v, heard %v of %d", s.value("meshexp_controller_leader"), s.value("meshexp_controller_hosts_heard"), n)
	})
	// A flap would show within the group's grace after the takeover.
	time.Sleep(20 * time.Second)
	s = scrapeOf(b, rb)
	newWrites := 0.0
	for _, k := range []string{"create", "update", "status", "delete"} {
		newWrites += s.value("meshexp_controller_writes_total", "kind", k)
	}
	flapMu.Lock()
	nFlapped := len(flapped)
	for name, what := range flapped {
		b.Logf("flapped: %s %s", name, what)
		break
	}
	flapMu.Unlock()
	b.ReportMetric(led.Seconds(), "failover-lead-s")
	b.ReportMetric(caughtUp.Seconds(), "failover-all-heard-s")
	b.ReportMetric(float64(nFlapped), "flapped-hosts")
	b.ReportMetric(newWrites, "new-leader-externalworkload-writes")
	b.ReportMetric(float64(writes(b, srv)-w0), "api-writes-during")
}
