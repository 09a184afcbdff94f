//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
	"github.com/meshexp/meshexp/internal/trust"
)

// TestBootstrapRegistersThroughTheControllerAndAKilledHostGoesNotReady runs
// a real `meshexp bootstrap` (embedded SPIRE, the stand-in proxy) with
// --controller-addr against the controller (in-process, with the token of
// its installed ServiceAccount) on a real API server. The controller is
// reached at the peer's address (a relay in the peer namespace), so the
// agent's connection crosses interception: only the proxy uid's exemption
// lets it through. The host presents the SVID its embedded SPIRE issued to
// the proxy's uid, chained to the host's trust anchor, which also signs the
// controller's certificate. kill -9 of meshexp (its children die with it)
// turns the ExternalWorkload Ready=False after the group's grace.
func TestBootstrapRegistersThroughTheControllerAndAKilledHostGoesNotReady(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t)
	dyn := installController(t, srv)
	ns := srv.CreateNamespace(t, "fleet")
	id := "spiffe://" + trust.DefaultTrustDomain + "/web"
	group := fmt.Sprintf(`apiVersion: meshexp.io/v1alpha1
kind: ExternalGroup
metadata: {name: web, namespace: %s}
spec:
  workload:
    labels: {app: web}
    ports:
    - {name: http, port: 8000}
  service: {name: web}
  identities: {ids: [%q]}
  deadHost: {notReadyAfterSeconds: 3, deleteAfterSeconds: 600}
`, ns, id)
	applyYAML(t, dyn, []byte(group), schema.GroupVersionResource{Group: "meshexp.io", Version: "v1alpha1", Resource: "externalgroups"})

	addr := startController(t, srv, dyn, filepath.Join(h.base, "certs"))
	relay := h.relayTo(t, "8443", addr)
	h.env = append(h.env, "MESHEXP_CONTROLLER_ADDR="+relay, "MESHEXP_GROUP=web", "WORKLOAD_NAMESPACE="+ns,
		"MESHEXP_WORKLOAD_IPS="+h.pair.Addr4.String())
	h.start()

	ew := kube.ExternalWorkloadGVR
	readyIs := func(want, reason string) func() error {
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			obj, err := dyn.Resource(ew).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Ready" {
					if m["status"] == want && (reason == "" || m["reason"] == reason) {
						return nil
					}
					return fmt.Errorf("Ready=%v %v, want %s %s", m["status"], m["reason"], want, reason)
				}
			}
			return errors.New("no Ready condition yet")
		}
	}
	h.waitFor("the ExternalWorkload to be Ready=True", 90*time.Second, readyIs("True", ""))
	obj, err := dyn.Resource(ew).Namespace(ns).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedString(obj.Object, "spec", "meshTLS", "identity"); got != id {
		t.Errorf("meshTLS.identity = %q, want the host's SPIFFE ID %s", got, id)
	}
	ips, _, _ := unstructured.NestedSlice(obj.Object, "spec", "workloadIPs")
	if len(ips) != 1 || ips[0].(map[string]any)["ip"] != h.pair.Addr4.String() {
		t.Errorf("workloadIPs = %v, want [%s]", ips, h.pair.Addr4)
	}
	// The agent runs as the proxy's uid (the one whose SVID it presents
	// and whose traffic interception skips), never as root.
	agent, proxy := h.pidOf("controller agent --socket "+h.base), h.pidOf(bins.proxy)
	if agent == 0 || proxy == 0 {
		t.Fatalf("registration agent pid %d, proxy pid %d: want both running", agent, proxy)
	}
	if a, p := uidOf(agent), uidOf(proxy); a != p || a == "0" {
		t.Errorf("the agent runs as uid %s, want the proxy's uid %s", a, p)
	}
	// Its stream to the controller was not intercepted: the stand-in proxy
	// answers redirected connections itself (no TLS), so registration
	// would fail, and it counts them.
	if m, err := h.get("http://127.0.0.1:4191/metrics"); err != nil || !strings.Contains(m, `tcp_open_total{direction="outbound"} 0`) {
		t.Errorf("the proxy's outbound connections (%v):\n%s", err, m)
	}
	// meshexp (root) shows the state the agent publishes: /status, `meshexp
	// status` and `meshexp check`.
	h.waitFor("meshexp's /status to show the host registered", 60*time.Second, func() error {
		c, err := h.controllerRegistration()
		if err != nil {
			return err
		}
		if c == nil || c.State != "registered" || c.ExternalWorkload != ns+"/web" || c.Group != ns+"/web" || c.Addr != relay ||
			c.Ready == nil || !*c.Ready || c.AgentPID != agent || c.LastRegistered.IsZero() {
			return fmt.Errorf("registration: %+v", c)
		}
		return nil
	})
	if out, err := h.meshexp("status"); err != nil || !strings.Contains(out, "through the controller at "+relay+", ExternalGroup "+ns+"/web") ||
		!strings.Contains(out, "registered as ExternalWorkload "+ns+"/web, reported ready") {
		t.Errorf("meshexp status (%v):\n%s", err, out)
	}
	checkOut, _ := h.meshexp("check") // other checks fail here: no cluster behind the destination address
	if want := "✓ this host is registered with the controller (ExternalGroup " + ns + "/web, ExternalWorkload " + ns + "/web, reported ready)"; !strings.Contains(checkOut, want) {
		t.Errorf("meshexp check lacks %q:\n%s", want, checkOut)
	}

	h.signal(syscall.SIGKILL)
	h.wait(30 * time.Second)
	h.waitUntil("meshexp's children to die with it", 30*time.Second, func() error {
		if ps := h.processesOf(); len(ps) > 0 {
			return fmt.Errorf("still running: %v", ps)
		}
		return nil
	})
	h.waitUntil("the ExternalWorkload to be Ready=False HostStoppedReporting", 60*time.Second, readyIs("False", "HostStoppedReporting"))

	// The next start ends what the crash left (state file, cgroups, rules)
	// and a clean stop then leaves nothing.
	h.start()
	h.stopCleanly()
	if _, err := os.Stat("/run/meshexp/netns-" + h.netnsIno() + ".registration"); !os.IsNotExist(err) {
		t.Errorf("the registration state is left behind: %v", err)
	}
}

// TestAnUnreachableControllerNeverBlocksTheWorkload: with nothing listening
// at --controller-addr the workload still starts and serves, the agent
// keeps retrying, and SIGTERM's one teardown stops it with the rest.
func TestAnUnreachableControllerNeverBlocksTheWorkload(t *testing.T) {
	h := newHost(t)
	addr := net.JoinHostPort(h.pair.PeerAddr4.String(), "8443")
	h.env = append(h.env, "MESHEXP_CONTROLLER_ADDR="+addr, "MESHEXP_GROUP=web",
		"MESHEXP_WORKLOAD_IPS="+h.pair.Addr4.String())
	h.start() // returns once the workload answers
	h.waitFor("the registration agent to run", 30*time.Second, func() error {
		if h.pidOf("controller agent --socket "+h.base) == 0 {
			return errors.New("no agent process")
		}
		return nil
	})
	// meshexp's /status says it retries, and why; `meshexp check` warns.
	h.waitFor("meshexp's /status to show the registration retrying", 60*time.Second, func() error {
		c, err := h.controllerRegistration()
		if err != nil {
			return err
		}
		if c == nil || c.State != "retrying" || !strings.Contains(c.Error, "controller unreachable") || !strings.Contains(c.Error, "connection refused") {
			return fmt.Errorf("registration: %+v", c)
		}
		if c.ExternalWorkload != "" || c.Ready != nil || !c.LastRegistered.IsZero() {
			return fmt.Errorf("never registered, yet: %+v", c)
		}
		return nil
	})
	checkOut, _ := h.meshexp("check")
	if !strings.Contains(checkOut, "‼ this host is registered with the controller") || !strings.Contains(checkOut, "retrying: not registered with the controller at "+addr) ||
		!strings.Contains(checkOut, "controller unreachable") {
		t.Errorf("meshexp check does not warn that registration retries:\n%s", checkOut)
	}
	h.signal(syscall.SIGTERM)
	if code := h.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
	h.assertClean()
	if _, err := os.Stat("/run/meshexp/netns-" + h.netnsIno() + ".registration"); !os.IsNotExist(err) {
		t.Errorf("the registration state is left behind: %v", err)
	}
}

// installController applies `meshexp controller install`'s manifests (for
// their RBAC and CRD) and returns an admin dynamic client.
func installController(t *testing.T, srv *kubetest.Server) dynamic.Interface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(srv.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	docs, err := controller.RenderInstall(controller.InstallOptions{Namespace: controller.DefaultNamespace, Image: "meshexp:e2e",
		Replicas: 1, TrustDomain: trust.DefaultTrustDomain, LogLevel: "info"})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]schema.GroupVersionResource{
		"Namespace":                {Version: "v1", Resource: "namespaces"},
		"ServiceAccount":           {Version: "v1", Resource: "serviceaccounts"},
		"Service":                  {Version: "v1", Resource: "services"},
		"ClusterRole":              {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
		"ClusterRoleBinding":       {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
		"Role":                     {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
		"RoleBinding":              {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
		"Deployment":               {Group: "apps", Version: "v1", Resource: "deployments"},
		"PodDisruptionBudget":      {Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"},
		"CustomResourceDefinition": {Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
	}
	for _, doc := range bytes.Split(docs, []byte("\n---\n")) {
		var probe unstructured.Unstructured
		if err := yaml.Unmarshal(doc, &probe.Object); err != nil {
			t.Fatalf("parse manifest: %v", err)
		}
		if len(probe.Object) == 0 || probe.GetKind() == "Deployment" { // no kubelet: the test runs the controller
			continue
		}
		gvr, ok := kinds[probe.GetKind()]
		if !ok {
			t.Fatalf("manifest of unexpected kind %q", probe.GetKind())
		}
		applyYAML(t, dyn, doc, gvr)
	}
	if err := srv.ApplyCRD(context.Background(), writeFile(t, controller.GroupCRD)); err != nil {
		t.Fatal(err)
	}
	return dyn
}

func writeFile(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "crd.yaml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// applyYAML server-side applies one document.
func applyYAML(t *testing.T, dyn dynamic.Interface, doc []byte, gvr schema.GroupVersionResource) {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
		t.Fatal(err)
	}
	var res dynamic.ResourceInterface = dyn.Resource(gvr)
	if ns := obj.GetNamespace(); ns != "" {
		res = dyn.Resource(gvr).Namespace(ns)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := res.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "e2e", Force: true}); err != nil {
		t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}

// startController runs one controller replica in the test's process, on
// loopback, with a token of its installed ServiceAccount and a certificate
// signed by the host's trust anchor (certs/ca.crt, ca.key), as `meshexp
// certs controller` makes it. It returns its address.
func startController(t *testing.T, srv *kubetest.Server, admin dynamic.Interface, certs string) string {
	t.Helper()
	root, err := trust.LoadKeyPair(filepath.Join(certs, "ca.crt"), filepath.Join(certs, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString(trust.DefaultTrustDomain)
	leaf, err := trust.NewLeaf(root, controller.ControllerID(td.Name(), controller.DefaultNamespace),
		[]string{controller.ServiceDNSName(controller.DefaultNamespace)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := x509svid.Parse(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(srv.TokenConfig(controllerToken(t, admin)))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	c, err := controller.New(dyn, controller.Options{
		Namespace: controller.DefaultNamespace, AdvertiseAddr: lis.Addr().String(),
		SVID: svid, ID: svid.ID, Bundle: x509bundle.FromX509Authorities(td, []*x509.Certificate{root.Cert}),
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
		ReleaseOnCancel: true,
	}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx, lis) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
		if t.Failed() {
			t.Logf("controller output:\n%s", logs.String())
		}
	})
	return lis.Addr().String()
}

// relayTo listens on the peer's address and port inside the peer namespace
// and forwards each connection to target on the test's loopback; it
// returns the relay's address.
func (h *host) relayTo(t *testing.T, port, target string) string {
	t.Helper()
	var ln net.Listener
	addr := net.JoinHostPort(h.pair.PeerAddr4.String(), port)
	if err := h.pair.Peer.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in) }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return addr
}

// uidOf is the real uid of pid, from /proc.
func uidOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return "?"
}
