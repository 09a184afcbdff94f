package kube_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	coordinationv1ac "k8s.io/client-go/applyconfigurations/coordination/v1"

	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

// The objects satisfy exactly what Linkerd's destination controller needs
// (internal/kube/LINKERD.md): the Service selects the ExternalWorkload
// by labels in the same namespace, each targetPort names a port declared on
// it, Ready=True is in status, and meshTLS carries identity and SNI.
func TestApplyWritesObjectsLinkerdTurnsIntoReadyEndpoints(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t, srv)
	ctx := ctxT(t)

	cur, err := h.c.ApplyWorkload(ctx, &h.w)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.c.ApplyService(ctx, &h.w); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.SetReady(ctx, &h.w, cur, true, kube.ReasonManual, "set by a test"); err != nil {
		t.Fatal(err)
	}
	if h.dials.Load() == 0 {
		t.Error("the client never used the dial hook; bootstrap's socket mark would not apply")
	}

	ew, err := h.getEW(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := h.getService(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Namespace != ew.Metadata.Namespace {
		t.Errorf("Service in %s, ExternalWorkload in %s: Linkerd only matches within a namespace", svc.Namespace, ew.Metadata.Namespace)
	}
	if len(svc.Spec.Selector) == 0 {
		t.Fatal("Service has no selector")
	}
	for k, v := range svc.Spec.Selector {
		if ew.Metadata.Labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the ExternalWorkload's labels %v", k, v, ew.Metadata.Labels)
		}
	}
	ewPorts := map[string]kube.PortSpec{}
	for _, p := range ew.Spec.Ports {
		ewPorts[p.Name] = p
	}
	for _, sp := range svc.Spec.Ports {
		if sp.TargetPort.Type != intstr.String {
			t.Errorf("Service port %s: targetPort %v is a number; Linkerd matches ExternalWorkload ports by name", sp.Name, sp.TargetPort)
			continue
		}
		p, ok := ewPorts[sp.TargetPort.StrVal]
		if !ok {
			t.Errorf("Service port %s: targetPort %q is not a port of the ExternalWorkload (%v)", sp.Name, sp.TargetPort.StrVal, ew.Spec.Ports)
			continue
		}
		if string(sp.Protocol) != p.Protocol {
			t.Errorf("Service port %s is %s, the ExternalWorkload's is %s", sp.Name, sp.Protocol, p.Protocol)
		}
	}
	if got := svc.Spec.Ports[0].Port; got != 80 {
		t.Errorf("Service's first port is %d, want --service-port 80", got)
	}
	if ew.Spec.MeshTLS.Identity != h.w.Identity || ew.Spec.MeshTLS.ServerName != h.w.ServerName {
		t.Errorf("meshTLS = %+v, want identity %s and serverName %s", ew.Spec.MeshTLS, h.w.Identity, h.w.ServerName)
	}
	if len(ew.Spec.WorkloadIPs) != 2 || ew.Spec.WorkloadIPs[0].IP != "192.0.2.10" || ew.Spec.WorkloadIPs[1].IP != "2001:db8::10" {
		t.Errorf("workloadIPs = %v", ew.Spec.WorkloadIPs)
	}
	c := kube.ReadyCondition(ew.Status.Conditions)
	if c == nil || c.Status != "True" || c.Reason != kube.ReasonManual || c.LastTransitionTime == nil {
		t.Errorf("Ready condition = %+v, want True (%s) with a transition time", c, kube.ReasonManual)
	}
}

// The API server validates against the CRD's schema, so a workload it
// accepts matches it; this proves the check is live by sending what the
// schema forbids (three workload IPs, port 0), bypassing Validate.
func TestTheAPIServerEnforcesTheCRDSchema(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t, srv)
	ctx := ctxT(t)
	bad := kube.RenderExternalWorkload(&h.w)
	bad.Spec.WorkloadIPs = append(bad.Spec.WorkloadIPs, kube.WorkloadIP{IP: "192.0.2.11"})
	bad.Spec.Ports[0].Port = 0
	b, err := json.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(b); err != nil {
		t.Fatal(err)
	}
	_, err = h.admin.Dynamic.Resource(kube.ExternalWorkloadGVR).Namespace(h.w.Namespace).
		Apply(ctx, h.w.Name, u, metav1.ApplyOptions{FieldManager: "test"})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("apply of a schema-violating ExternalWorkload: got %v, want 422 Invalid", err)
	}
	for _, want := range []string{"spec.workloadIPs", "spec.ports[0].port"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestApplyingTwiceWritesNothing(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t, srv)
	ctx := ctxT(t)
	apply := func() (ewRV, svcRV string) {
		cur, err := h.c.ApplyWorkload(ctx, &h.w)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.c.ApplyService(ctx, &h.w); err != nil {
			t.Fatal(err)
		}
		if _, err := h.c.SetReady(ctx, &h.w, cur, true, kube.ReasonManual, "set by hand"); err != nil {
			t.Fatal(err)
		}
		_, ewRV, err = h.ready(ctx)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := h.getService(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ewRV, svc.ResourceVersion
	}
	ew1, svc1 := apply()
	ew2, svc2 := apply()
	if ew1 != ew2 {
		t.Errorf("ExternalWorkload resourceVersion %s → %s: the second apply wrote", ew1, ew2)
	}
	if svc1 != svc2 {
		t.Errorf("Service resourceVersion %s → %s: the second apply wrote", svc1, svc2)
	}
}

// The RBAC from `meshexp workload rbac` is enough for the host's own
// objects (the other tests) and nothing else.
func TestHostCredentialsReachOnlyTheHostsOwnObjects(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t, srv)
	ctx := ctxT(t)
	other := h.w
	other.Name = "someone-else"
	if _, err := h.admin.ApplyWorkload(ctx, &other); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		do   func() error
	}{
		{"reading another ExternalWorkload", func() error { _, err := h.c.GetWorkload(ctx, &other); return err }},
		{"changing another ExternalWorkload", func() error { _, err := h.c.ApplyWorkload(ctx, &other); return err }},
		{"marking another ExternalWorkload ready", func() error {
			_, err := h.c.SetReady(ctx, &other, nil, true, kube.ReasonManual, "x")
			return err
		}},
		{"deleting another ExternalWorkload", func() error {
			return h.c.Dynamic.Resource(kube.ExternalWorkloadGVR).Namespace(other.Namespace).Delete(ctx, other.Name, metav1.DeleteOptions{})
		}},
		{"listing ExternalWorkloads", func() error {
			_, err := h.c.Dynamic.Resource(kube.ExternalWorkloadGVR).Namespace(h.w.Namespace).List(ctx, metav1.ListOptions{})
			return err
		}},
		{"creating another Service", func() error { return h.c.ApplyService(ctx, &other) }},
		{"creating another Lease", func() error {
			_, err := h.hostTyped.coordination.Leases(h.w.Namespace).Apply(ctx, coordinationv1ac.Lease("someone-else", h.w.Namespace), metav1.ApplyOptions{FieldManager: kube.FieldManager})
			return err
		}},
		{"registering in another namespace", func() error {
			w := h.w
			w.Namespace = "default"
			_, err := h.c.ApplyWorkload(ctx, &w)
			return err
		}},
		{"reading Secrets", func() error {
			_, err := h.hostTyped.core.Secrets(h.w.Namespace).List(ctx, metav1.ListOptions{})
			return err
		}},
	}
	for _, c := range checks {
		if err := c.do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s with the host's credentials: got %v, want 403 Forbidden", c.name, err)
		}
	}
}

func TestReadyFollowsTheProxysReadyEndpointAndIsWrittenOnlyOnTransitions(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t, srv)
	proxy := newProxyStandIn(t)
	proxy.ready.Store(true)
	run(t, h, kube.HTTPProbe(proxy.url, nil), fastOptions())

	h.waitReady(t, "True", kube.ReasonProxyReady)
	ctx := ctxT(t)
	if _, err := h.getService(ctx); err != nil {
		t.Fatalf("the registrar did not apply the Service: %v", err)
	}

	// Steady readiness writes nothing: many probes, same resourceVersion.
	_, rv1, err := h.ready(ctx)
	if err != nil {
		t.Fatal(err)
	}
	proxy.waitProbes(t, 10)
	_, rv2, err := h.ready(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rv1 != rv2 {
		t.Errorf("resourceVersion moved %s → %s while the proxy stayed ready: a write without a transition", rv1, rv2)
	}

	proxy.ready.Store(false)
	h.waitReady(t, "False", kube.ReasonProxyNotReady)
	c, _, err := h.ready(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Message, "503") {
		t.Errorf("not-ready message %q does not say what the probe saw", c.Message)
	}
	proxy.ready.Store(true)
	h.waitReady(t, "True", kube.ReasonProxyReady)
}

func TestTheLeaseIsRenewedAsAHeartbeat(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t, srv)
	opts := fastOptions()
	run(t, h, func(context.Context) error { return nil }, opts)
	ctx := ctxT(t)
	var first time.Time
	eventually.OK(t, "the Lease to exist", func() (bool, error) {
		l, err := h.getLease(ctx)
		if err != nil {
			return false, err
		}
		first = l.Spec.RenewTime.Time
		if got := *l.Spec.HolderIdentity; got != "test-host" {
			t.Errorf("holderIdentity %q, want test-host", got)
		}
		if got := *l.Spec.LeaseDurationSeconds; got != 2 {
			t.Errorf("leaseDurationSeconds %d, want 2", got)
		}
		return true, nil
	})
	for i := 0; i < 3; i++ {
		prev := first
		eventually.OK(t, fmt.Sprintf("renewal %d of the Lease after %s", i+1, prev.Format(time.RFC3339Nano)), func() (bool, error) {
			l, err := h.getLease(ctx)
			if err != nil {
				return false, err
			}
			first = l.Spec.RenewTime.Time
			return first.After(prev), nil
		})
	}
}

func TestGracefulShutdown(t *testing.T) {
	tests := []struct {
		name   string
		delete bool
	}{
		{"keeps the ExternalWorkload marked not ready by default", false},
		{"deletes the ExternalWorkload, Service and Lease when configured", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := kubetest.Get(t)
			h := newHost(t, srv)
			opts := fastOptions()
			opts.DeleteOnShutdown = tt.delete
			stop := run(t, h, func(context.Context) error { return nil }, opts)
			h.waitReady(t, "True", kube.ReasonProxyReady)
			ctx := ctxT(t)
			eventually.OK(t, "the Lease", func() (bool, error) { _, err := h.getLease(ctx); return err == nil, err })
			if err := stop(); err != nil {
				t.Fatalf("graceful shutdown: %v", err)
			}
			if !tt.delete {
				c, _, err := h.ready(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if c.Status != "False" || c.Reason != kube.ReasonShutdown {
					t.Fatalf("after shutdown Ready=%s (%s), want False (%s)", c.Status, c.Reason, kube.ReasonShutdown)
				}
				return
			}
			if _, err := h.getEW(ctx); !isNotFound(err) {
				t.Errorf("ExternalWorkload after shutdown: %v, want NotFound", err)
			}
			if _, err := h.getService(ctx); !isNotFound(err) {
				t.Errorf("Service after shutdown: %v, want NotFound", err)
			}
			if _, err := h.getLease(ctx); !isNotFound(err) {
				t.Errorf("Lease after shutdown: %v, want NotFound", err)
			}
		})
	}
}

// The API server goes away while the proxy changes state; the workload's
// registrar keeps running and the condition catches up when it returns.
func TestStatusIsCorrectAfterTheAPIServerRestarts(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t, srv)
	proxy := newProxyStandIn(t)
	proxy.ready.Store(true)
	stop := run(t, h, kube.HTTPProbe(proxy.url, nil), fastOptions())
	h.waitReady(t, "True", kube.ReasonProxyReady)
	ctx := ctxT(t)
	var before *coordinationv1.Lease
	eventually.OK(t, "the Lease", func() (bool, error) {
		var err error
		before, err = h.getLease(ctx)
		return err == nil, err
	})

	srv.StopAPIServer()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = srv.StartAPIServer(ctxT(t)) // leave the server up for the next test
		}
	})
	proxy.ready.Store(false)
	// Enough probes for the registrar to decide, and attempts to write that
	// fail against the stopped server.
	proxy.waitProbes(t, 10)
	if err := srv.StartAPIServer(ctx); err != nil {
		t.Fatalf("restart kube-apiserver: %v", err)
	}
	restarted = true
	h.waitReady(t, "False", kube.ReasonProxyNotReady)
	eventually.OK(t, "a Lease renewal after the restart", func() (bool, error) {
		l, err := h.getLease(ctx)
		if err != nil {
			return false, err
		}
		return l.Spec.RenewTime.After(before.Spec.RenewTime.Time), nil
	})
	proxy.ready.Store(true)
	h.waitReady(t, "True", kube.ReasonProxyReady)
	if err := stop(); err != nil {
		t.Fatalf("graceful shutdown after the restart: %v", err)
	}
	h.waitReady(t, "False", kube.ReasonShutdown)
}

func TestApplyNamesTheMissingNamespace(t *testing.T) {
	srv := kubetest.Get(t)
	admin, err := kube.NewClient(srv.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	w := workloadIn("no-such-namespace")
	_, err = admin.ApplyWorkload(ctxT(t), &w)
	if err == nil || !strings.Contains(err.Error(), "create namespace no-such-namespace first") {
		t.Fatalf("apply into a missing namespace: %v, want a hint naming the namespace", err)
	}
}
