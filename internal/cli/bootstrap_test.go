package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/trust/trusttest"
)

// run executes the CLI with exactly env as the environment.
func run(t *testing.T, args []string, env map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = execute(context.Background(), args, lookup, &out, &errb)
	return code, out.String(), errb.String()
}

func demoEnv(dir string) map[string]string {
	return map[string]string{
		"WORKLOAD_NAME":            "web",
		"WORKLOAD_NAMESPACE":       "mixed-env",
		"NODE_NAME":                "vm-1",
		"MESHEXP_TRUST_ANCHOR_DIR": dir,
	}
}

func TestDryRunWithTheDemoVariablesPrintsACompletePlan(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := run(t, []string{"certs", "root", "--out-dir", dir}, nil); code != 0 {
		t.Fatalf("certs root: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := run(t, []string{"bootstrap", "--dry-run"}, demoEnv(dir))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"## start order", "spiffe://root.linkerd.cluster.local/web", "unix:uid:2102",
		"## proxy environment", `LINKERD2_PROXY_POLICY_WORKLOAD={"ns":"mixed-env","external_workload":"web"}`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
}

// TestBadInputExitsTwoAndNamesTheInput feeds bad input of every kind and
// checks that bootstrap refuses it with exit 2, a message naming the input,
// and no change to the host (nothing is written to the SPIRE data dir).
func TestBadInputExitsTwoAndNamesTheInput(t *testing.T) {
	goodDir, _ := trusttest.AnchorDir(t)
	certDir := func(s trusttest.Spec) string { c, k := trusttest.Make(t, s); return trusttest.WriteDir(t, c, k) }
	mismatched := func() string {
		c, _ := trusttest.Make(t, trusttest.Spec{})
		_, k := trusttest.Make(t, trusttest.Spec{})
		return trusttest.WriteDir(t, c, k)
	}()
	keyless := func() string {
		c, _ := trusttest.Make(t, trusttest.Spec{})
		return trusttest.WriteDir(t, c, nil)
	}()
	dirAsCert := t.TempDir()
	if err := os.Mkdir(filepath.Join(dirAsCert, "ca.crt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, k := trusttest.Make(t, trusttest.Spec{}); os.WriteFile(filepath.Join(dirAsCert, "ca.key"), k, 0o600) != nil {
		t.Fatal("write")
	}
	garbage := trusttest.WriteDir(t, []byte("not a certificate"), []byte("not a key"))
	badYAML := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badYAML, []byte("inbound-port: [1, 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	longSock := "/tmp/" + strings.Repeat("s", 110) + ".sock"

	tests := []struct {
		name string
		args []string
		env  map[string]string // merged over the demo's variables; "" deletes
		want string            // the input the message must name
	}{
		{"a missing workload name", nil, map[string]string{"WORKLOAD_NAME": ""}, "WORKLOAD_NAME: is not set"},
		{"a missing namespace", nil, map[string]string{"WORKLOAD_NAMESPACE": ""}, "WORKLOAD_NAMESPACE: is not set"},
		{"a missing node name", nil, map[string]string{"NODE_NAME": ""}, "NODE_NAME: is not set"},
		{"an uppercase workload name", nil, map[string]string{"WORKLOAD_NAME": "Web"}, "WORKLOAD_NAME"},
		{"a workload name with an underscore", nil, map[string]string{"WORKLOAD_NAME": "my_app"}, "WORKLOAD_NAME"},
		{"a workload name with a slash", nil, map[string]string{"WORKLOAD_NAME": "a/b"}, "WORKLOAD_NAME"},
		{"a 64-character workload name", nil, map[string]string{"WORKLOAD_NAME": strings.Repeat("a", 64)}, "WORKLOAD_NAME"},
		{"a namespace ending in a dash", nil, map[string]string{"WORKLOAD_NAMESPACE": "ns-"}, "WORKLOAD_NAMESPACE"},
		{"a node name with spaces", nil, map[string]string{"NODE_NAME": "vm 1"}, "NODE_NAME"},
		{"a trust domain with uppercase", []string{"--trust-domain", "Root.Linkerd"}, nil, "--trust-domain"},
		{"a non-CA trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": certDir(trusttest.Spec{NotCA: true})}, "not a CA"},
		{"an expired trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": certDir(trusttest.Spec{NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})}, "expired on"},
		{"a not-yet-valid trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": certDir(trusttest.Spec{NotBefore: time.Now().Add(time.Hour)})}, "not valid until"},
		{"an RSA trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": certDir(trusttest.Spec{Key: "rsa"})}, "RSA 2048-bit key; Linkerd requires ECDSA P-256"},
		{"a P-384 trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": certDir(trusttest.Spec{Key: "p384"})}, "ECDSA P-384"},
		{"a key that does not match the anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": mismatched}, "does not match"},
		{"a garbage PEM trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": garbage}, "not a valid PEM certificate"},
		{"a missing trust anchor directory", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": "/nonexistent/certs"}, "ca.crt (from MESHEXP_TRUST_ANCHOR_DIR): certificate file does not exist"},
		{"a missing root key in embedded mode", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": keyless}, "ca.key (from MESHEXP_TRUST_ANCHOR_DIR): private key file does not exist"},
		{"a directory instead of the certificate file", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": dirAsCert}, "certificate path is a directory"},
		{"a non-numeric port", []string{"--inbound-port", "http"}, nil, "--inbound-port"},
		{"port 70000", nil, map[string]string{"MESHEXP_ADMIN_PORT": "70000"}, "MESHEXP_ADMIN_PORT: port 70000 is out of range"},
		{"port 0", []string{"--outbound-port", "0"}, nil, "--outbound-port: port 0 is out of range"},
		{"two listeners on one port", []string{"--admin-port", "4143"}, nil, "--admin-port: port 4143 is also the inbound-port"},
		{"a skip port of 70000", []string{"--skip-outbound-ports", "22,70000"}, nil, "--skip-outbound-ports"},
		{"a reversed port range", []string{"--skip-inbound-ports", "9000-8000"}, nil, "--skip-inbound-ports: range \"9000-8000\" is reversed"},
		{"a malformed port range", []string{"--opaque-ports", "80-"}, nil, "--opaque-ports"},
		{"a CIDR with a /33 mask", []string{"--cluster-networks", "10.0.0.0/33"}, nil, "--cluster-networks"},
		{"a CIDR that is a word", nil, map[string]string{"MESHEXP_SKIP_OUTBOUND_SUBNETS": "office"}, "MESHEXP_SKIP_OUTBOUND_SUBNETS"},
		{"a CIDR with host bits", []string{"--skip-outbound-subnets", "10.1.2.3/8"}, nil, "did you mean 10.0.0.0/8"},
		{"the proxy as root", nil, map[string]string{"MESHEXP_PROXY_UID": "0"}, "MESHEXP_PROXY_UID: the proxy must not run as root"},
		{"a proxy user that does not exist", []string{"--proxy-uid", "no-such-user-meshexp"}, nil, "--proxy-uid: user \"no-such-user-meshexp\" does not exist"},
		{"a workload group that does not exist", []string{"--workload-user", "1000:no-such-group-meshexp"}, nil, "--workload-user"},
		{"the workload as the proxy's uid", []string{"--workload-user", "2102"}, nil, "--workload-user"},
		{"an unknown SPIRE mode", nil, map[string]string{"MESHEXP_SPIRE_MODE": "cloud"}, "MESHEXP_SPIRE_MODE: \"cloud\" is not a valid choice"},
		{"external mode without a server", []string{"--spire-mode", "external", "--spire-join-token-file", "/dev/null"}, nil, "--spire-server-address"},
		{"external mode without attestation", []string{"--spire-mode", "external", "--spire-server-address", "10.9.0.1"}, nil, "external mode needs a way to attest this node"},
		{"an unreadable join token file", []string{"--spire-mode", "external", "--spire-server-address", "10.9.0.1", "--spire-join-token-file", "/nonexistent/token"}, nil, "--spire-join-token-file"},
		{"a socket path longer than a Unix socket allows", []string{"--spire-socket", longSock}, nil, "--spire-socket: socket path is"},
		{"a negative timeout", []string{"--ready-timeout", "-5s"}, nil, "--ready-timeout"},
		{"an unknown backend", []string{"--intercept-backend", "pf"}, nil, "--intercept-backend"},
		{"a bad control mark", []string{"--control-mark", "zero"}, nil, "--control-mark"},
		{"a cluster policy without cluster networks", []string{"--inbound-default-policy", "cluster-authenticated", "--cluster-networks", ""}, nil, "--inbound-default-policy"},
		{"a destination address without a port", []string{"--destination-addr", "linkerd-dst"}, nil, "--destination-addr"},
		{"an unreadable config file", []string{"--config", "/nonexistent/meshexp.yaml"}, nil, "--config: config file /nonexistent/meshexp.yaml does not exist"},
		{"a malformed config file", []string{"--config", badYAML}, nil, "config file " + badYAML + ": is not valid YAML"},
		{"an unknown flag", []string{"--no-such-flag"}, nil, "--no-such-flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "spire")
			env := demoEnv(goodDir)
			env["MESHEXP_SPIRE_DATA_DIR"] = dataDir
			for k, v := range tc.env {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			code, stdout, stderr := run(t, append([]string{"bootstrap", "--dry-run"}, tc.args...), env)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, ExitUsage, stdout, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("message does not name %q:\n%s", tc.want, stderr)
			}
			if stdout != "" {
				t.Errorf("printed a plan for bad input:\n%s", stdout)
			}
			if _, err := os.Stat(dataDir); err == nil {
				t.Errorf("bad input created %s", dataDir)
			}
		})
	}
}

func TestCertsRefuseToOverwriteWithoutForce(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := run(t, []string{"certs", "root", "--out-dir", dir}, nil); code != 0 {
		t.Fatal(stderr)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	code, _, stderr := run(t, []string{"certs", "root", "--out-dir", dir}, nil)
	if code != ExitUsage || !strings.Contains(stderr, "already exists") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	if !bytes.Equal(before, after) {
		t.Error("the refused run changed ca.key")
	}
	if code, _, stderr := run(t, []string{"certs", "root", "--out-dir", dir, "--force"}, nil); code != 0 {
		t.Fatal(stderr)
	}
}

func TestCertsIntermediateAndIssuerChainToTheRoot(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"certs", "root", "--out-dir", dir},
		{"certs", "intermediate", "--ca-dir", dir, "--out-dir", dir},
		{"certs", "issuer", "--ca-dir", dir, "--out-dir", dir},
	} {
		if code, _, stderr := run(t, args, nil); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}
	code, stdout, stderr := run(t, []string{"certs", "inspect", "--key", filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.crt"), filepath.Join(dir, "intermediate.crt"), filepath.Join(dir, "issuer.crt")}, nil)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s\n%s", code, stderr, stdout)
	}
	if !strings.Contains(stdout, "CA:           yes (pathlen 1)") || !strings.Contains(stdout, "CA:           yes (pathlen 0)") {
		t.Errorf("inspect output lacks the path lengths:\n%s", stdout)
	}
	// The intermediate is accepted as the embedded SPIRE server's upstream.
	env := demoEnv(dir)
	env["MESHEXP_SPIRE_UPSTREAM_CERT"] = filepath.Join(dir, "intermediate.crt")
	env["MESHEXP_SPIRE_UPSTREAM_KEY"] = filepath.Join(dir, "intermediate.key")
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, []string{"bootstrap", "--dry-run"}, env); code != 0 {
		t.Fatalf("an intermediate without the root key was refused: %s", stderr)
	}
}

func TestCertsInspectFailsOnABadCertificate(t *testing.T) {
	c, _ := trusttest.Make(t, trusttest.Spec{Key: "rsa"})
	dir := trusttest.WriteDir(t, c, nil)
	code, stdout, _ := run(t, []string{"certs", "inspect", filepath.Join(dir, "ca.crt")}, nil)
	if code != ExitUsage || !strings.Contains(stdout, "Linkerd requires ECDSA P-256") {
		t.Fatalf("exit %d:\n%s", code, stdout)
	}
}

func TestDNSSettingsAreCheckedBeforeAnythingChanges(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	env := demoEnv(dir)
	env["MESHEXP_DNS"] = "true"
	env["MESHEXP_DNS_CLUSTER_DNS"] = "10.9.0.1:30053"
	env["MESHEXP_DNS_UPSTREAM"] = "10.9.0.2"
	code, stdout, stderr := run(t, []string{"bootstrap", "--dry-run", "--dns-listen", "localhost"}, env)
	if code != ExitUsage || !strings.Contains(stderr, "--dns-listen") || stdout != "" {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	delete(env, "MESHEXP_DNS_CLUSTER_DNS")
	code, _, stderr = run(t, []string{"bootstrap", "--dry-run"}, env)
	if code != ExitUsage || !strings.Contains(stderr, "--cluster-dns") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
}
