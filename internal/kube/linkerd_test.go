package kube_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

// What Linkerd reads from the objects, against the real (dual-stack, IPv4
// first) API server: internal/kube/LINKERD.md.

// Linkerd writes EndpointSlices only in the Service's IP families, so the
// Service must have every family of the workload's addresses.
func TestTheServiceHasTheIPFamiliesOfTheWorkloadsAddresses(t *testing.T) {
	srv := kubetest.Get(t)
	for _, tc := range []struct {
		name     string
		ips      []string
		policy   corev1.IPFamilyPolicy
		families []corev1.IPFamily
	}{
		{"an IPv4 and an IPv6 address: dual-stack, so IPv6 is offered too", []string{"192.0.2.10", "2001:db8::10"}, corev1.IPFamilyPolicyPreferDualStack, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}},
		{"an IPv6 address alone: single-stack IPv6 on an IPv4-first cluster", []string{"2001:db8::10"}, corev1.IPFamilyPolicySingleStack, []corev1.IPFamily{corev1.IPv6Protocol}},
		{"an IPv4 address alone: single-stack IPv4", []string{"192.0.2.10"}, corev1.IPFamilyPolicySingleStack, []corev1.IPFamily{corev1.IPv4Protocol}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, srv)
			h.w.IPs = nil
			for _, s := range tc.ips {
				h.w.IPs = append(h.w.IPs, netip.MustParseAddr(s))
			}
			ctx := ctxT(t)
			if err := h.c.ApplyService(ctx, &h.w); err != nil {
				t.Fatal(err)
			}
			svc, err := h.getService(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := ptr.Deref(svc.Spec.IPFamilyPolicy, ""); got != tc.policy {
				t.Errorf("ipFamilyPolicy = %q, want %s", got, tc.policy)
			}
			if !slices.Equal(svc.Spec.IPFamilies, tc.families) {
				t.Errorf("ipFamilies = %v, want %v", svc.Spec.IPFamilies, tc.families)
			}
			if len(svc.Spec.ClusterIPs) != len(tc.families) {
				t.Errorf("clusterIPs = %v, want one per family %v", svc.Spec.ClusterIPs, tc.families)
			}
			for i, ip := range svc.Spec.ClusterIPs {
				a := netip.MustParseAddr(ip)
				if i < len(tc.families) && a.Is6() != (tc.families[i] == corev1.IPv6Protocol) {
					t.Errorf("clusterIP %s is not %s", ip, tc.families[i])
				}
			}
		})
	}
}

// The policy controller reads opaque ports only from the annotation, the
// destination controller the opaque-transport port only from the port
// named linkerd-proxy: both must say what the host's proxy does.
func TestTheExternalWorkloadTellsLinkerdTheProxysPorts(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t, srv)
	h.w.ProxyInboundPort = 4200
	h.w.OpaquePorts = "3306,4000-4100"
	ctx := ctxT(t)
	if _, err := h.c.ApplyWorkload(ctx, &h.w); err != nil {
		t.Fatal(err)
	}
	if err := h.c.ApplyService(ctx, &h.w); err != nil {
		t.Fatal(err)
	}
	ew, err := h.getEW(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ew.Metadata.Annotations[kube.AnnotationOpaquePorts]; got != "3306,4000-4100" {
		t.Errorf("annotation %s = %q, want the proxy's opaque ports 3306,4000-4100", kube.AnnotationOpaquePorts, got)
	}
	var proxyPorts []int32
	for _, p := range ew.Spec.Ports {
		if p.Name == "linkerd-proxy" {
			proxyPorts = append(proxyPorts, p.Port)
		}
	}
	if !slices.Equal(proxyPorts, []int32{4200}) {
		t.Errorf("linkerd-proxy ports = %v, want the proxy's inbound port [4200]", proxyPorts)
	}
	svc, err := h.getService(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "linkerd-proxy" || p.TargetPort.StrVal == "linkerd-proxy" {
			t.Errorf("the Service exposes the proxy's port: %+v", p)
		}
	}

	// Settings change: the annotation follows (server-side apply drops
	// what meshexp no longer writes), and so does the port.
	h.w.OpaquePorts = ""
	h.w.ProxyInboundPort = 4143
	if _, err := h.c.ApplyWorkload(ctx, &h.w); err != nil {
		t.Fatal(err)
	}
	if ew, err = h.getEW(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := ew.Metadata.Annotations[kube.AnnotationOpaquePorts]; ok {
		t.Errorf("annotation still %q after the opaque ports were emptied", v)
	}
	if p := ew.Spec.Ports[len(ew.Spec.Ports)-1]; p.Name != "linkerd-proxy" || p.Port != 4143 {
		t.Errorf("last port = %+v, want linkerd-proxy 4143", p)
	}
}

// Deleting a Ready=True ExternalWorkload that is the last endpoint of a
// Service that stays leaves Linkerd offering it: Ready=False must come
// first, on every way out.
func TestLeavingTheMeshWritesReadyFalseBeforeDeleting(t *testing.T) {
	srv := kubetest.Get(t)
	for _, tc := range []struct {
		name  string
		leave func(t *testing.T, h *host)
	}{
		{"Withdraw, as `meshexp workload delete` calls it", func(t *testing.T, h *host) {
			if err := h.c.Withdraw(ctxT(t), &h.w, kube.Withdrawal{Reason: kube.ReasonManual, Message: "test", Delete: true, Logger: logger(t)}); err != nil {
				t.Fatal(err)
			}
		}},
		{"the registrar's shutdown with DeleteOnShutdown", func(t *testing.T, h *host) {
			opts := fastOptions()
			opts.DeleteOnShutdown = true
			stop := run(t, h, func(context.Context) error { return nil }, opts)
			h.waitReady(t, "True", kube.ReasonProxyReady)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHost(t, srv)
			ctx := ctxT(t)
			cur, err := h.c.ApplyWorkload(ctx, &h.w)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.c.ApplyService(ctx, &h.w); err != nil {
				t.Fatal(err)
			}
			if _, err := h.c.SetReady(ctx, &h.w, cur, true, kube.ReasonManual, "ready before leaving"); err != nil {
				t.Fatal(err)
			}
			events := watchWorkload(t, h)
			tc.leave(t, h)
			assertReadyFalseThenDeleted(t, events)
		})
	}
}

// watchWorkload records the ExternalWorkload's changes from now on, as
// "Ready=<status>" and "DELETED".
func watchWorkload(t *testing.T, h *host) func() []string {
	t.Helper()
	ctx := ctxT(t)
	_, rv, err := h.ready(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := h.admin.Dynamic.Resource(kube.ExternalWorkloadGVR).Namespace(h.w.Namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector: "metadata.name=" + h.w.Name, ResourceVersion: rv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	var seen []string
	return func() []string {
		timeout := time.After(waitDeadline)
		for {
			select {
			case ev, ok := <-w.ResultChan():
				if !ok {
					return seen
				}
				switch ev.Type {
				case watch.Deleted:
					return append(seen, "DELETED")
				case watch.Modified:
					u := ev.Object.(*unstructured.Unstructured)
					conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
					for _, c := range conds {
						m, _ := c.(map[string]any)
						if m["type"] == kube.ConditionReady {
							if s := "Ready=" + m["status"].(string); len(seen) == 0 || seen[len(seen)-1] != s {
								seen = append(seen, s)
							}
						}
					}
				}
			case <-timeout:
				t.Fatalf("no DELETED event within %s; saw %v", waitDeadline, seen)
			}
		}
	}
}

func assertReadyFalseThenDeleted(t *testing.T, events func() []string) {
	t.Helper()
	got := events()
	if len(got) < 2 || got[len(got)-2] != "Ready=False" || got[len(got)-1] != "DELETED" {
		t.Errorf("the ExternalWorkload went through %v; want Ready=False written before it was deleted", got)
	}
}
