package controller_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

// scrape is one read of a replica's /metrics, parsed as Prometheus does:
// value(name, label pairs...) is the sample, or -1.
type scrape struct {
	value func(name string, labels ...string) float64
}

func scrapeOf(t testing.TB, r *replica) scrape {
	t.Helper()
	s, err := tryScrape(r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tryScrape(r *replica) (scrape, error) {
	resp, err := http.Get(r.metrics)
	if err != nil {
		return scrape{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return scrape{}, fmt.Errorf("GET %s: %d %v", r.metrics, resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		return scrape{}, fmt.Errorf("/metrics is not Prometheus text: %v\n%s", err, body)
	}
	return scrape{value: func(name string, labels ...string) float64 {
		f := fams[name]
		if f == nil {
			return -1
		}
	next:
		for _, m := range f.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.Label {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
		return -1
	}}, nil
}

// waitMetric waits until cond holds for the replica's scrape.
func waitMetric(t testing.TB, r *replica, what string, cond func(s scrape) bool) scrape {
	t.Helper()
	var s scrape
	eventually.OK(t, what+" in "+r.metrics, func() (bool, error) {
		var err error
		if s, err = tryScrape(r); err != nil {
			return false, err
		}
		return cond(s), fmt.Errorf("not yet")
	})
	return s
}

// TestTheMetricsFollowStreamsReportsWritesAndRefusals: two replicas on a
// real API server, one host on each; the numbers on /metrics move as hosts
// connect, report, are written, refused, leave and are deleted.
func TestTheMetricsFollowStreamsReportsWritesAndRefusals(t *testing.T) {
	admin, ctrlClient, ns := setup(t)
	m := newMesh(t)
	if err := applyGroup(t, admin, groupYAML(ns, "web")); err != nil {
		t.Fatal(err)
	}
	a := startReplica(t, m, ctrlClient, "a")
	s := waitMetric(t, a, "leader=1", func(s scrape) bool { return s.value("meshexp_controller_leader") == 1 })
	for _, probe := range []string{"/live", "/ready"} {
		if code := probeStatus(t, a, probe); code != http.StatusOK {
			t.Errorf("%s = %d on a serving replica, want 200", probe, code)
		}
	}
	for _, k := range []string{"create", "update", "status", "delete", "service", "group_status"} {
		if s.value("meshexp_controller_write_errors_total", "kind", k) != 0 {
			t.Errorf("write_errors_total{kind=%s} missing or not 0", k)
		}
	}
	if s.value("meshexp_controller_streams", "from", "host") != 0 {
		t.Errorf("a fresh leader shows streams")
	}
	if s.value("go_goroutines") <= 0 || s.value("process_resident_memory_bytes") <= 0 {
		t.Errorf("process metrics missing")
	}
	b := startReplica(t, m, ctrlClient, "b")
	waitMetric(t, b, "leader=0", func(s scrape) bool { return s.value("meshexp_controller_leader") == 0 })

	hostOn := func(r *replica, name string) *hostProc {
		return startHost(t, m, hostOpts{group: "web", namespace: ns, name: name, ip: "192.0.2.20",
			svid: m.svid(t, "spiffe://"+td.Name()+"/hosts/"+name), addrs: []string{r.addr}})
	}
	h1, h2 := hostOn(a, "web-1"), hostOn(b, "web-2")
	waitReady(t, admin, ns, "web-1", "True", "")
	waitReady(t, admin, ns, "web-2", "True", "")

	s = waitMetric(t, a, "the leader's view of two hosts", func(s scrape) bool {
		return s.value("meshexp_controller_hosts_registered", "namespace", ns, "group", "web") == 2 &&
			s.value("meshexp_controller_hosts_ready", "namespace", ns, "group", "web") == 2 &&
			s.value("meshexp_controller_streams", "from", "host") == 1 && s.value("meshexp_controller_streams", "from", "replica") == 1 &&
			// ≥: the API server is shared, and earlier tests' groups and
			// hosts are the leader's too.
			s.value("meshexp_controller_hosts_tracked") >= 2 && s.value("meshexp_controller_hosts_heard") >= 2 &&
			s.value("meshexp_controller_writes_total", "kind", "group_status") >= 1 &&
			// A write is counted after the API server answers, which may
			// be after the informer saw it: waited for, not read once.
			s.value("meshexp_controller_writes_total", "kind", "create") >= 2 &&
			s.value("meshexp_controller_writes_total", "kind", "status") >= 2 &&
			s.value("meshexp_controller_writes_total", "kind", "service") >= 1 &&
			s.value("meshexp_controller_reports_total", "from", "host") >= 1 &&
			s.value("meshexp_controller_reports_total", "from", "replica") >= 1
	})
	sb := waitMetric(t, b, "the follower's host stream and the group's counts", func(s scrape) bool {
		return s.value("meshexp_controller_streams", "from", "host") == 1 && s.value("meshexp_controller_hosts_ready", "namespace", ns, "group", "web") == 2
	})
	if w := sb.value("meshexp_controller_writes_total", "kind", "create"); w != 0 {
		t.Errorf("the follower wrote %v ExternalWorkloads", w)
	}
	if n := sb.value("meshexp_controller_hosts_tracked"); n != 0 {
		t.Errorf("the follower keeps %v hosts' reports; it only relays them", n)
	}
	before := sb.value("meshexp_controller_reports_total", "from", "host")
	waitMetric(t, b, "the follower's reports to go on (heartbeats)", func(s scrape) bool {
		return s.value("meshexp_controller_reports_total", "from", "host") > before
	})

	// A refusal, counted by reason.
	bad := startHost(t, m, hostOpts{group: "nope", namespace: ns, svid: m.svid(t, "spiffe://"+td.Name()+"/hosts/web-3"), addrs: []string{a.addr}})
	waitRefused(t, bad, "not found")
	waitMetric(t, a, "refusals{reason=group_not_found}", func(s scrape) bool {
		return s.value("meshexp_controller_refusals_total", "reason", "group_not_found") >= 1
	})
	bad.stop()

	// A host leaves: its stream closes, it goes silent, then is deleted.
	h1.stop()
	waitMetric(t, a, "web-1's stream closed, Ready=False written, then deleted", func(s scrape) bool {
		return s.value("meshexp_controller_streams", "from", "host") == 0 &&
			s.value("meshexp_controller_writes_total", "kind", "delete") >= 1 &&
			s.value("meshexp_controller_hosts_registered", "namespace", ns, "group", "web") == 1
	})
	h2.stop()
	waitMetric(t, b, "the follower's stream closed", func(s scrape) bool { return s.value("meshexp_controller_streams", "from", "host") == 0 })
}

// probeStatus is the status code of GET path on r's metrics listener.
func probeStatus(t testing.TB, r *replica, path string) int {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(r.metrics, "/metrics") + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestNotReadyUntilServing: before Run has synced its caches and serves
// host streams, /ready answers 503 (the pod gets no hosts) and /live 200.
func TestNotReadyUntilServing(t *testing.T) {
	h := (&controller.Controller{}).MetricsHandler()
	for path, want := range map[string]int{"/ready": http.StatusServiceUnavailable, "/live": http.StatusOK} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("%s = %d, want %d", path, rec.Code, want)
		}
	}
}
