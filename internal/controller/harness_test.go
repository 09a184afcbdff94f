package controller_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/fleet"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/standin"
	"github.com/meshexp/meshexp/internal/trust"
)

// Certificates come from a test CA shaped like SPIRE under the trust
// anchor (standin.CA: root → SPIRE-like CA → SVID). What the controller
// checks is the X.509 chain and the URI SAN, the same whether SPIRE or this
// CA signed it, so SPIRE adds nothing to these cases.
var td = spiffeid.RequireTrustDomainFromString(trust.DefaultTrustDomain)

type mesh struct {
	ca     *standin.CA
	bundle *x509bundle.Bundle
	ctrl   *x509svid.SVID // the controller's, as `meshexp certs controller` makes it
}

func newMesh(t testing.TB) *mesh {
	ca := standin.NewCA(t)
	id := controller.ControllerID(td.Name(), controller.DefaultNamespace)
	leaf, err := trust.NewLeaf(ca.Root, id, []string{controller.ServiceDNSName(controller.DefaultNamespace)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := x509svid.Parse(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &mesh{ca: ca, bundle: x509bundle.FromX509Authorities(td, []*x509.Certificate{ca.Root.Cert}), ctrl: svid}
}

func (m *mesh) svid(t testing.TB, id string) *x509svid.SVID {
	return svidFrom(t, m.ca, id)
}

func svidFrom(t testing.TB, ca *standin.CA, id string) *x509svid.SVID {
	w := ca.MintSVID(t, id, time.Hour)
	s, err := x509svid.ParseRaw(w.X509Svid, w.X509SvidKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// controllerToken is a token of the installed controller ServiceAccount,
// so that the replicas run with exactly the RBAC the install prints.
func controllerToken(t testing.TB, admin dynamic.Interface) string {
	t.Helper()
	tok, _, err := kube.RequestServiceAccountToken(ctxT(t), admin, controller.DefaultNamespace, controller.Name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type replica struct {
	addr    string
	metrics string // http://…/metrics
	c       *controller.Controller
	cancel  context.CancelFunc
	done    chan struct{}
	err     error
}

// stop ends the replica without releasing its Lease, as a crash would.
func (r *replica) stop(t testing.TB) {
	r.cancel()
	<-r.done
	if r.err != nil {
		t.Errorf("replica %s: %v", r.addr, r.err)
	}
}

func startReplica(t testing.TB, m *mesh, dyn dynamic.Interface, name string) *replica {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := controller.New(dyn, controller.Options{
		Namespace: controller.DefaultNamespace, AdvertiseAddr: lis.Addr().String(),
		SVID: m.ctrl, ID: m.ctrl.ID, Bundle: m.bundle,
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
		MetricsListener: ml,
	}, logger(t, name))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{addr: lis.Addr().String(), metrics: "http://" + ml.Addr().String() + "/metrics", c: c, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); r.err = c.Run(ctx, lis) }()
	t.Cleanup(func() { r.cancel(); <-r.done })
	return r
}

// hostProc is a host's registration client; readiness is settable.
type hostProc struct {
	client *fleet.Client
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	ready  error
}

func (h *hostProc) setReady(err error) { h.mu.Lock(); h.ready = err; h.mu.Unlock() }

// stop ends the host's client: its stream closes as when the process dies.
func (h *hostProc) stop() { h.cancel(); <-h.done }

type hostOpts struct {
	group, namespace, name, ip string
	svid                       *x509svid.SVID
	expect                     string   // the controller identity the host expects
	addrs                      []string // replicas, tried in order (a Service in a cluster)
}

func startHost(t testing.TB, m *mesh, o hostOpts) *hostProc {
	t.Helper()
	if o.expect == "" {
		o.expect = m.ctrl.ID.String()
	}
	if o.ip == "" {
		o.ip = "192.0.2.10"
	}
	cfg, err := fleet.ClientTLS(o.svid, m.bundle, td, o.expect)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostProc{done: make(chan struct{})}
	addrs := o.addrs
	h.client, err = fleet.NewClient(fleet.ClientOptions{
		Addr: "meshexp-controller:8443", TLS: cfg, Group: o.group, Namespace: o.namespace, Name: o.name, IPs: []string{o.ip},
		Ready:      func(context.Context) error { h.mu.Lock(); defer h.mu.Unlock(); return h.ready },
		Dial:       dialFirst(addrs),
		MaxBackoff: time.Second,
		Logger:     logger(t, "host-"+o.svid.ID.Path()),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { defer close(h.done); _ = h.client.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

var (
	ewGVR      = controller.ExternalWorkloadGVR
	serviceGVR = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	leaseGVR   = schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}
)

func ready(obj *unstructured.Unstructured) (status, reason string) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		if m["type"] == "Ready" {
			return m["status"].(string), m["reason"].(string)
		}
	}
	return "", ""
}

func waitReady(t testing.TB, dyn dynamic.Interface, ns, name, status, reason string) *unstructured.Unstructured {
	t.Helper()
	var got *unstructured.Unstructured
	eventually.OK(t, "ExternalWorkload "+ns+"/"+name+" Ready="+status+" "+reason, func() (bool, error) {
		obj, err := dyn.Resource(ewGVR).Namespace(ns).Get(ctxT(t), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = obj
		s, r := ready(obj)
		return s == status && (reason == "" || r == reason), errors.New("Ready=" + s + " " + r)
	})
	return got
}

func waitRefused(t testing.TB, h *hostProc, want string) {
	t.Helper()
	eventually.OK(t, "the host's registration refused with "+want, func() (bool, error) {
		s := h.client.State()
		return strings.Contains(s.LastError, want), errors.New(s.LastError)
	})
}

// dialFirst dials the first address that answers, as a host behind a
// Service reaches whichever replica is up.
func dialFirst(addrs []string) func(ctx context.Context, _ string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		var errs []error
		for _, a := range addrs {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
}
