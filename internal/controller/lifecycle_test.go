package controller_test

import (
	"errors"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

// setup installs the controller's manifests and returns an admin client and
// one with the controller's own least-privilege token.
func setup(t testing.TB) (admin, ctrl dynamic.Interface, ns string) {
	srv := install(t)
	admin, err := dynamic.NewForConfig(srv.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err = dynamic.NewForConfig(srv.TokenConfig(controllerToken(t, admin)))
	if err != nil {
		t.Fatal(err)
	}
	return admin, ctrl, srv.CreateNamespace(t, "fleet")
}

// transitions records every Ready status an ExternalWorkload shows, in
// order, from a watch.
type transitions struct {
	mu   sync.Mutex
	seen []string
}

func watchReady(t testing.TB, dyn dynamic.Interface, ns string) *transitions {
	w, err := dyn.Resource(ewGVR).Namespace(ns).Watch(ctxT(t), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	tr := &transitions{}
	go func() {
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			s, r := ready(obj)
			if ev.Type == watch.Deleted {
				s, r = "deleted", "(was "+s+")"
			}
			tr.mu.Lock()
			if n := len(tr.seen); s != "" && (n == 0 || tr.seen[n-1] != obj.GetName()+" "+s+" "+r) {
				tr.seen = append(tr.seen, obj.GetName()+" "+s+" "+r)
			}
			tr.mu.Unlock()
		}
	}()
	return tr
}

func (tr *transitions) list() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.seen...)
}

func TestAHostRegistersGoesReadyAndWhenSilentGoesNotReadyThenIsDeleted(t *testing.T) {
	admin, ctrlClient, ns := setup(t)
	m := newMesh(t)
	if err := applyGroup(t, admin, groupYAML(ns, "web")); err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, m, ctrlClient, "a")
	tr := watchReady(t, admin, ns)
	h := startHost(t, m, hostOpts{group: "web", namespace: ns, svid: m.svid(t, "spiffe://"+td.Name()+"/hosts/web-1"), addrs: []string{r.addr}})

	ew := waitReady(t, admin, ns, "web-1", "True", "ProxyReady")
	id, _, _ := unstructured.NestedString(ew.Object, "spec", "meshTLS", "identity")
	sn, _, _ := unstructured.NestedString(ew.Object, "spec", "meshTLS", "serverName")
	if id != "spiffe://"+td.Name()+"/hosts/web-1" || sn != "web-1.cluster.local" {
		t.Errorf("meshTLS = %s, %s; want the host's SPIFFE ID and web-1.cluster.local", id, sn)
	}
	l := ew.GetLabels()
	if l["app"] != "web" || l["tier"] != "edge" || l[controller.LabelGroup] != "web" || l[controller.LabelManagedBy] != controller.ManagedBy {
		t.Errorf("labels %v: want the template's and the controller's", l)
	}
	if ew.GetAnnotations()["config.linkerd.io/opaque-ports"] != "5432" {
		t.Errorf("annotations %v: want the template's", ew.GetAnnotations())
	}
	if refs := ew.GetOwnerReferences(); len(refs) != 1 || refs[0].Kind != "ExternalGroup" || refs[0].Name != "web" {
		t.Errorf("ownerReferences %v: want the group", refs)
	}
	conds, _, _ := unstructured.NestedSlice(ew.Object, "status", "conditions")
	c := conds[0].(map[string]any)
	if c["lastProbeTime"] == nil || c["lastTransitionTime"] == nil || c["message"] == "" {
		t.Errorf("Ready condition %v: want lastProbeTime, lastTransitionTime and a message", c)
	}
	var svc *unstructured.Unstructured
	eventually.OK(t, "the group's Service", func() (ok bool, err error) {
		svc, err = admin.Resource(serviceGVR).Namespace(ns).Get(ctxT(t), "web", metav1.GetOptions{})
		return err == nil, err
	})
	if sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector"); sel[controller.LabelGroup] != "web" {
		t.Errorf("Service selector %v: want the group label", sel)
	}
	eventually.OK(t, "the group's status to count one registered, ready host", func() (bool, error) {
		g, err := admin.Resource(controller.GroupGVR).Namespace(ns).Get(ctxT(t), "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		reg, _, _ := unstructured.NestedInt64(g.Object, "status", "registered")
		rdy, _, _ := unstructured.NestedInt64(g.Object, "status", "ready")
		return reg == 1 && rdy == 1, errors.New("status not yet 1/1")
	})

	h.setReady(errors.New("proxy /ready: 503"))
	waitReady(t, admin, ns, "web-1", "False", "ProxyNotReady")
	h.setReady(nil)
	waitReady(t, admin, ns, "web-1", "True", "ProxyReady")

	h.stop()
	waitReady(t, admin, ns, "web-1", "False", controller.ReasonSilent)
	eventually.OK(t, "the silent host's ExternalWorkload to be deleted", func() (bool, error) {
		_, err := admin.Resource(ewGVR).Namespace(ns).Get(ctxT(t), "web-1", metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	want := []string{
		"web-1 True ProxyReady", "web-1 False ProxyNotReady", "web-1 True ProxyReady",
		"web-1 False " + controller.ReasonSilent, "web-1 deleted (was False)",
	}
	eventually.OK(t, "the watch to show every transition", func() (bool, error) { return len(tr.list()) >= len(want), nil })
	got := tr.list()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("transitions %q; want %q (Ready withdrawn before the delete)", got, want)
		}
	}
}

func TestAHostMayVerifyTheControllerByItsTLSName(t *testing.T) {
	admin, ctrlClient, ns := setup(t)
	m := newMesh(t)
	if err := applyGroup(t, admin, groupYAML(ns, "web")); err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, m, ctrlClient, "a")
	startHost(t, m, hostOpts{group: "web", namespace: ns, svid: m.svid(t, "spiffe://"+td.Name()+"/hosts/web-7"),
		expect: controller.ServiceDNSName(controller.DefaultNamespace), addrs: []string{r.addr}})
	waitReady(t, admin, ns, "web-7", "True", "ProxyReady")
	bad := startHost(t, m, hostOpts{group: "web", namespace: ns, svid: m.svid(t, "spiffe://"+td.Name()+"/hosts/web-8"),
		expect: "other.example.com", addrs: []string{r.addr}})
	waitRefused(t, bad, "other.example.com")
}
