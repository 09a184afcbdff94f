package controller_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/standin"
	"github.com/meshexp/meshexp/internal/trust"
)

func TestHostsAreRefusedWithAnErrorNamingWhatIsWrong(t *testing.T) {
	admin, ctrlClient, ns := setup(t)
	m := newMesh(t)
	if err := applyGroup(t, admin, groupYAML(ns, "web")); err != nil {
		t.Fatal(err)
	}
	if err := applyGroup(t, admin, groupYAML(ns, "listed", "identities: {pathPrefix: /hosts/}", "identities: {ids: [\"spiffe://"+td.Name()+"/db/db-1\"]}")); err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, m, ctrlClient, "a")
	// Another mesh: its own root, and a trust domain of its own or ours.
	other := standin.NewCA(t)
	otherTD, err := trust.NewRoot("other.example", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherTDCA := &standin.CA{Root: otherTD, Signer: otherTD}
	// An ExternalWorkload somebody else made, with the name a host's
	// identity would get: the controller must leave it alone.
	foreign := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "workload.linkerd.io/v1beta1", "kind": "ExternalWorkload",
		"metadata": map[string]any{"name": "hand-made", "namespace": ns},
		"spec": map[string]any{
			"meshTLS": map[string]any{"identity": "spiffe://" + td.Name() + "/hand-made", "serverName": "hand-made.cluster.local"},
			"ports":   []any{map[string]any{"port": int64(80)}}, "workloadIPs": []any{map[string]any{"ip": "192.0.2.99"}},
		},
	}}
	before, err := admin.Resource(ewGVR).Namespace(ns).Create(ctxT(t), foreign, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		opts  hostOpts
		svid  func() string // SPIFFE ID, minted by m's CA unless ca is set
		ca    *standin.CA
		wants string
	}{
		{name: "an SVID from another trust domain", ca: otherTDCA,
			opts: hostOpts{group: "web"}, svid: func() string { return "spiffe://other.example/hosts/x-1" },
			wants: `is from trust domain "other.example"`},
		{name: "an SVID not chained to the mesh's trust anchor", ca: other,
			opts: hostOpts{group: "web"}, svid: func() string { return "spiffe://" + td.Name() + "/hosts/x-2" },
			wants: "does not chain to the mesh's trust anchor"},
		{name: "a SPIFFE ID outside the group's path prefix",
			opts: hostOpts{group: "web"}, svid: func() string { return "spiffe://" + td.Name() + "/db/x-3" },
			wants: `may not join ExternalGroup ` + ns + `/web (it admits path prefix "/hosts/")`},
		{name: "a SPIFFE ID not in the group's list",
			opts: hostOpts{group: "listed"}, svid: func() string { return "spiffe://" + td.Name() + "/db/db-2" },
			wants: "may not join ExternalGroup " + ns + "/listed (it admits 1 listed ID(s))"},
		{name: "a group that does not exist",
			opts: hostOpts{group: "nope"}, svid: func() string { return "spiffe://" + td.Name() + "/hosts/x-4" },
			wants: "ExternalGroup " + ns + "/nope not found"},
		{name: "a host naming another host's ExternalWorkload",
			opts: hostOpts{group: "web", name: "web-1"}, svid: func() string { return "spiffe://" + td.Name() + "/hosts/web-2" },
			wants: "may write only the ExternalWorkload " + ns + "/web-2; " + ns + "/web-1 is not bound to it"},
		{name: "a host whose name is taken by an object the controller does not own",
			opts: hostOpts{group: "web"}, svid: func() string { return "spiffe://" + td.Name() + "/hosts/hand-made" },
			wants: "ExternalWorkload " + ns + "/hand-made exists and is not managed by ExternalGroup web"},
		{name: "a controller whose identity is not the one the host expects",
			opts: hostOpts{group: "web", expect: "spiffe://" + td.Name() + "/ns/elsewhere/sa/impostor"}, svid: func() string { return "spiffe://" + td.Name() + "/hosts/x-5" },
			wants: "the controller presented identity " + controller.ControllerID(td.Name(), controller.DefaultNamespace) + ", not the expected"},
		{name: "a loopback workload address",
			opts: hostOpts{group: "web", ip: "127.0.0.1"}, svid: func() string { return "spiffe://" + td.Name() + "/hosts/x-6" },
			wants: `workload IP "127.0.0.1": not an address the cluster can reach`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := tc.ca
			if ca == nil {
				ca = m.ca
			}
			o := tc.opts
			o.namespace, o.addrs, o.svid = ns, []string{r.addr}, svidFrom(t, ca, tc.svid())
			h := startHost(t, m, o)
			waitRefused(t, h, tc.wants)
			if s := h.client.State(); s.Registered {
				t.Errorf("state %+v: registered", s)
			}
		})
	}
	after, err := admin.Resource(ewGVR).Namespace(ns).Get(ctxT(t), "hand-made", metav1.GetOptions{})
	if err != nil || after.GetResourceVersion() != before.GetResourceVersion() {
		t.Errorf("the hand-made ExternalWorkload was touched: %v (resourceVersion %s → %s)", err, before.GetResourceVersion(), after.GetResourceVersion())
	}
	list, err := admin.Resource(ewGVR).Namespace(ns).List(ctxT(t), metav1.ListOptions{LabelSelector: controller.LabelManagedBy + "=" + controller.ManagedBy})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("refused hosts got ExternalWorkloads: %v %v", list, err)
	}
}

func TestAnInvalidTemplateIsReportedAndAForeignServiceIsLeftAlone(t *testing.T) {
	admin, ctrlClient, ns := setup(t)
	m := newMesh(t)
	// A label key the schema cannot judge, and a label the controller
	// reserves: both reported in the group's TemplateValid condition.
	if err := applyGroup(t, admin, groupYAML(ns, "bad", "labels: {app: web, tier: edge}", `labels: {"bad key!": "x", "meshexp.io/group": "y"}`)); err != nil {
		t.Fatal(err)
	}
	// A Service that is not the controller's, named by a group.
	svc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "taken", "namespace": ns},
		"spec": map[string]any{"ports": []any{map[string]any{"port": int64(80)}}, "selector": map[string]any{"app": "other"}},
	}}
	before, err := admin.Resource(serviceGVR).Namespace(ns).Create(ctxT(t), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := applyGroup(t, admin, groupYAML(ns, "web", "service: {name: web}", "service: {name: taken}")); err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, m, ctrlClient, "a")
	cond := func(group, typ string) (string, string) {
		g, err := admin.Resource(controller.GroupGVR).Namespace(ns).Get(ctxT(t), group, metav1.GetOptions{})
		if err != nil {
			return "", err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(g.Object, "status", "conditions")
		for _, c := range conds {
			if c := c.(map[string]any); c["type"] == typ {
				return c["status"].(string), c["message"].(string)
			}
		}
		return "", ""
	}
	eventually.OK(t, "TemplateValid=False naming both labels", func() (bool, error) {
		s, msg := cond("bad", controller.CondTemplateValid)
		return s == "False" && strings.Contains(msg, `spec.workload.labels key "bad key!"`) && strings.Contains(msg, `"meshexp.io/group": set by the controller`), errors.New(s + " " + msg)
	})
	eventually.OK(t, "ServiceReady=False naming the foreign Service", func() (bool, error) {
		s, msg := cond("web", controller.CondServiceReady)
		return s == "False" && strings.Contains(msg, "Service "+ns+"/taken exists and is not managed by this group"), errors.New(s + " " + msg)
	})
	h := startHost(t, m, hostOpts{group: "bad", namespace: ns, svid: m.svid(t, "spiffe://"+td.Name()+"/hosts/b-1"), addrs: []string{r.addr}})
	waitRefused(t, h, "ExternalGroup "+ns+"/bad has an invalid template: spec.workload.labels")
	after, err := admin.Resource(serviceGVR).Namespace(ns).Get(ctxT(t), "taken", metav1.GetOptions{})
	if err != nil || after.GetResourceVersion() != before.GetResourceVersion() {
		t.Errorf("the foreign Service was touched: %v (resourceVersion %s → %s)", err, before.GetResourceVersion(), after.GetResourceVersion())
	}
}

// TestAnObjectBoundToOneIdentityRefusesAnother: two identities whose last
// path segment is the same name; the first owns ExternalWorkload "shared",
// the second is refused naming the binding, and the object stays as it was.
func TestAnObjectBoundToOneIdentityRefusesAnother(t *testing.T) {
	admin, ctrlClient, ns := setup(t)
	m := newMesh(t)
	if err := applyGroup(t, admin, groupYAML(ns, "web")); err != nil {
		t.Fatal(err)
	}
	r := startReplica(t, m, ctrlClient, "a")
	first, second := "spiffe://"+td.Name()+"/hosts/a/shared", "spiffe://"+td.Name()+"/hosts/b/shared"
	startHost(t, m, hostOpts{group: "web", namespace: ns, ip: "192.0.2.30", addrs: []string{r.addr}, svid: svidFrom(t, m.ca, first)})
	before := waitReady(t, admin, ns, "shared", "True", "")

	h := startHost(t, m, hostOpts{group: "web", namespace: ns, ip: "192.0.2.31", addrs: []string{r.addr}, svid: svidFrom(t, m.ca, second)})
	waitRefused(t, h, "ExternalWorkload "+ns+"/shared is bound to identity "+first+", not "+second)
	if s := h.client.State(); s.Registered {
		t.Errorf("state %+v: registered", s)
	}
	after, err := admin.Resource(ewGVR).Namespace(ns).Get(ctxT(t), "shared", metav1.GetOptions{})
	if err != nil || after.GetResourceVersion() != before.GetResourceVersion() {
		t.Errorf("the first host's ExternalWorkload was touched: %v (resourceVersion %s → %s)", err, before.GetResourceVersion(), after.GetResourceVersion())
	}
}
