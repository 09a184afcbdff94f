package probe

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

// TestReadyFollowsAWorkloadWhoseHealthFlips runs the registrar against the
// real API server with the proxy always ready and a workload whose health
// endpoint flips, and follows the ExternalWorkload's Ready condition.
func TestReadyFollowsAWorkloadWhoseHealthFlips(t *testing.T) {
	s := kubetest.Get(t)
	ns := s.CreateNamespace(t, "probes")
	cl, err := kube.NewClient(s.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	proxy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer proxy.Close()
	var failing atomic.Bool
	var failures atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			failures.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()
	healthz := app.URL + "/healthz"

	const threshold = 3
	var mu sync.Mutex
	var writes []string // Ready writes the registrar reports
	set := NewSet([]Spec{mustParse(t, healthz)}, Timing{Period: 20 * time.Millisecond, FailureThreshold: threshold}, Runner{}, slog.New(slog.DiscardHandler))
	w := kube.Workload{Name: "vm1", Namespace: ns, Identity: "spiffe://root.linkerd.cluster.local/vm1", ServerName: "vm1.cluster.local",
		IPs: []netip.Addr{netip.MustParseAddr("10.213.0.1")}, Ports: []kube.Port{{Name: "http", Port: 8000, Protocol: "TCP"}}}
	r, err := kube.NewRegistrar(cl, w, kube.HTTPProbe(proxy.URL+"/ready", nil), kube.Options{
		ProbePeriod: 20 * time.Millisecond, SkipService: true,
		Gate: func() (bool, string, string) {
			ok, reason, msg, _ := set.Status()
			return ok, reason, msg
		},
		GateChanged: set.Changed(),
		OnWrite: func(c kube.Condition, err error) {
			if err == nil {
				mu.Lock()
				writes = append(writes, c.Status+" "+c.Reason+": "+c.Message)
				mu.Unlock()
			}
		},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	go set.Run(ctx)
	defer func() { cancel(); <-done }()

	// waitFor polls the ExternalWorkload until its Ready condition has status.
	waitFor := func(status string) (kube.Condition, string) {
		t.Helper()
		for {
			ew, err := cl.GetWorkload(context.Background(), &w)
			if err == nil && ew.Status != nil {
				if c := kube.ReadyCondition(ew.Status.Conditions); c != nil && c.Status == status {
					return *c, ew.Metadata.ResourceVersion
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	up, _ := waitFor("True")
	if up.Reason != kube.ReasonProxyReady || up.LastProbeTime == nil || up.LastTransitionTime == nil {
		t.Errorf("first Ready: %+v", up)
	}

	failing.Store(true)
	down, rvDown := waitFor("False")
	if down.Reason != ReasonProbeFailed || down.Message != "GET "+healthz+": 503" {
		t.Errorf("Ready=False says %s: %q, want ProbeFailed: GET %s: 503", down.Reason, down.Message, healthz)
	}
	if n := failures.Load(); n < threshold {
		t.Errorf("Ready went False after %d failed probes, before the failure threshold %d", n, threshold)
	}
	if down.LastProbeTime == nil || down.LastTransitionTime == nil {
		t.Errorf("Ready=False lacks its times: %+v", down)
	}

	// While nothing changes nothing is written: the object keeps its
	// resourceVersion over many more failing probes.
	for seen := failures.Load(); failures.Load() < seen+10; {
		time.Sleep(10 * time.Millisecond)
	}
	ew, err := cl.GetWorkload(context.Background(), &w)
	if err != nil {
		t.Fatal(err)
	}
	if ew.Metadata.ResourceVersion != rvDown {
		t.Errorf("the ExternalWorkload was rewritten without a transition: %s -> %s (%+v)", rvDown, ew.Metadata.ResourceVersion, ew.Status)
	}

	failing.Store(false)
	back, _ := waitFor("True")
	if back.Reason != kube.ReasonProxyReady || !strings.Contains(back.Message, "succeeded") {
		t.Errorf("Ready again: %+v", back)
	}
	// One write per transition: [False (not probed yet),] True, False, True.
	// A write is recorded after the API server has it, so the last may come
	// a moment after the GET above saw it.
	eventually.True(t, "the last write to be recorded", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := len(writes)
		return n >= 3 && strings.HasPrefix(writes[n-1], "True ") && strings.HasPrefix(writes[n-2], "False ")
	})
	mu.Lock()
	defer mu.Unlock()
	want := []string{"True", "False", "True"}
	if len(writes) == 4 {
		want = append([]string{"False"}, want...)
	}
	if len(writes) != len(want) {
		t.Fatalf("Ready writes %q, want one per transition", writes)
	}
	for i, w := range writes {
		if !strings.HasPrefix(w, want[i]+" ") {
			t.Errorf("write %d is %q, want status %s", i, w, want[i])
		}
	}
}
