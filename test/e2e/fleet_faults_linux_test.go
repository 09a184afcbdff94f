//go:build linux

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
	"github.com/meshexp/meshexp/internal/trust"
)

// The fleet controller's faults with each host a real `meshexp bootstrap`
// (embedded SPIRE, the stand-in proxy, the registration agent as the
// proxy's uid) in its namespace pair, and the controller as `meshexp
// controller` processes on the real API server with the token of their
// installed ServiceAccount. Each host reaches the controller through a
// relay on the peer's address (the Service), so its stream crosses
// interception like in fleet_linux_test.go.

// hostID is the SPIFFE ID bootstrap gives the host (WORKLOAD_NAME=web);
// its ExternalWorkload is "web".
var hostID = "spiffe://" + trust.DefaultTrustDomain + "/web"

// fleetHost starts a host registering through relay into group web of ns.
func fleetHost(t *testing.T, h *host, relay *fleetRelay, ns string, extraEnv ...string) {
	t.Helper()
	h.env = append(h.env, "MESHEXP_CONTROLLER_ADDR="+relay.addr, "MESHEXP_GROUP=web", "WORKLOAD_NAMESPACE="+ns,
		"MESHEXP_WORKLOAD_IPS="+h.pair.Addr4.String())
	h.env = append(h.env, extraEnv...)
	h.start() // returns once the workload answers
}

// TestFleetAKilledHostIsWithdrawnThenDeleted: kill -9 of meshexp turns
// the host's ExternalWorkload Ready=False HostStoppedReporting after the
// group's grace, then deletes it after the cleanup period, readiness
// withdrawn first. The host's next start registers it afresh.
func TestFleetAKilledHostIsWithdrawnThenDeleted(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t)
	dyn := installController(t, srv)
	ns := srv.CreateNamespace(t, "fleet")
	applyGroup(t, dyn, ns, 3, 6, hostID)
	certs := filepath.Join(h.base, "certs")
	c := startFleetController(t, controllerKubeconfig(t, srv, dyn), controllerTLSDir(t, certs, filepath.Join(certs, "ca.crt")))
	relay := h.fleetRelay(t, c.addr)
	fleetHost(t, h, relay, ns)
	h.waitFor("the ExternalWorkload to be Ready=True", 90*time.Second, workloadReady(dyn, ns, "web", "True", ""))
	w := watchWorkloads(t, dyn, ns)

	h.signal(syscall.SIGKILL)
	h.wait(30 * time.Second)
	h.waitUntil("the ExternalWorkload to be Ready=False HostStoppedReporting", 60*time.Second,
		workloadReady(dyn, ns, "web", "False", controller.ReasonSilent))
	h.waitUntil("the ExternalWorkload to be deleted", 60*time.Second, func() error {
		_, err := dyn.Resource(kube.ExternalWorkloadGVR).Namespace(ns).Get(context.Background(), "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	w.until(t, "the watch to show the delete", func(events []ewEvent) bool {
		return len(events) > 0 && events[len(events)-1].typ == watch.Deleted
	})
	// The events since the kill: Ready=False, then the delete of the
	// object as it was then, each no sooner than its period after the
	// host's last report (lastProbeTime).
	events := w.list(t)
	var silent, deleted *ewEvent
	for i, e := range events {
		switch {
		case e.typ == watch.Deleted:
			deleted = &events[i]
		case e.ready == "False" && e.reason == controller.ReasonSilent && silent == nil:
			silent = &events[i]
		}
	}
	switch {
	case silent == nil || deleted == nil || deleted.ready != "False" || silent.at.After(deleted.at):
		t.Errorf("events %v: want Ready=False %s, then the delete", events, controller.ReasonSilent)
	case silent.at.Sub(silent.probed) < 3*time.Second || deleted.at.Sub(silent.probed) < 6*time.Second:
		t.Errorf("last report %s, Ready=False at %s, deleted at %s: want the group's 3 s and 6 s to pass first",
			silent.probed.Format(time.TimeOnly), silent.at.Format(time.TimeOnly), deleted.at.Format(time.TimeOnly))
	}

	// The next start ends what the crash left and registers the host
	// again, into a new object; a clean stop then leaves nothing.
	h.start()
	h.waitFor("the host's new ExternalWorkload to be Ready=True", 90*time.Second, workloadReady(dyn, ns, "web", "True", ""))
	h.stopCleanly()
}

// TestFleetACutLinkGoesNotReadyAndBackWithoutADuplicate: a partition
// between the host and the controller (a drop rule in the peer namespace,
// meshexp and its agent alive) turns Ready=False within the grace; when
// the link comes back the host is Ready=True again, in the same object.
func TestFleetACutLinkGoesNotReadyAndBackWithoutADuplicate(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t)
	dyn := installController(t, srv)
	ns := srv.CreateNamespace(t, "fleet")
	applyGroup(t, dyn, ns, 3, 600, hostID)
	certs := filepath.Join(h.base, "certs")
	c := startFleetController(t, controllerKubeconfig(t, srv, dyn), controllerTLSDir(t, certs, filepath.Join(certs, "ca.crt")))
	relay := h.fleetRelay(t, c.addr)
	w := watchWorkloads(t, dyn, ns)
	fleetHost(t, h, relay, ns)
	h.waitFor("the ExternalWorkload to be Ready=True", 90*time.Second, workloadReady(dyn, ns, "web", "True", ""))
	agent := h.pidOf("controller agent --socket " + h.base)

	drop := [][]string{{"INPUT", "--dport"}, {"OUTPUT", "--sport"}}
	rules := func(op string) {
		for _, r := range drop {
			if out, err := h.pair.Peer.Command(context.Background(), "iptables", "-w", op, r[0], "-p", "tcp", r[1], "8443", "-j", "DROP").CombinedOutput(); err != nil {
				t.Fatalf("iptables %s in the peer namespace: %v\n%s", op, err, out)
			}
		}
	}
	rules("-I")
	h.waitFor("the ExternalWorkload to be Ready=False HostStoppedReporting", 60*time.Second,
		workloadReady(dyn, ns, "web", "False", controller.ReasonSilent))
	if err := h.serves(); err != nil {
		t.Errorf("the workload stopped serving while the link was cut: %v", err)
	}
	rules("-D")
	h.waitFor("the ExternalWorkload to be Ready=True again", 90*time.Second, workloadReady(dyn, ns, "web", "True", ""))
	if now := h.pidOf("controller agent --socket " + h.base); now != agent {
		t.Errorf("the registration agent changed (pid %d → %d): the cut should not have stopped it", agent, now)
	}

	list, err := dyn.Resource(kube.ExternalWorkloadGVR).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Errorf("want exactly one ExternalWorkload, got %v (%v)", list, err)
	}
	w.until(t, "the watch to show Ready=True again", func(events []ewEvent) bool {
		cut := false
		for _, e := range events {
			cut = cut || e.ready == "False"
			if cut && e.ready == "True" {
				return true
			}
		}
		return false
	})
	events := w.list(t)
	seen := map[string]bool{}
	var states []string
	for _, e := range events {
		seen[e.name+" "+string(e.uid)] = true
		if e.typ == watch.Deleted {
			t.Errorf("the ExternalWorkload was deleted: %v", events)
		}
		if s := e.ready + " " + e.reason; len(states) == 0 || states[len(states)-1] != s {
			states = append(states, s)
		}
	}
	if len(seen) != 1 {
		t.Errorf("ExternalWorkloads seen %v, want one object throughout: %v", seen, events)
	}
	if got := strings.Join(states, ", "); !strings.Contains(got, "True ProxyReady, False "+controller.ReasonSilent+", True ProxyReady") {
		t.Errorf("Ready went %s; want True, False %s, True", got, controller.ReasonSilent)
	}
	h.stopCleanly()
}

// TestFleetKillingTheLeaderNeverFlapsAConnectedHost: two `meshexp
// controller` replicas elect a leader through the Lease. SIGKILL of the
// leader, with the host's stream on either replica: on the leader, the
// host reconnects through the relay (the Service) to the other replica;
// on the follower, which relays its reports to the leader, the stream
// stays where it is. The follower takes the Lease over and the
// ExternalWorkload stays Ready=True throughout (watched continuously).
// Dead-host detection then works under the new leader.
func TestFleetKillingTheLeaderNeverFlapsAConnectedHost(t *testing.T) {
	for _, onLeader := range []bool{true, false} {
		name := "a host connected to the leader"
		if !onLeader {
			name = "a host relayed by the follower"
		}
		t.Run(name, func(t *testing.T) { leaderKilled(t, onLeader) })
	}
}

func leaderKilled(t *testing.T, onLeader bool) {
	const grace = 4
	srv := kubetest.Get(t)
	h := newHost(t)
	dyn := installController(t, srv)
	ns := srv.CreateNamespace(t, "fleet")
	applyGroup(t, dyn, ns, grace, 600, hostID)
	certs := filepath.Join(h.base, "certs")
	kc, tlsDir := controllerKubeconfig(t, srv, dyn), controllerTLSDir(t, certs, filepath.Join(certs, "ca.crt"))
	a := startFleetController(t, kc, tlsDir)
	a.waitFor("to lead", a.leads)
	b := startFleetController(t, kc, tlsDir)
	targets := []string{a.addr, b.addr} // the relay tries them in order
	if !onLeader {
		targets = []string{b.addr, a.addr}
	}
	fleetHost(t, h, h.fleetRelay(t, targets...), ns)
	h.waitFor("the ExternalWorkload to be Ready=True", 90*time.Second, workloadReady(dyn, ns, "web", "True", ""))
	if b.leads() {
		t.Fatal("replica b leads while a runs")
	}
	w := watchWorkloads(t, dyn, ns)

	a.stop(syscall.SIGKILL) // the Lease stays held until it expires, as after a crash
	b.waitFor("to take over", b.leads)
	tookOver := time.Now()
	lease, err := dyn.Resource(schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}).
		Namespace(controller.DefaultNamespace).Get(context.Background(), controller.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if holder, _, _ := unstructured.NestedString(lease.Object, "spec", "holderIdentity"); holder != b.addr {
		t.Errorf("Lease holder %q, want replica b %s", holder, b.addr)
	}
	// A flap would show within a grace of the takeover (the new leader
	// counts every host's grace from it): watch for twice as long.
	h.waitFor(fmt.Sprintf("%ds after the takeover without a flap", 2*grace), 60*time.Second, func() error {
		for _, e := range w.list(t) {
			if e.typ == watch.Deleted || e.ready != "True" {
				t.Fatalf("the healthy host flapped during the failover: %v", w.list(t))
			}
		}
		if time.Since(tookOver) < 2*grace*time.Second {
			return fmt.Errorf("observed for %s", time.Since(tookOver).Round(time.Second))
		}
		return nil
	})
	if onLeader {
		h.waitFor("the host to register again after the leader's death (through replica b)", 60*time.Second, func() error {
			if n := strings.Count(h.logs.String(), "registered with the controller"); n < 2 {
				return fmt.Errorf("registered %d time(s)", n)
			}
			return nil
		})
	}

	// Dead-host detection under the new leader: the host stops for good.
	h.stopCleanly()
	h.waitUntil("the ExternalWorkload to be Ready=False HostStoppedReporting under the new leader", 60*time.Second,
		workloadReady(dyn, ns, "web", "False", controller.ReasonSilent))
}

// TestFleetRefusalsReachTheHostAndNeverBlockTheWorkload: one host, which
// verifies the controller by its Service's DNS name, meets each refusal in
// turn; each reaches meshexp's log (from the registration agent) naming
// what is wrong while the workload starts and keeps serving. Fixed, the
// host registers without a restart, and what the refusals protected is
// untouched.
func TestFleetRefusalsReachTheHostAndNeverBlockTheWorkload(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t)
	dyn := installController(t, srv)
	ns := srv.CreateNamespace(t, "fleet")
	certs := filepath.Join(h.base, "certs")
	anchor := filepath.Join(certs, "ca.crt")
	kc := controllerKubeconfig(t, srv, dyn)
	good := startFleetController(t, kc, controllerTLSDir(t, certs, anchor))
	good.waitFor("to lead", good.leads)
	relay := h.fleetRelay(t, good.addr)
	// No group yet: the workload starts all the same.
	fleetHost(t, h, relay, ns, "MESHEXP_CONTROLLER_IDENTITY="+controller.ServiceDNSName(controller.DefaultNamespace))

	logged := func(what, says string) {
		t.Helper()
		var line string
		h.waitFor("the refusal for "+what+" in meshexp's log", 90*time.Second, func() (err error) {
			line, err = h.logLine(says)
			return err
		})
		t.Logf("%s: %s", what, line)
		if err := h.serves(); err != nil {
			t.Errorf("after the refusal for %s the workload does not answer: %v", what, err)
		}
	}
	refused := func(what, says string) { t.Helper(); logged(what, "refused by the controller: "+says) }
	refused("a missing group", "ExternalGroup "+ns+"/web not found; create it")

	applyGroup(t, dyn, ns, 3, 600, "spiffe://"+trust.DefaultTrustDomain+"/db")
	refused("an ID the group does not admit", "SPIFFE ID "+hostID+" may not join ExternalGroup "+ns+"/web (it admits 1 listed ID(s))")

	// A controller of another trust domain (its certificate still signed
	// by the host's anchor, so the host accepts it by DNS name).
	otherTD := startFleetController(t, kc, controllerTLSDir(t, certs, anchor, "--trust-domain", "other.example"), "--trust-domain", "other.example")
	relay.set(otherTD.addr)
	refused("an SVID of another trust domain", "SVID "+hostID+" is from trust domain")
	otherTD.stop(syscall.SIGTERM)

	// A controller that trusts another anchor than the host's.
	elsewhere, err := trust.NewRoot(trust.DefaultTrustDomain, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherAnchor := filepath.Join(t.TempDir(), "ca.crt")
	if err := elsewhere.WriteFiles(otherAnchor, filepath.Join(filepath.Dir(otherAnchor), "ca.key")); err != nil {
		t.Fatal(err)
	}
	otherCA := startFleetController(t, kc, controllerTLSDir(t, certs, otherAnchor))
	relay.set(otherCA.addr)
	refused("an SVID not chained to the controller's anchor", "SVID "+hostID+" does not chain to the mesh's trust anchor")
	otherCA.stop(syscall.SIGTERM)

	// A controller with another identity: the host's own anchor signed
	// its certificate, for another namespace's names. The host refuses it.
	impostor := startFleetController(t, kc, controllerTLSDir(t, certs, anchor, "--namespace", "elsewhere"))
	relay.set(impostor.addr)
	logged("a controller with another identity", "TLS handshake with the controller failed (check the controller identity setting and the trust anchor)")
	impostor.stop(syscall.SIGTERM)
	relay.set(good.addr)

	// A template the controller cannot render for the host.
	applyGroupLabelled(t, dyn, ns, `{app: web, "bad key!": x}`, 3, 600, hostID)
	refused("an invalid template", "ExternalGroup "+ns+"/web has an invalid template: spec.workload.labels")

	ews := dyn.Resource(kube.ExternalWorkloadGVR).Namespace(ns)
	list, err := ews.List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 0 {
		t.Errorf("refused registrations made ExternalWorkloads: %v (%v)", list.Items, err)
	}

	// An ExternalWorkload of the host's name that someone else made.
	handMade := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "workload.linkerd.io/v1beta1", "kind": "ExternalWorkload",
		"metadata": map[string]any{"name": "web", "namespace": ns},
		"spec": map[string]any{
			"meshTLS": map[string]any{"identity": hostID, "serverName": "web.cluster.local"},
			"ports":   []any{map[string]any{"port": int64(8000)}}, "workloadIPs": []any{map[string]any{"ip": "192.0.2.99"}},
		},
	}}
	before, err := ews.Create(context.Background(), handMade, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	applyGroup(t, dyn, ns, 3, 600, hostID)
	refused("an object not the controller's", "ExternalWorkload "+ns+"/web exists and is not managed by ExternalGroup web")
	after, err := ews.Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil || after.GetResourceVersion() != before.GetResourceVersion() {
		t.Errorf("the hand-made ExternalWorkload was touched: %v (resourceVersion %s → %s)", err, before.GetResourceVersion(), after.GetResourceVersion())
	}

	// Fixed: the host registers without a restart.
	if err := ews.Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the ExternalWorkload to be Ready=True once admitted", 90*time.Second, workloadReady(dyn, ns, "web", "True", ""))
	h.stopCleanly()
}

// TestFleetAHostCannotWriteAnotherHostsObject: two identities whose last
// path segment is the same name their ExternalWorkload. The first to
// register (a host in the test's process with an SVID for /other/web from
// the same anchor) owns ExternalWorkload web, bound to its identity; the
// real bootstrap host (/web) is then refused: meshexp's log, /status,
// `meshexp status` and `meshexp check` name the identity the object is
// bound to, the other host's object is untouched, and the workload starts
// and serves all the same.
func TestFleetAHostCannotWriteAnotherHostsObject(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t)
	dyn := installController(t, srv)
	ns := srv.CreateNamespace(t, "fleet")
	otherID := "spiffe://" + trust.DefaultTrustDomain + "/other/web"
	const otherIP = "192.0.2.20"
	applyGroup(t, dyn, ns, 3, 600, otherID, hostID)
	certs := filepath.Join(h.base, "certs")
	c := startFleetController(t, controllerKubeconfig(t, srv, dyn), controllerTLSDir(t, certs, filepath.Join(certs, "ca.crt")))
	c.waitFor("to lead", c.leads)

	other := startInProcessHost(t, certs, c.addr, ns, otherID, otherIP)
	h.waitFor("the other host's ExternalWorkload to be Ready=True", 90*time.Second, workloadReady(dyn, ns, "web", "True", ""))
	get := func() *unstructured.Unstructured {
		t.Helper()
		obj, err := dyn.Resource(kube.ExternalWorkloadGVR).Namespace(ns).Get(context.Background(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
	before := get()
	if id, _, _ := unstructured.NestedString(before.Object, "spec", "meshTLS", "identity"); id != otherID {
		t.Fatalf("ExternalWorkload web has meshTLS.identity %q, want the other host's %s", id, otherID)
	}

	relay := h.fleetRelay(t, c.addr)
	fleetHost(t, h, relay, ns)
	says := "refused by the controller: ExternalWorkload " + ns + "/web is bound to identity " + otherID + ", not " + hostID
	// Twice: the agent keeps retrying, and its retries are refused too.
	var line string
	h.waitFor("the refusal in meshexp's log, twice", 90*time.Second, func() (err error) {
		if line, err = h.logLine(says); err != nil {
			return err
		}
		if n := strings.Count(h.logs.String(), "is bound to identity "+otherID+", not "+hostID); n < 2 {
			return fmt.Errorf("logged %d time(s)", n)
		}
		return nil
	})
	t.Logf("refused: %s", line)
	if err := h.serves(); err != nil {
		t.Errorf("the refused host's workload does not answer: %v", err)
	}
	h.waitFor("meshexp's /status to show the registration refused", 60*time.Second, func() error {
		reg, err := h.controllerRegistration()
		if err != nil {
			return err
		}
		if reg == nil || reg.State != "refused" || !strings.Contains(reg.Error, says) || reg.ExternalWorkload != "" || !reg.LastRegistered.IsZero() {
			return fmt.Errorf("registration: %+v", reg)
		}
		return nil
	})
	if out, err := h.meshexp("status"); err != nil || !strings.Contains(out, "through the controller at "+relay.addr+", ExternalGroup "+ns+"/web") ||
		!strings.Contains(out, "refused") || !strings.Contains(out, says) {
		t.Errorf("meshexp status (%v):\n%s", err, out)
	}
	checkOut, _ := h.meshexp("check")
	if !strings.Contains(checkOut, "× this host is registered with the controller") || !strings.Contains(checkOut, says) {
		t.Errorf("meshexp check does not fail the registration with the refusal:\n%s", checkOut)
	}

	// The other host's object: the same one, still bound to it, with its
	// address and readiness, and not written since (its host reports the
	// same readiness throughout); the other host stays registered.
	after := get()
	id, _, _ := unstructured.NestedString(after.Object, "spec", "meshTLS", "identity")
	ips, _, _ := unstructured.NestedSlice(after.Object, "spec", "workloadIPs")
	ready, _, _ := readyOf(after)
	if after.GetUID() != before.GetUID() || after.GetResourceVersion() != before.GetResourceVersion() ||
		after.GetAnnotations()["meshexp.io/spiffe-id"] != otherID || id != otherID ||
		len(ips) != 1 || ips[0].(map[string]any)["ip"] != otherIP || ready != "True" {
		t.Errorf("the other host's ExternalWorkload changed: uid %s → %s, resourceVersion %s → %s, identity %q, IPs %v, Ready=%s",
			before.GetUID(), after.GetUID(), before.GetResourceVersion(), after.GetResourceVersion(), id, ips, ready)
	}
	if s := other.State(); !s.Registered || s.Name != "web" {
		t.Errorf("the other host's registration: %+v", s)
	}
	list, err := dyn.Resource(kube.ExternalWorkloadGVR).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Errorf("want only the other host's ExternalWorkload, got %d (%v)", len(list.Items), err)
	}
	h.stopCleanly()
}
