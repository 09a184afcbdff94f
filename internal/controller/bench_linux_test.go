//go:build linux

package controller_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/fleet"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

// BenchmarkControllerFleet runs a `meshexp controller` process against the
// real API server and N simulated hosts, each holding its own mTLS stream
// with its own SVID (minted by the test CA), and reports what
// internal/kube's BenchmarkSteadyState reports for the per-host Lease
// design: steady-state API writes/s and API-server cores, plus the
// controller's RSS and CPU per 1,000 hosts, registration throughput from
// cold, and the time from a host's death to Ready=False.
//
//	make bench-controller   (go test -run '^$' -bench ControllerFleet ./internal/controller -args -controller-hosts 1000,5000,10000)
var controllerHosts = flag.String("controller-hosts", "1000,5000,10000", "comma-separated fleet sizes for BenchmarkControllerFleet")

func BenchmarkControllerFleet(b *testing.B) {
	runFleetSizes(b, "controller-hosts", *controllerHosts, benchFleet)
}

// runFleetSizes runs bench once per fleet size in list (the value of the
// -flag flag: comma-separated positive numbers) as a sub-benchmark.
func runFleetSizes(b *testing.B, flag, list string, bench func(b *testing.B, n int)) {
	var sizes []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("-%s %q: want positive numbers", flag, list)
		}
		sizes = append(sizes, n)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			for range b.N {
				bench(b, n)
			}
		})
	}
}

func benchFleet(b *testing.B, n int) {
	admin, _, ns := setup(b)
	srv := kubetest.Get(b)
	f := newProcessFleet(b, srv, admin)
	if err := applyGroup(b, admin, groupYAML(ns, "bench", "deadHost: {notReadyAfterSeconds: 3, deleteAfterSeconds: 6}", "deadHost: {}")); err != nil {
		b.Fatal(err)
	}
	ctl, addr := f.controller(b)
	eventually.OK(b, "the controller to lead", func() (bool, error) { return strings.Contains(ctl.output(), "became leader"), nil })

	// Cold registration: every host connects at once.
	cfgs := make([]*fleet.ClientOptions, n)
	for i := range n {
		svid := f.m.svid(b, fmt.Sprintf("spiffe://%s/hosts/h-%d", td.Name(), i))
		tlsCfg, err := fleet.ClientTLS(svid, f.m.bundle, td, f.m.ctrl.ID.String())
		if err != nil {
			b.Fatal(err)
		}
		cfgs[i] = &fleet.ClientOptions{Addr: addr, TLS: tlsCfg, Group: "bench", Namespace: ns,
			IPs: []string{fmt.Sprintf("10.%d.%d.%d", 1+i>>16, (i>>8)&255, i&255)}, Ready: func(context.Context) error { return nil }}
	}
	cancels := make([]context.CancelFunc, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i, o := range cfgs {
		c, err := fleet.NewClient(*o)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.Run(ctx) }()
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	}()
	eventually.OK(b, fmt.Sprintf("all %d hosts Ready=True", n), func() (bool, error) {
		g, err := admin.Resource(controller.GroupGVR).Namespace(ns).Get(ctxT(b), "bench", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready, _, _ := unstructured.NestedInt64(g.Object, "status", "ready")
		return ready == int64(n), fmt.Errorf("%d ready", ready)
	})
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "registered-hosts/s")

	// Steady state: nothing changes; every host keeps reporting.
	time.Sleep(5 * time.Second)
	const window = 30 * time.Second
	w0, api0, ctl0 := writes(b, srv), cpu(b, srv.APIServerPID()), cpu(b, ctl.cmd.Process.Pid)
	time.Sleep(window)
	w1, api1, ctl1 := writes(b, srv), cpu(b, srv.APIServerPID()), cpu(b, ctl.cmd.Process.Pid)
	_, rss, err := kubetest.ProcStats(ctl.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(w1-w0)/window.Seconds(), "steady-writes/s")
	b.ReportMetric((api1-api0).Seconds()/window.Seconds(), "apiserver-cores")
	b.ReportMetric(float64(rss)/(1<<20)/float64(n)*1000, "controller-rss-MiB/1k-hosts")
	b.ReportMetric(float64(rss)/(1<<20), "controller-rss-MiB")
	b.ReportMetric((ctl1-ctl0).Seconds()/window.Seconds()/float64(n)*1000, "controller-cores/1k-hosts")

	// Death: 20 hosts stop; time until each is Ready=False.
	const dead = 20
	wt, err := admin.Resource(ewGVR).Namespace(ns).Watch(ctxT(b), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer wt.Stop()
	killed := time.Now()
	for i := range dead {
		cancels[i]()
	}
	var delays []time.Duration
	seen := map[string]bool{}
	timeout := time.After(waitDeadline)
	for len(delays) < dead {
		select {
		case ev := <-wt.ResultChan():
			obj, ok := ev.Object.(*unstructured.Unstructured)
			if !ok || ev.Type != watch.Modified || seen[obj.GetName()] {
				continue
			}
			if s, r := ready(obj); s == "False" && r == controller.ReasonSilent {
				seen[obj.GetName()] = true
				delays = append(delays, time.Since(killed))
			}
		case <-timeout:
			b.Fatalf("only %d of %d dead hosts went not ready", len(delays), dead)
		}
	}
	slices.Sort(delays)
	b.ReportMetric(delays[len(delays)/2].Seconds(), "death-to-notready-p50-s")
	b.ReportMetric(delays[len(delays)*99/100].Seconds(), "death-to-notready-p99-s")
}

// writes is the API server's count of requests that change something.
func writes(b *testing.B, srv *kubetest.Server) int64 {
	hc, err := rest.HTTPClientFor(srv.AdminConfig())
	if err != nil {
		b.Fatal(err)
	}
	resp, err := hc.Get(srv.Host + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET /metrics: %s", resp.Status)
	}
	var total int64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		if !strings.Contains(line, `verb="PATCH"`) && !strings.Contains(line, `verb="POST"`) &&
			!strings.Contains(line, `verb="PUT"`) && !strings.Contains(line, `verb="DELETE"`) && !strings.Contains(line, `verb="APPLY"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			total += int64(v)
		}
	}
	return total
}

func cpu(b *testing.B, pid int) time.Duration {
	c, _, err := kubetest.ProcStats(pid)
	if err != nil {
		b.Fatal(err)
	}
	return c
}
