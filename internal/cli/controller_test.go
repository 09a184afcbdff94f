package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"go.yaml.in/yaml/v3"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/controller"
)

func TestControllerInstallPrintsTheManifestsForKubectl(t *testing.T) {
	code, stdout, stderr := run(t, []string{"controller", "install", "--replicas", "3", "--image", "registry.example/meshexp:v1"}, nil)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"kind: CustomResourceDefinition", "kind: ClusterRole", "kind: Deployment", "replicas: 3",
		"image: registry.example/meshexp:v1", "kind: PodDisruptionBudget", "kind: Service\n", "secretName: " + controller.TLSSecret} {
		if !strings.Contains(stdout, want) {
			t.Errorf("install output lacks %q", want)
		}
	}
	code, _, stderr = run(t, []string{"controller", "install", "--replicas", "0"}, nil)
	if code != ExitUsage || !strings.Contains(stderr, "--replicas 0") {
		t.Errorf("--replicas 0: exit %d: %s", code, stderr)
	}
}

func TestTheControllersCertificateCarriesTheIdentityHostsExpectByDefault(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"certs", "root", "--out-dir", dir},
		{"certs", "controller", "--ca-dir", dir, "--out-dir", dir},
	} {
		if code, _, stderr := run(t, args, nil); code != ExitOK {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}
	svid, err := x509svid.Load(filepath.Join(dir, "controller.crt"), filepath.Join(dir, "controller.key"))
	if err != nil {
		t.Fatalf("controller.crt is not an X.509-SVID: %v", err)
	}
	c := &config.Config{TrustDomain: "root.linkerd.cluster.local"}
	if svid.ID.String() != c.ControllerIdentity() || config.DefaultControllerNamespace != controller.DefaultNamespace {
		t.Errorf("certificate %s, hosts expect %s", svid.ID, c.ControllerIdentity())
	}
	if dns := svid.Certificates[0].DNSNames; len(dns) == 0 || dns[0] != "meshexp-controller.meshexp-system.svc" {
		t.Errorf("DNS names %v: want the Service's", dns)
	}
}

func TestControllerWithoutItsCertificateExitsTwoNamingTheFix(t *testing.T) {
	code, _, stderr := run(t, []string{"controller", "--tls-dir", t.TempDir(), "--listen", "127.0.0.1:0"}, nil)
	if code != ExitUsage || !strings.Contains(stderr, "--tls-dir") || !strings.Contains(stderr, "meshexp certs controller") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// controllerCerts makes a trust anchor and the controller's certificate
// in a new directory.
func controllerCerts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{{"certs", "root", "--out-dir", dir}, {"certs", "controller", "--ca-dir", dir, "--out-dir", dir}} {
		if code, _, stderr := run(t, args, nil); code != ExitOK {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}
	return dir
}

// TestControllerBadInputExitsTwoNamingTheSettingAndTheFix: the controller's
// settings come from the registry, so a bad flag, variable or file key is
// named as the user wrote it, with the fix, before any connection.
func TestControllerBadInputExitsTwoNamingTheSettingAndTheFix(t *testing.T) {
	certs := controllerCerts(t)
	ok := []string{"controller", "--tls-dir", certs, "--listen", "127.0.0.1:8443", "--kubeconfig", "/nonexistent/kubeconfig"}
	file := filepath.Join(t.TempDir(), "controller.yaml")
	if err := os.WriteFile(file, []byte("advertise-addr: no-port\nlease-duration: 10s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"a lease too short", []string{"--lease-duration", "500ms"}, nil,
			[]string{`--lease-duration: "500ms" is outside 2s–5m, whole seconds (fix: use a duration from`}},
		{"timings out of order", []string{"--renew-deadline", "20s"}, nil,
			[]string{"--lease-duration [env MESHEXP_CONTROLLER_LEASE_DURATION]: 15s is not longer than --renew-deadline 20s (fix: make it longer than --renew-deadline"}},
		{"a retry period from the environment", nil, map[string]string{"MESHEXP_CONTROLLER_RETRY_PERIOD": "soon"},
			[]string{`MESHEXP_CONTROLLER_RETRY_PERIOD: "soon" is not a duration`}},
		{"a listen address without a port", []string{"--listen", "127.0.0.1"}, nil,
			[]string{`--listen: "127.0.0.1": not [host]:port (fix: write it as [IP]:PORT`}},
		{"a metrics address without a port", []string{"--metrics-addr", "9990"}, nil,
			[]string{`--metrics-addr: "9990": not [host]:port (fix: write it as [IP]:PORT, e.g. :9990, or leave it empty`}},
		{"a namespace from the environment", nil, map[string]string{"MESHEXP_CONTROLLER_NAMESPACE": "Meshexp_System"},
			[]string{`MESHEXP_CONTROLLER_NAMESPACE: "Meshexp_System" is not a valid Kubernetes namespace (fix: use the namespace the controller runs in`}},
		{"a directory without the certificate", []string{"--tls-dir", t.TempDir()}, nil,
			[]string{"--tls-dir: ", "controller.crt/controller.key", "(fix: make them with `meshexp certs controller`"}},
		{"another trust domain", []string{"--trust-domain", "other.example"}, nil,
			[]string{"--tls-dir: ", "controller.crt is for spiffe://root.linkerd.cluster.local/ns/meshexp-system/sa/meshexp-controller, not in the trust domain other.example"}},
		{"no address to advertise", []string{"--listen", ":0"}, nil,
			[]string{"--advertise-addr [env MESHEXP_CONTROLLER_ADVERTISE_ADDR]: not set, and neither POD_IP nor a --listen host", "(fix: give this replica's HOST:PORT"}},
		{"file keys are the flags", []string{"--config", file}, nil,
			[]string{`--advertise-addr (key advertise-addr in ` + file + `, line 1): "no-port" is not host:port`,
				"--lease-duration (key lease-duration in " + file + ", line 2): 10s is not longer than --renew-deadline 10s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{}, ok...), tt.args...)
			code, _, stderr := run(t, args, tt.env)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d: %s", code, ExitUsage, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestControllerHelpListsItsSettingsWithTheirVariables: the flags kept
// their names and gained variables.
func TestControllerHelpListsItsSettingsWithTheirVariables(t *testing.T) {
	code, stdout, stderr := run(t, []string{"controller", "--help"}, nil)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"--namespace string", "MESHEXP_CONTROLLER_NAMESPACE", "--listen address", "--advertise-addr address", "--tls-dir string",
		"--lease-duration duration", "MESHEXP_CONTROLLER_RENEW_DEADLINE", "--retry-period duration", "--trust-domain", "--cluster-domain", "--kubeconfig", "--config"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if config.DefaultControllerPort != controller.DefaultPort {
		t.Errorf("config.DefaultControllerPort %d, controller.DefaultPort %d", config.DefaultControllerPort, controller.DefaultPort)
	}
}

// TestTheDeploymentsArgumentsAreValidControllerSettings: the install's
// arguments go through the same registry as a user's.
func TestTheDeploymentsArgumentsAreValidControllerSettings(t *testing.T) {
	out, err := controller.RenderInstall(controller.InstallOptions{Namespace: "meshexp-system", Image: "x/meshexp:v1", Replicas: 2, TrustDomain: "example.org", LogLevel: "info"})
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var doc struct {
			Kind string
			Spec struct {
				Template struct {
					Spec struct{ Containers []struct{ Args []string } }
				}
			}
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc.Kind == "Deployment" {
			args = doc.Spec.Template.Spec.Containers[0].Args
		}
	}
	if len(args) == 0 || args[0] != "controller" {
		t.Fatalf("Deployment args %q", args)
	}
	var own []string // without the global --log-level and --log-format
	for i := 1; i < len(args); i += 2 {
		if args[i] != "--log-level" && args[i] != "--log-format" {
			own = append(own, args[i], args[i+1])
		}
	}
	c, probs := config.LoadArgs(config.ScopeControllerCommand, own, map[string]string{"POD_IP": "10.0.0.5"})
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	if p := c.Validate(config.ValidateOptions{Scope: config.ScopeControllerCommand}); len(p) > 0 {
		t.Fatal(p)
	}
	if c.Controller.MetricsAddr != fmt.Sprintf(":%d", controller.MetricsPort) || c.TrustDomain != "example.org" {
		t.Errorf("metrics %q, trust domain %q", c.Controller.MetricsAddr, c.TrustDomain)
	}
}
