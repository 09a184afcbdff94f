package kubetest_test

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func TestTheServerIsTheBuiltVersionAndServesExternalWorkloads(t *testing.T) {
	srv := kubetest.Get(t)
	dc, err := discovery.NewDiscoveryClientForConfig(srv.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		t.Fatalf("get /version: %v", err)
	}
	if v.GitVersion != kubetest.KubeVersion {
		t.Errorf("server version %q, want %q", v.GitVersion, kubetest.KubeVersion)
	}
	dyn, err := dynamic.NewForConfig(srv.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := srv.CreateNamespace(t, "smoke")
	gvr := schema.GroupVersionResource{Group: "workload.linkerd.io", Version: "v1beta1", Resource: "externalworkloads"}
	list, err := dyn.Resource(gvr).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list ExternalWorkloads: %v", err)
	}
	if len(list.Items) != 0 {
		t.Errorf("fresh namespace has %d ExternalWorkloads", len(list.Items))
	}
}

func TestAnUnknownTokenIsRejected(t *testing.T) {
	srv := kubetest.Get(t)
	core, err := corev1client.NewForConfig(srv.TokenConfig("not-a-token"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = core.Namespaces().List(context.Background(), metav1.ListOptions{})
	if !apierrors.IsUnauthorized(err) {
		t.Fatalf("list namespaces with a bad token: got %v, want 401 Unauthorized", err)
	}
}

func TestTheAPIServerRestartsOnTheSamePortWithTheSameData(t *testing.T) {
	srv := kubetest.Get(t)
	ns := srv.CreateNamespace(t, "restart")
	srv.StopAPIServer()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := srv.StartAPIServer(ctx); err != nil {
		t.Fatalf("restart kube-apiserver: %v", err)
	}
	core, err := corev1client.NewForConfig(srv.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace %s after the restart: %v", ns, err)
	}
}

func TestProcStatsReadsTheAPIServersCPUAndMemory(t *testing.T) {
	srv := kubetest.Get(t)
	cpu, rss, err := kubetest.ProcStats(srv.APIServerPID())
	if err != nil {
		t.Fatal(err)
	}
	if cpu <= 0 || rss <= 0 {
		t.Errorf("kube-apiserver cpu %v rss %d, want both > 0", cpu, rss)
	}
	t.Logf("kube-apiserver so far: cpu %v, rss %.0f MiB", cpu, float64(rss)/(1<<20))
}
