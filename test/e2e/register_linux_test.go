//go:build linux

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

// TestBootstrapRegistersAndReadyFollowsTheProxy runs `bootstrap --register`
// with the host's least-privilege kubeconfig against a real API server. The
// API server is reached at the peer's address (a relay in the peer
// namespace forwards to the server on the test's loopback), so meshexp's
// API connections cross interception and only the control mark lets them
// through.
func TestBootstrapRegistersAndReadyFollowsTheProxy(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t)
	admin, w := h.registerWith(t, srv)
	h.env = append(h.env, "MESHEXP_REGISTER_PROBE_PERIOD=500ms")
	h.start()

	condition := func(want string) func() error { return func() error { return readyIs(admin, w, want, "") } }
	h.waitFor("the ExternalWorkload to be Ready=True", 60*time.Second, condition("True"))
	getCtx, cancelGet := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelGet()
	ew, err := admin.GetWorkload(getCtx, w)
	if err != nil {
		t.Fatal(err)
	}
	if got := ew.Spec.MeshTLS.Identity; got != "spiffe://root.linkerd.cluster.local/web" {
		t.Errorf("meshTLS.identity = %q, want the SPIFFE ID the proxy holds", got)
	}
	// meshexp check on the registered host: the ExternalWorkload matches it
	// and agrees with meshexp's /ready; the clock agrees with the API server.
	out, _ := h.meshexp("check")
	for _, want := range []string{"✓ the ExternalWorkload matches this host and its Ready agrees with meshexp", "✓ the clock agrees with the Kubernetes API server"} {
		if !strings.Contains(out, want) {
			t.Errorf("meshexp check lacks %q:\n%s", want, out)
		}
	}
	// meshexp records a write once the API server has answered it: a GET
	// may see it first.
	h.waitFor("meshexp status to show Ready=True", 60*time.Second, func() error {
		if st, err := h.meshexp("status"); err != nil || !strings.Contains(st, "Ready=True ProxyReady") {
			return fmt.Errorf("meshexp status (%v):\n%s", err, st)
		}
		return nil
	})

	h.signal(syscall.SIGTERM)
	if code := h.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
	if err := condition("False")(); err != nil {
		t.Errorf("after shutdown: %v", err)
	}
	h.assertClean()
}

// registerWith makes h register with srv (--register) through a relay in
// the peer namespace, with the host's least-privilege kubeconfig, in a new
// namespace; it returns an admin client and the workload.
func (h *host) registerWith(t *testing.T, srv *kubetest.Server) (*kube.Client, *kube.Workload) {
	t.Helper()
	ns := srv.CreateNamespace(t, "e2e")
	relay := h.relayToAPIServer(t, srv.AdminConfig())
	admin, err := kube.NewClient(srv.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	w := &kube.Workload{Name: "web", Namespace: ns}
	rbac := kube.RenderRBAC(w)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := admin.ApplyRBAC(ctx, rbac); err != nil {
		t.Fatal(err)
	}
	token, _, err := admin.RequestToken(ctx, rbac, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	viaRelay := rest.CopyConfig(srv.AdminConfig())
	viaRelay.Host = "https://" + relay
	viaRelay.ServerName = "kubernetes" // a name the self-signed serving certificate holds
	kc, err := kube.HostKubeconfig(viaRelay, ns, kube.RBACName(w), token)
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(h.base, "host.kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	h.env = append(h.env, "MESHEXP_REGISTER=true", "MESHEXP_KUBECONFIG="+kcPath, "WORKLOAD_NAMESPACE="+ns,
		"MESHEXP_WORKLOAD_IPS="+h.pair.Addr4.String())
	return admin, w
}

// readyIs checks the ExternalWorkload's Ready condition: status want and,
// unless reason is empty, that reason.
func readyIs(admin *kube.Client, w *kube.Workload, want, reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ew, err := admin.GetWorkload(ctx, w)
	if err != nil {
		return err
	}
	if ew.Status != nil {
		for _, c := range ew.Status.Conditions {
			if c.Type == "Ready" && c.Status == want && (reason == "" || c.Reason == reason) {
				return nil
			}
		}
	}
	return fmt.Errorf("Ready is not %s %s yet: %+v", want, reason, ew.Status)
}

// relayToAPIServer listens on the peer's address inside the peer namespace
// and forwards each connection to the API server on the test's loopback. It
// returns the relay's address.
func (h *host) relayToAPIServer(t *testing.T, admin *rest.Config) string {
	t.Helper()
	u, err := url.Parse(admin.Host)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	var ln net.Listener
	addr := net.JoinHostPort(h.pair.PeerAddr4.String(), "6443")
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
				go io.Copy(out, in)
				io.Copy(in, out)
			}()
		}
	}()
	return addr
}
