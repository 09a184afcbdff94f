package controller_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/meshexp/meshexp/internal/spire"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

// atExit runs after the tests: it removes what a test binary built.
var atExit []func()

func TestMain(m *testing.M) {
	// spire.Start re-executes this binary as the proxy's uid to check the SVID.
	spire.RunFetcherIfRequested()
	code := m.Run()
	kubetest.Stop()
	for _, f := range atExit {
		f()
	}
	os.Exit(code)
}

// waitDeadline bounds waits on a shared, noisy machine; a wait that gives
// up names what it waited for. It is not a performance limit.
const waitDeadline = 3 * time.Minute

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func logger(t testing.TB, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", name)
}

// kinds maps the manifests' kinds to their resources.
var kinds = map[string]schema.GroupVersionResource{
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

// applyDocs server-side applies every document of a multi-document YAML,
// as kubectl apply --server-side does, and returns the objects applied.
func applyDocs(t testing.TB, cfg *rest.Config, docs []byte) []*unstructured.Unstructured {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, doc := range bytes.Split(docs, []byte("\n---\n")) {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			t.Fatalf("parse manifest: %v\n%s", err, doc)
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvr, ok := kinds[obj.GetKind()]
		if !ok {
			t.Fatalf("manifest of unexpected kind %q", obj.GetKind())
		}
		var res dynamic.ResourceInterface = dyn.Resource(gvr)
		if ns := obj.GetNamespace(); ns != "" {
			res = dyn.Resource(gvr).Namespace(ns)
		}
		if _, err := res.Apply(ctxT(t), obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "kubectl", Force: true}); err != nil {
			t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		out = append(out, obj)
	}
	return out
}

// groupYAML is an ExternalGroup in ns with a path-prefix rule, edited by
// the caller through replacements.
func groupYAML(ns, name string, replace ...string) []byte {
	s := `apiVersion: meshexp.io/v1alpha1
kind: ExternalGroup
metadata:
  name: NAME
  namespace: NS
spec:
  workload:
    labels: {app: web, tier: edge}
    annotations: {config.linkerd.io/opaque-ports: "5432"}
    ports:
    - {name: http, port: 8000}
  service: {name: NAME}
  identities: {pathPrefix: /hosts/}
  deadHost: {notReadyAfterSeconds: 3, deleteAfterSeconds: 6}
`
	s = strings.NewReplacer("NAME", name, "NS", ns).Replace(s)
	for i := 0; i+1 < len(replace); i += 2 {
		s = strings.Replace(s, replace[i], replace[i+1], 1)
	}
	return []byte(s)
}

func applyGroup(t testing.TB, dyn dynamic.Interface, doc []byte) error {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
		t.Fatal(err)
	}
	_, err := dyn.Resource(schema.GroupVersionResource{Group: "meshexp.io", Version: "v1alpha1", Resource: "externalgroups"}).
		Namespace(obj.GetNamespace()).Apply(ctxT(t), obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "test", Force: true})
	return err
}

func writeTemp(t testing.TB, b []byte) string {
	t.Helper()
	p := t.TempDir() + "/crd.yaml"
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
