package controller_test

import (
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/dynamic"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/testutil/golden"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

var testInstall = controller.InstallOptions{
	Namespace: "meshexp-system", Image: "ghcr.io/meshexp/meshexp:v0.0.0-test", Replicas: 3,
	TrustDomain: "root.linkerd.cluster.local", LogLevel: "info",
}

func TestInstallPrintsTheGoldenManifests(t *testing.T) {
	got, err := controller.RenderInstall(testInstall)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "install.golden", got)
}

func TestInstallNamesEveryBadFlag(t *testing.T) {
	_, err := controller.RenderInstall(controller.InstallOptions{Namespace: "Bad_NS", Image: "", Replicas: 0, TrustDomain: "x y"})
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, flag := range []string{"--namespace", "--image", "--replicas", "--trust-domain"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("error does not name %s: %v", flag, err)
		}
	}
}

// installOnce applies the install manifests to the package's API server.
var installOnce sync.Once

func install(t testing.TB) *kubetest.Server {
	t.Helper()
	srv := kubetest.Get(t)
	installOnce.Do(func() {
		docs, err := controller.RenderInstall(testInstall)
		if err != nil {
			t.Fatal(err)
		}
		applyDocs(t, srv.AdminConfig(), docs)
		if err := srv.ApplyCRD(ctxT(t), writeTemp(t, controller.GroupCRD)); err != nil {
			t.Fatal(err)
		}
	})
	return srv
}

func TestInstallManifestsApplyToARealAPIServer(t *testing.T) {
	srv := install(t)
	dyn, err := dynamic.NewForConfig(srv.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := srv.CreateNamespace(t, "install")
	if err := applyGroup(t, dyn, groupYAML(ns, "valid")); err != nil {
		t.Fatalf("a valid ExternalGroup was refused: %v", err)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"a port out of range is refused", "port: 8000", "port: 70000", "spec.workload.ports[0].port"},
		{"a protocol other than TCP or UDP is refused", "port: 8000}", "port: 8000, protocol: SCTP}", "protocol"},
		{"a group admitting no identity is refused", "identities: {pathPrefix: /hosts/}", "identities: {}", "give identities.pathPrefix or at least one entry"},
		{"a delete sooner than not-ready is refused", "deleteAfterSeconds: 6", "deleteAfterSeconds: 3", "deleteAfterSeconds must be greater than notReadyAfterSeconds"},
		{"a path prefix that is not a path is refused", "pathPrefix: /hosts/", "pathPrefix: hosts", "pathPrefix"},
		{"a template without ports is refused", "    ports:\n    - {name: http, port: 8000}\n", "    ports: []\n", "ports"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := groupYAML(ns, "bad", tc.old, tc.new)
			if !strings.Contains(string(doc), tc.new) {
				t.Fatalf("replacement %q not applied", tc.old)
			}
			err := applyGroup(t, dyn, doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a refusal naming %q, got %v", tc.want, err)
			}
		})
	}
}
