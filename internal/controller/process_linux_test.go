//go:build linux

package controller_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/fleet"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
	"github.com/meshexp/meshexp/internal/testutil/standin"
	"github.com/meshexp/meshexp/internal/trust"
)

// These tests run meshexp itself: `meshexp controller` replicas and
// `meshexp controller agent` (the host side, as the proxy's uid, its SVID
// from a Workload API), and kill them with SIGKILL.

var meshexpBin struct {
	once sync.Once
	path string
	err  error
}

func buildMeshexp(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: runs the agent as the proxy's uid, which needs root")
	}
	meshexpBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "mx-ctl-bin-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			meshexpBin.err = err
			return
		}
		atExit = append(atExit, func() { os.RemoveAll(dir) })
		meshexpBin.path = filepath.Join(dir, "meshexp")
		out, err := exec.Command("go", "build", "-o", meshexpBin.path, "github.com/meshexp/meshexp/cmd/meshexp").CombinedOutput()
		if err != nil {
			meshexpBin.err = fmt.Errorf("build meshexp: %v\n%s", err, out)
		}
	})
	if meshexpBin.err != nil {
		t.Fatal(meshexpBin.err)
	}
	return meshexpBin.path
}

type proc struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func startProc(t testing.TB, bin string, uid uint32, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), logs: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = lockedWriter{p.mu, p.logs}, lockedWriter{p.mu, p.logs}
	p.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if uid != 0 {
		p.cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: uid}
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s %s:\n%s", filepath.Base(bin), strings.Join(args[:2], " "), p.output())
		}
	})
	return p
}

func (p *proc) kill() { _ = p.cmd.Process.Signal(syscall.SIGKILL); <-p.done }

func (p *proc) output() string { p.mu.Lock(); defer p.mu.Unlock(); return p.logs.String() }

// world makes a directory that the proxy's uid can read.
func world(t testing.TB) string {
	dir, err := os.MkdirTemp("", "mx-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type processFleet struct {
	bin, dir, kubeconfig string
	m                    *mesh
	wl                   *standin.WorkloadAPI
	ready                *httptest.Server
}

func newProcessFleet(t testing.TB, srv *kubetest.Server, admin dynamic.Interface) *processFleet {
	bin := buildMeshexp(t)
	m := newMesh(t)
	dir := world(t)
	id := controller.ControllerID(td.Name(), controller.DefaultNamespace)
	leaf, err := trust.NewLeaf(m.ca.Root, id, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.WriteFiles(filepath.Join(dir, "controller.crt"), filepath.Join(dir, "controller.key")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), m.ca.Root.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	kc, err := kube.HostKubeconfig(srv.AdminConfig(), controller.DefaultNamespace, controller.Name, controllerToken(t, admin))
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ready\n")) }))
	t.Cleanup(ready.Close)
	return &processFleet{bin: bin, dir: dir, kubeconfig: kubeconfig, m: m, wl: standin.NewWorkloadAPI(t), ready: ready}
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// fastElection makes a killed leader's successor take over in seconds.
var fastElection = []string{"--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "500ms"}

func (f *processFleet) controller(t testing.TB, extra ...string) (*proc, string) {
	addr := freeAddr(t)
	args := append([]string{"controller", "--kubeconfig", f.kubeconfig, "--tls-dir", f.dir, "--listen", addr}, extra...)
	return startProc(t, f.bin, 0, args...), addr
}

// agent starts the host side as the proxy's uid, as bootstrap will.
func (f *processFleet) agent(t testing.TB, ns, group, name, controllerAddr string) *proc {
	id := "spiffe://" + td.Name() + "/hosts/" + name
	f.wl.Set(f.m.ca.MintSVID(t, id, time.Hour))
	o := fleet.AgentOptions{
		Socket: f.wl.Path(), ID: id, TrustAnchor: filepath.Join(f.dir, "ca.crt"), ControllerAddr: controllerAddr,
		ControllerIdentity: (&config.Config{TrustDomain: td.Name()}).ControllerIdentity(),
		Group:              group, Namespace: ns, IPs: []string{"192.0.2.20"}, ReadyURL: f.ready.URL + "/ready",
	}
	return startProc(t, f.bin, 2102, append(append([]string{}, fleet.AgentArgs...), o.Args()...)...)
}

func TestAKilledHostProcessGoesNotReadyThenIsDeleted(t *testing.T) {
	admin, _, ns := setup(t)
	f := newProcessFleet(t, kubetest.Get(t), admin)
	if err := applyGroup(t, admin, groupYAML(ns, "web")); err != nil {
		t.Fatal(err)
	}
	_, addr := f.controller(t, fastElection...)
	host := f.agent(t, ns, "web", "vm-1", addr)
	waitReady(t, admin, ns, "vm-1", "True", "ProxyReady")
	tr := watchReady(t, admin, ns)
	host.kill()
	waitReady(t, admin, ns, "vm-1", "False", controller.ReasonSilent)
	eventually.OK(t, "the dead host's ExternalWorkload to be deleted", func() (bool, error) {
		_, err := admin.Resource(ewGVR).Namespace(ns).Get(ctxT(t), "vm-1", metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	// The watch may deliver the delete a moment after a GET sees it.
	eventually.True(t, "the watch to show the delete", func() bool {
		got := tr.list()
		return len(got) > 0 && strings.HasPrefix(got[len(got)-1], "vm-1 deleted")
	})
	got := tr.list()
	if len(got) < 2 || got[len(got)-2] != "vm-1 False "+controller.ReasonSilent {
		t.Errorf("transitions %q: want Ready=False before the delete", got)
	}
}

func TestKillingTheLeaderProcessHandsOverWithoutAFlap(t *testing.T) {
	admin, _, ns := setup(t)
	f := newProcessFleet(t, kubetest.Get(t), admin)
	if err := applyGroup(t, admin, groupYAML(ns, "web", "notReadyAfterSeconds: 3, deleteAfterSeconds: 6", "notReadyAfterSeconds: 10, deleteAfterSeconds: 600")); err != nil {
		t.Fatal(err)
	}
	a, addrA := f.controller(t, fastElection...)
	eventually.OK(t, "controller a to lead", func() (bool, error) { return strings.Contains(a.output(), "became leader"), nil })
	b, addrB := f.controller(t, fastElection...)
	f.agent(t, ns, "web", "vm-1", addrB) // on the follower: relayed to the leader
	waitReady(t, admin, ns, "vm-1", "True", "ProxyReady")
	tr := watchReady(t, admin, ns)
	_ = addrA
	a.kill()
	eventually.OK(t, "controller b to take over", func() (bool, error) { return strings.Contains(b.output(), "became leader"), nil })
	time.Sleep(12 * time.Second) // longer than the group's grace after the takeover
	for _, s := range tr.list() {
		if !strings.Contains(s, "True") {
			t.Fatalf("the healthy host flapped: %q", tr.list())
		}
	}
}

func freePort(t testing.TB) int {
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}
