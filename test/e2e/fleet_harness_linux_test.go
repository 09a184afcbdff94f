//go:build linux

package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/meshexp/meshexp/internal/admin"
	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/fleet"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
	"github.com/meshexp/meshexp/internal/trust"
)

// Helpers for the fleet cases of fleet_faults_linux_test.go: the
// controller as `meshexp controller` processes, a relay whose targets
// change, a record of every ExternalWorkload event.

var groupGVR = schema.GroupVersionResource{Group: "meshexp.io", Version: "v1alpha1", Resource: "externalgroups"}

// applyGroup applies ExternalGroup web in ns admitting ids, with the
// group's dead-host periods.
func applyGroup(t *testing.T, dyn dynamic.Interface, ns string, notReadyAfter, deleteAfter int, ids ...string) {
	t.Helper()
	applyGroupLabelled(t, dyn, ns, "{app: web}", notReadyAfter, deleteAfter, ids...)
}

// applyGroupLabelled is applyGroup with the workload template's labels
// given as a YAML flow mapping.
func applyGroupLabelled(t *testing.T, dyn dynamic.Interface, ns, labels string, notReadyAfter, deleteAfter int, ids ...string) {
	t.Helper()
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = fmt.Sprintf("%q", id)
	}
	applyYAML(t, dyn, fmt.Appendf(nil, `apiVersion: meshexp.io/v1alpha1
kind: ExternalGroup
metadata: {name: web, namespace: %s}
spec:
  workload:
    labels: %s
    ports:
    - {name: http, port: 8000}
  service: {name: web}
  identities: {ids: [%s]}
  deadHost: {notReadyAfterSeconds: %d, deleteAfterSeconds: %d}
`, ns, labels, strings.Join(quoted, ", "), notReadyAfter, deleteAfter), groupGVR)
}

// fleetController is one `meshexp controller` process on loopback.
type fleetController struct {
	t    *testing.T
	addr string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

// controllerToken is a token of the installed controller ServiceAccount.
func controllerToken(t *testing.T, admin dynamic.Interface) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, _, err := kube.RequestServiceAccountToken(ctx, admin, controller.DefaultNamespace, controller.Name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// controllerKubeconfig writes a kubeconfig with a token of the installed
// controller ServiceAccount: the replicas run with exactly its RBAC.
func controllerKubeconfig(t *testing.T, srv *kubetest.Server, admin dynamic.Interface) string {
	t.Helper()
	kc, err := kube.HostKubeconfig(srv.AdminConfig(), controller.DefaultNamespace, controller.Name, controllerToken(t, admin))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// controllerTLSDir makes a --tls-dir with `meshexp certs controller`
// (signed by the anchor in caDir, extra flags e.g. --trust-domain) and
// trust, the PEM file the controller takes as the mesh's trust anchor.
func controllerTLSDir(t *testing.T, caDir, trust string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"certs", "controller", "--ca-dir", caDir, "--out-dir", dir}, extra...)
	if out, err := exec.Command(bins.meshexp, args...).CombinedOutput(); err != nil {
		t.Fatalf("meshexp %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	pem, err := os.ReadFile(trust)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startFleetController runs `meshexp controller` on a free loopback port
// with fast election timing (a killed leader is replaced in seconds).
func startFleetController(t *testing.T, kubeconfig, tlsDir string, extra ...string) *fleetController {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// A link outside the binaries' directory: the hosts' checks that
	// nothing of theirs is left (processesOf) do not count the controller.
	bin := filepath.Join(t.TempDir(), "meshexp-controller")
	if err := os.Link(bins.meshexp, bin); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"controller", "--kubeconfig", kubeconfig, "--tls-dir", tlsDir, "--listen", addr,
		"--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms"}, extra...)
	c := &fleetController{t: t, addr: addr, cmd: exec.Command(bin, args...), logs: &syncBuffer{}, done: make(chan struct{})}
	c.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		c.stop(syscall.SIGTERM) // a clean stop hands the Lease back for the next test
		if t.Failed() {
			t.Logf("controller %s output:\n%s", addr, c.logs.String())
		}
	})
	c.waitFor("to serve", func() bool { return strings.Contains(c.logs.String(), "controller serving") })
	return c
}

// stop signals the controller and waits for it to exit.
func (c *fleetController) stop(sig syscall.Signal) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *fleetController) leads() bool { return strings.Contains(c.logs.String(), "became leader") }

func (c *fleetController) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		select {
		case <-c.done:
			c.t.Fatalf("controller %s exited while waiting for it %s:\n%s", c.addr, what, c.logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("waited 90s for controller %s %s", c.addr, what)
		}
	}
}

// startInProcessHost registers a host run in the test's process (the
// fleet client the registration agent runs) into group web of ns, straight
// to the controller at addr on loopback: its SVID for id is minted from
// the trust anchor in certs (ca.crt, ca.key), it gives the workload
// address ip and is always ready. It stops with the test.
func startInProcessHost(t *testing.T, certs, addr, ns, id, ip string) *fleet.Client {
	t.Helper()
	root, err := trust.LoadKeyPair(filepath.Join(certs, "ca.crt"), filepath.Join(certs, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := trust.NewLeaf(root, id, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := x509svid.Parse(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString(trust.DefaultTrustDomain)
	tlsCfg, err := fleet.ClientTLS(svid, x509bundle.FromX509Authorities(td, []*x509.Certificate{root.Cert}), td,
		controller.ControllerID(td.Name(), controller.DefaultNamespace))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	client, err := fleet.NewClient(fleet.ClientOptions{Addr: addr, TLS: tlsCfg, Group: "web", Namespace: ns, IPs: []string{ip},
		Ready: func(context.Context) error { return nil }, MaxBackoff: time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = client.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("in-process host %s output:\n%s", id, logs.String())
		}
	})
	return client
}

// fleetRelay stands for the controller's Service: it listens on the
// peer's address inside the peer namespace and forwards each connection to
// the first of its targets (replicas on the test's loopback) that
// accepts. Changing the targets closes the connections open through it.
type fleetRelay struct {
	addr    string
	mu      sync.Mutex
	targets []string
	conns   map[net.Conn]bool
}

func (h *host) fleetRelay(t *testing.T, targets ...string) *fleetRelay {
	t.Helper()
	r := &fleetRelay{addr: net.JoinHostPort(h.pair.PeerAddr4.String(), "8443"), targets: targets, conns: map[net.Conn]bool{}}
	var ln net.Listener
	if err := h.pair.Peer.Do(func() (err error) { ln, err = net.Listen("tcp", r.addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); r.set() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(in)
		}
	}()
	return r
}

func (r *fleetRelay) serve(in net.Conn) {
	defer in.Close()
	r.mu.Lock()
	targets := r.targets
	r.mu.Unlock()
	var out net.Conn
	for _, target := range targets {
		var err error
		if out, err = net.DialTimeout("tcp", target, 5*time.Second); err == nil {
			break
		}
	}
	if out == nil {
		return
	}
	defer out.Close()
	r.mu.Lock()
	r.conns[in], r.conns[out] = true, true
	r.mu.Unlock()
	go func() { _, _ = io.Copy(out, in); out.Close() }()
	_, _ = io.Copy(in, out)
	r.mu.Lock()
	delete(r.conns, in)
	delete(r.conns, out)
	r.mu.Unlock()
}

// set replaces the targets and closes every connection open through the
// relay (the host reconnects to the new ones).
func (r *fleetRelay) set(targets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.targets = targets
	for c := range r.conns {
		c.Close()
	}
}

// ewEvent is one watch event of an ExternalWorkload: when the test saw
// it, and the object's Ready condition with its lastProbeTime (the time
// of the host's last report, to the second).
type ewEvent struct {
	at            time.Time
	typ           watch.EventType
	name          string
	uid           types.UID
	ready, reason string
	probed        time.Time
}

func (e ewEvent) String() string {
	return fmt.Sprintf("%s %s (uid %s) Ready=%s %s", e.typ, e.name, e.uid, e.ready, e.reason)
}

// ewWatch records every event of the ExternalWorkloads of a namespace,
// from one watch kept open for the whole test.
type ewWatch struct {
	mu     sync.Mutex
	events []ewEvent
	ended  bool
}

func watchWorkloads(t *testing.T, dyn dynamic.Interface, ns string) *ewWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := dyn.Resource(kube.ExternalWorkloadGVR).Namespace(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &ewWatch{}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); w.Stop(); <-done })
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			s, r, probed := readyOf(obj)
			rec.mu.Lock()
			rec.events = append(rec.events, ewEvent{at: time.Now(), typ: ev.Type, name: obj.GetName(), uid: obj.GetUID(), ready: s, reason: r, probed: probed})
			rec.mu.Unlock()
		}
		rec.mu.Lock()
		rec.ended = ctx.Err() == nil
		rec.mu.Unlock()
	}()
	return rec
}

// list returns the events so far; it fails the test if the watch ended
// early (events may be missing).
func (w *ewWatch) list(t *testing.T) []ewEvent {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		t.Fatalf("the ExternalWorkload watch ended early after %v", w.events)
	}
	return append([]ewEvent(nil), w.events...)
}

// until polls the events so far until cond holds: a GET can show a change
// a moment before the watch delivers it, so a test that reads the events
// after waiting on a GET first waits for them here.
func (w *ewWatch) until(t *testing.T, what string, cond func([]ewEvent) bool) {
	t.Helper()
	eventually.True(t, what, func() bool { return cond(w.list(t)) })
}

func readyOf(obj *unstructured.Unstructured) (status, reason string, probed time.Time) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if m, _ := c.(map[string]any); m["type"] == "Ready" {
			status, _ = m["status"].(string)
			reason, _ = m["reason"].(string)
			t, _ := m["lastProbeTime"].(string)
			probed, _ = time.Parse(time.RFC3339, t)
			return status, reason, probed
		}
	}
	return "", "", time.Time{}
}

// workloadReady checks ExternalWorkload ns/name's Ready condition (any
// reason when reason is empty).
func workloadReady(dyn dynamic.Interface, ns, name, want, reason string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		obj, err := dyn.Resource(kube.ExternalWorkloadGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s, r, _ := readyOf(obj); s != want || (reason != "" && r != reason) {
			return fmt.Errorf("Ready=%s %s, want %s %s", s, r, want, reason)
		}
		return nil
	}
}

// logLine returns the first record of meshexp's log (its children's,
// e.g. the registration agent's, included) that holds s in one of its
// values.
func (h *host) logLine(s string) (string, error) {
	for _, line := range strings.Split(h.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			if strings.Contains(line, s) {
				return line, nil
			}
			continue
		}
		for _, v := range rec {
			if str, ok := v.(string); ok && strings.Contains(str, s) {
				return str, nil
			}
		}
	}
	return "", errors.New("meshexp's log does not say " + s)
}

// serves checks that the workload answers.
func (h *host) serves() error {
	_, err := h.get("http://127.0.0.1:8000/whoami")
	return err
}

// controllerRegistration is the registration through the controller as
// meshexp's /status shows it (nil when none is configured).
func (h *host) controllerRegistration() (*admin.Controller, error) {
	body, err := h.get("http://127.0.0.1:4192/status")
	if err != nil {
		return nil, err
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return nil, fmt.Errorf("%v: %s", err, body)
	}
	return st.Registration.Controller, nil
}
