package kube_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

// The cluster is dual-stack (IPv4 first), as Linkerd's IPv6 support needs.
func TestMain(m *testing.M) {
	kubetest.UseDualStack()
	kubetest.Main(m)
}

// waitDeadline bounds every wait for the API server to show a state; it
// is generous because the machine is shared, and a wait that gives up
// says what it was waiting for.
const waitDeadline = 2 * time.Minute

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// workloadIn is the demo's workload in namespace ns.
func workloadIn(ns string) kube.Workload {
	return kube.Workload{
		Name:        "vm-1",
		Namespace:   ns,
		Identity:    "spiffe://root.linkerd.cluster.local/vm-1",
		ServerName:  "vm-1.cluster.local",
		IPs:         []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		Ports:       []kube.Port{{Name: "http", Port: 8000, Protocol: "TCP"}, {Name: "admin", Port: 9000, Protocol: "TCP"}},
		ServicePort: 80,
	}
}

// host is one registered host's view: its workload and a client that holds
// exactly the RBAC `meshexp workload rbac` prints, through a kubeconfig
// with a TokenRequest token, as an operator would hand it out.
type host struct {
	w      kube.Workload
	c      *kube.Client
	admin  *kube.Client
	dials  *atomic.Int64
	config string
	// Typed clients with the same credentials, for what the tests check
	// beyond meshexp's own calls (meshexp itself uses only the dynamic
	// client).
	hostTyped, adminTyped typed
}

type typed struct {
	core         corev1client.CoreV1Interface
	coordination coordinationv1client.CoordinationV1Interface
}

func newTyped(t *testing.T, cfg *rest.Config) typed {
	t.Helper()
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	coordination, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return typed{core: core, coordination: coordination}
}

func newHost(t *testing.T, srv *kubetest.Server) *host {
	t.Helper()
	ctx := ctxT(t)
	ns := srv.CreateNamespace(t, "reg")
	w := workloadIn(ns)
	admin, err := kube.NewClient(srv.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	rbac := kube.RenderRBAC(&w)
	if err := admin.ApplyRBAC(ctx, rbac); err != nil {
		t.Fatal(err)
	}
	token, _, err := admin.RequestToken(ctx, rbac, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kube.HostKubeconfig(srv.AdminConfig(), ns, kube.RBACName(&w), token)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	// The dial hook is how bootstrap marks API connections so that
	// interception lets them through; here it only counts.
	dials := &atomic.Int64{}
	var d net.Dialer
	cfg, err := kube.LoadConfig(path, func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := kube.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &host{w: w, c: c, admin: admin, dials: dials, config: path,
		hostTyped: newTyped(t, cfg), adminTyped: newTyped(t, srv.AdminConfig())}
}

// getEW reads the ExternalWorkload as the administrator.
func (h *host) getEW(ctx context.Context) (*kube.ExternalWorkload, error) {
	return h.admin.GetWorkload(ctx, &h.w)
}

func (h *host) ready(ctx context.Context) (*kube.Condition, string, error) {
	ew, err := h.getEW(ctx)
	if err != nil {
		return nil, "", err
	}
	if ew.Status == nil {
		return nil, ew.Metadata.ResourceVersion, nil
	}
	return kube.ReadyCondition(ew.Status.Conditions), ew.Metadata.ResourceVersion, nil
}

// waitReady waits until the Ready condition has status and reason.
func (h *host) waitReady(t *testing.T, status, reason string) {
	t.Helper()
	ctx := ctxT(t)
	eventually.OK(t, fmt.Sprintf("Ready=%s (%s) on %s/%s", status, reason, h.w.Namespace, h.w.Name), func() (bool, error) {
		c, _, err := h.ready(ctx)
		if err != nil {
			return false, err
		}
		if c == nil {
			return false, errors.New("no Ready condition")
		}
		if c.Status != status || c.Reason != reason {
			return false, fmt.Errorf("Ready=%s (%s): %s", c.Status, c.Reason, c.Message)
		}
		return true, nil
	})
}

func (h *host) getService(ctx context.Context) (*corev1.Service, error) {
	return h.adminTyped.core.Services(h.w.Namespace).Get(ctx, h.w.Name, metav1.GetOptions{})
}

func (h *host) getLease(ctx context.Context) (*coordinationv1.Lease, error) {
	return h.adminTyped.coordination.Leases(h.w.Namespace).Get(ctx, h.w.Name, metav1.GetOptions{})
}

// proxyStandIn serves /ready like linkerd2-proxy's admin server: 200 when
// ready, 503 otherwise. The test flips it.
type proxyStandIn struct {
	ready  atomic.Bool
	probes atomic.Int64
	url    string
}

func newProxyStandIn(t *testing.T) *proxyStandIn {
	p := &proxyStandIn{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.probes.Add(1)
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		if !p.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL + "/ready"
	return p
}

// waitProbes waits until the stand-in has answered n more probes.
func (p *proxyStandIn) waitProbes(t *testing.T, n int64) {
	t.Helper()
	target := p.probes.Load() + n
	eventually.OK(t, fmt.Sprintf("%d more readiness probes", n), func() (bool, error) {
		return p.probes.Load() >= target, nil
	})
}

// fastOptions make a registrar that probes and renews quickly, so a test
// sees several cycles in a second or two.
func fastOptions() kube.Options {
	return kube.Options{
		ProbePeriod:      100 * time.Millisecond,
		ProbeTimeout:     time.Second,
		SuccessThreshold: 1,
		FailureThreshold: 2,
		LeaseDuration:    2 * time.Second,
		RenewInterval:    300 * time.Millisecond,
		MinBackoff:       100 * time.Millisecond,
		MaxBackoff:       time.Second,
		RequestTimeout:   5 * time.Second,
		ShutdownTimeout:  time.Minute,
		Holder:           "test-host",
	}
}

// run starts a registrar and returns a stop function that cancels it and
// returns Run's result; cleanup stops it if the test did not.
func run(t *testing.T, h *host, probe kube.Prober, opts kube.Options) (stop func() error) {
	t.Helper()
	r, err := kube.NewRegistrar(h.c, h.w, probe, opts, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var result error
	stopped := false
	stop = func() error {
		if !stopped {
			cancel()
			result = <-done
			stopped = true
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
