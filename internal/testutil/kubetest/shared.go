package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"sigs.k8s.io/yaml"
)

// The package's one server, started by the first Get and stopped by Main.
var (
	mu      sync.Mutex
	shared  *Server
	failed  error // start failed: every later Get fails the same way
	skipped string
)

// Main runs the package's tests and then stops the server, if one was
// started. Use it as TestMain; a package whose TestMain does more calls
// Stop after m.Run instead.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the package's server, if one was started.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		shared.Stop()
		shared = nil
	}
}

// Get returns the package's server with the ExternalWorkload CRD
// established, starting it on first use. Without binaries it skips tb,
// or fails it when MESHEXP_REQUIRE_KUBE is set.
func Get(tb testing.TB) *Server {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if shared == nil && failed == nil && skipped == "" {
		shared, failed = start()
		if failed != nil && errors.Is(failed, errAbsent) && os.Getenv(EnvRequire) == "" {
			skipped = fmt.Sprintf("skipped: %v (set %s=1 to fail instead)", failed, EnvRequire)
			failed = nil
		}
	}
	switch {
	case skipped != "":
		tb.Skip(skipped)
	case failed != nil:
		tb.Fatalf("kubetest: %v", failed)
	}
	return shared
}

func start() (*Server, error) {
	crd, err := CRDPath()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*startDeadline)
	defer cancel()
	s, err := Start(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.ApplyCRD(ctx, crd); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// ApplyCRD applies the CRD in file and waits until it is Established, that
// is, until its resources are served.
func (s *Server) ApplyCRD(ctx context.Context, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read CRD: %w", err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &obj.Object); err != nil {
		return fmt.Errorf("parse CRD %s: %w", file, err)
	}
	dyn, err := dynamic.NewForConfig(s.AdminConfig())
	if err != nil {
		return fmt.Errorf("build dynamic client: %w", err)
	}
	name := obj.GetName()
	if _, err := dyn.Resource(crdGVR).Apply(ctx, name, obj, metav1.ApplyOptions{FieldManager: "kubetest", Force: true}); err != nil {
		return fmt.Errorf("apply CRD %s from %s: %w", name, file, err)
	}
	ctx, cancel := context.WithTimeout(ctx, startDeadline)
	defer cancel()
	for {
		got, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err == nil && established(got) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s not Established within %s (last error: %v)", name, startDeadline, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// CreateNamespace creates a namespace named after prefix with a random
// suffix, so tests sharing the server never collide. It is not deleted:
// without a controller-manager it would stay Terminating anyway, and the
// whole server goes when the package's tests end.
func (s *Server) CreateNamespace(tb testing.TB, prefix string) string {
	tb.Helper()
	core, err := corev1client.NewForConfig(s.AdminConfig())
	if err != nil {
		tb.Fatalf("kubetest: build client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("kubetest: create namespace %s-*: %v", prefix, err)
	}
	return ns.Name
}
