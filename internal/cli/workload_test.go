package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

// TestMain stops the package's API server (started by the first test that
// asks for one). A package needing more in TestMain calls kubetest.Stop.
func TestMain(m *testing.M) { kubetest.Main(m) }

var workloadEnv = map[string]string{"WORKLOAD_NAME": "vm-1", "WORKLOAD_NAMESPACE": "mixed-env", "NODE_NAME": "host-1"}

func TestWorkloadRenderPrintsTheDemosObjects(t *testing.T) {
	code, stdout, stderr := run(t, []string{"workload", "render", "--workload-ip", "192.0.2.10"}, workloadEnv)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"kind: ExternalWorkload",
		"identity: spiffe://root.linkerd.cluster.local/vm-1",
		"serverName: vm-1.cluster.local",
		"- ip: 192.0.2.10",
		"port: 8000",
		"kind: Service",
		"port: 80\n",
		"targetPort: http",
		"workload_name: vm-1",
		// What Linkerd reads about the host's proxy: meshexp's defaults.
		"config.linkerd.io/opaque-ports: 25,587,3306,4444,5432,6379,9300,11211",
		"- name: linkerd-proxy\n    port: 4143\n",
		"ipFamilyPolicy: SingleStack",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("render output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestWorkloadRenderWritesTheProxysInboundAndOpaquePorts(t *testing.T) {
	env := withEnv(workloadEnv, "MESHEXP_OPAQUE_PORTS", "3306,4000-4100")
	code, stdout, stderr := run(t, []string{"workload", "render", "--workload-ip", "192.0.2.10", "--workload-ip", "2001:db8::10", "--inbound-port", "4200"}, env)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"config.linkerd.io/opaque-ports: 3306,4000-4100", "- name: linkerd-proxy\n    port: 4200\n", "ipFamilyPolicy: PreferDualStack"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("render output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestWorkloadIdentityFollowsTheTrustAndClusterDomains(t *testing.T) {
	env := map[string]string{"MESHEXP_TRUST_DOMAIN": "example.org", "MESHEXP_CLUSTER_DOMAIN": "corp.local", "MESHEXP_PORTS": "grpc:9090,metrics:9100"}
	for k, v := range workloadEnv {
		env[k] = v
	}
	code, stdout, stderr := run(t, []string{"workload", "render", "--workload-ip", "2001:db8::10", "--label", "team=payments"}, env)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"identity: spiffe://example.org/vm-1", "serverName: vm-1.corp.local", "name: metrics", "port: 9090\n", "team: payments"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("render output lacks %q:\n%s", want, stdout)
		}
	}
}

// Bad input exits 2, names every input at once, and never reaches the API
// server: the kubeconfig points at a listener that counts connections.
func TestWorkloadBadInputExitsTwoBeforeAnyAPICall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://`+ln.Addr().String()+`"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"bad IP, port and label are named together", []string{"--workload-ip", "10.0.0.300", "--port", "http", "--label", "bad key=v"}, workloadEnv,
			[]string{"--workload-ip", `"10.0.0.300" is not an IP`, "--port", `port "http"`, "--label"}},
		{"a bad MESHEXP_PORTS is named", []string{"--workload-ip", "192.0.2.10"}, withEnv(workloadEnv, "MESHEXP_PORTS", "http:8000,admin:99999"),
			[]string{"MESHEXP_PORTS", "out of range"}},
		{"a bad MESHEXP_SERVICE_PORT is named", []string{"--workload-ip", "192.0.2.10"}, withEnv(workloadEnv, "MESHEXP_SERVICE_PORT", "eighty"),
			[]string{"MESHEXP_SERVICE_PORT"}},
		{"a name that cannot be a Service is refused", []string{"--workload-ip", "192.0.2.10"}, withEnv(workloadEnv, "WORKLOAD_NAME", "1vm"),
			[]string{"workload name \"1vm\""}},
		{"a missing name is named", []string{"--workload-ip", "192.0.2.10"}, map[string]string{"WORKLOAD_NAMESPACE": "ns"},
			[]string{"WORKLOAD_NAME"}},
		{"two IPv4 addresses are refused", []string{"--workload-ip", "192.0.2.10", "--workload-ip", "192.0.2.11"}, workloadEnv,
			[]string{"at most one IPv4 and one IPv6"}},
		{"a loopback address is refused", []string{"--workload-ip", "127.0.0.1"}, workloadEnv,
			[]string{"not reachable from the cluster"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"workload", "apply", "--kubeconfig", kc}, tt.args...)
			code, _, stderr := run(t, args, tt.env)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitUsage, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections reached the API server; bad input must be refused before any call", n)
	}
}

func withEnv(base map[string]string, k, v string) map[string]string {
	m := map[string]string{}
	for a, b := range base {
		m[a] = b
	}
	m[k] = v
	return m
}

// The hand flow an operator follows: rbac writes the host's kubeconfig with
// the administrator's, the host applies (twice: no write the second time)
// and deletes with its own least-privilege credentials.
func TestWorkloadRBACApplyAndDeleteAgainstARealAPIServer(t *testing.T) {
	srv := kubetest.Get(t)
	ns := srv.CreateNamespace(t, "cli")
	dir := t.TempDir()
	admin := srv.AdminConfig()
	adminKC, err := kube.HostKubeconfig(admin, "default", "admin", admin.BearerToken)
	if err != nil {
		t.Fatal(err)
	}
	adminPath, hostPath := filepath.Join(dir, "admin"), filepath.Join(dir, "host")
	if err := os.WriteFile(adminPath, adminKC, 0o600); err != nil {
		t.Fatal(err)
	}
	env := withEnv(workloadEnv, "WORKLOAD_NAMESPACE", ns)

	code, stdout, stderr := run(t, []string{"workload", "rbac", "--kubeconfig", adminPath, "--kubeconfig-out", hostPath, "--token-ttl", "1h"}, env)
	if code != ExitOK {
		t.Fatalf("rbac: exit %d: %s", code, stderr)
	}
	if fi, err := os.Stat(hostPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host kubeconfig %s: %v, mode %v; want 0600", hostPath, err, fi.Mode())
	}
	t.Log(strings.TrimSpace(stdout))

	adminClient, err := kube.NewClient(admin)
	if err != nil {
		t.Fatal(err)
	}
	w := &kube.Workload{Name: "vm-1", Namespace: ns}
	apply := func() string {
		t.Helper()
		code, _, stderr := run(t, []string{"workload", "apply", "--kubeconfig", hostPath, "--workload-ip", "192.0.2.10"}, env)
		if code != ExitOK {
			t.Fatalf("apply: exit %d: %s", code, stderr)
		}
		ew, err := adminClient.GetWorkload(context.Background(), w)
		if err != nil {
			t.Fatal(err)
		}
		if c := kube.ReadyCondition(ew.Status.Conditions); c == nil || c.Status != "True" {
			t.Fatalf("Ready after apply = %+v, want True", c)
		}
		return ew.Metadata.ResourceVersion
	}
	if rv1, rv2 := apply(), apply(); rv1 != rv2 {
		t.Errorf("the second apply wrote: resourceVersion %s → %s", rv1, rv2)
	}

	// Delete withdraws readiness first: a Ready=True ExternalWorkload
	// deleted outright stays offered by Linkerd while its Service stays.
	watcher, err := adminClient.Dynamic.Resource(kube.ExternalWorkloadGVR).Namespace(ns).Watch(context.Background(), metav1.ListOptions{
		FieldSelector: "metadata.name=vm-1", ResourceVersion: apply()})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Stop()
	code, _, stderr = run(t, []string{"workload", "delete", "--kubeconfig", hostPath}, env)
	if code != ExitOK {
		t.Fatalf("delete: exit %d: %s", code, stderr)
	}
	var seen []string
	for done := false; !done; {
		select {
		case ev := <-watcher.ResultChan():
			switch ev.Type {
			case watch.Deleted:
				seen, done = append(seen, "DELETED"), true
			case watch.Modified:
				conds, _, _ := unstructured.NestedSlice(ev.Object.(*unstructured.Unstructured).Object, "status", "conditions")
				for _, c := range conds {
					if m, _ := c.(map[string]any); m["type"] == kube.ConditionReady {
						seen = append(seen, fmt.Sprintf("Ready=%v", m["status"]))
					}
				}
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("no DELETED event; saw %v", seen)
		}
	}
	if !slices.Equal(seen, []string{"Ready=False", "DELETED"}) {
		t.Errorf("delete made the ExternalWorkload go through %v, want [Ready=False DELETED]", seen)
	}
	if _, err := adminClient.GetWorkload(context.Background(), w); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("ExternalWorkload after delete: %v, want not found", err)
	}
}

func TestWorkloadRBACPrintsTheLeastPrivilegeObjects(t *testing.T) {
	code, stdout, stderr := run(t, []string{"workload", "rbac", "--routes"}, workloadEnv)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"kind: ServiceAccount", "name: meshexp-vm-1", "kind: Role\n", "resourceNames:\n  - vm-1", "externalworkloads/status", "kind: ClusterRole\n", "servicecidrs"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("rbac output lacks %q:\n%s", want, stdout)
		}
	}
}
