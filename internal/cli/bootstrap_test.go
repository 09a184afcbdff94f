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
	f := newBadInputFixtures(t, goodDir)
	yamlNo, yamlOctal := f.yaml("workload-name: no\n"), f.yaml("workload-name: 0123\n")
	yamlList, yamlTop, yamlKey := f.yaml("node-name: vm-1\ninbound-port: [1, 2]\n"), f.yaml("- inbound-port\n- 4143\n"), f.yaml("inbound-port: 4143\ninbound-prot: 4143\n")

	tests := []struct {
		name    string
		args    []string
		env     map[string]string // merged over the demo's variables; "" deletes
		want    string            // the input the message must name
		notWant string            // a wrong input or a Go name the message must not show
	}{
		{"a missing workload name", nil, map[string]string{"WORKLOAD_NAME": ""}, "WORKLOAD_NAME: is not set", ""},
		{"a missing namespace", nil, map[string]string{"WORKLOAD_NAMESPACE": ""}, "WORKLOAD_NAMESPACE: is not set", ""},
		{"a missing node name", nil, map[string]string{"NODE_NAME": ""}, "NODE_NAME: is not set", ""},
		{"an uppercase workload name", nil, map[string]string{"WORKLOAD_NAME": "Web"}, "WORKLOAD_NAME", ""},
		{"a workload name with an underscore", nil, map[string]string{"WORKLOAD_NAME": "my_app"}, "WORKLOAD_NAME", ""},
		{"a workload name with a slash", nil, map[string]string{"WORKLOAD_NAME": "a/b"}, "WORKLOAD_NAME", ""},
		{"a 64-character workload name", nil, map[string]string{"WORKLOAD_NAME": strings.Repeat("a", 64)}, "WORKLOAD_NAME", ""},
		{"a namespace ending in a dash", nil, map[string]string{"WORKLOAD_NAMESPACE": "ns-"}, "WORKLOAD_NAMESPACE", ""},
		{"a node name with spaces", nil, map[string]string{"NODE_NAME": "vm 1"}, "NODE_NAME", ""},
		{"a trust domain with uppercase", []string{"--trust-domain", "Root.Linkerd"}, nil, "--trust-domain", ""},
		{"a non-CA trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": certDir(trusttest.Spec{NotCA: true})}, "not a CA", ""},
		{"an expired trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": certDir(trusttest.Spec{NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})}, "expired on", ""},
		{"a not-yet-valid trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": certDir(trusttest.Spec{NotBefore: time.Now().Add(time.Hour)})}, "not valid until", ""},
		{"an RSA trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": certDir(trusttest.Spec{Key: "rsa"})}, "RSA 2048-bit key; Linkerd requires ECDSA P-256", ""},
		{"a P-384 trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": certDir(trusttest.Spec{Key: "p384"})}, "ECDSA P-384", ""},
		{"a key that does not match the anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": mismatched}, "does not match", ""},
		{"a garbage PEM trust anchor", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": garbage}, "not a valid PEM certificate", ""},
		{"a missing trust anchor directory", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": "/nonexistent/certs"}, "ca.crt (from MESHEXP_TRUST_ANCHOR_DIR): certificate file does not exist", ""},
		{"a missing root key in embedded mode", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": keyless}, "ca.key (from MESHEXP_TRUST_ANCHOR_DIR): private key file does not exist", ""},
		{"a directory instead of the certificate file", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": dirAsCert}, "certificate path is a directory", ""},
		{"a non-numeric port", []string{"--inbound-port", "http"}, nil, "--inbound-port", ""},
		{"port 70000", nil, map[string]string{"MESHEXP_ADMIN_PORT": "70000"}, "MESHEXP_ADMIN_PORT: port 70000 is out of range", ""},
		{"port 0", []string{"--outbound-port", "0"}, nil, "--outbound-port: port 0 is out of range", ""},
		{"two listeners on one port", []string{"--admin-port", "4143"}, nil, "--admin-port: port 4143 is also the inbound-port", ""},
		{"a skip port of 70000", []string{"--skip-outbound-ports", "22,70000"}, nil, "--skip-outbound-ports", ""},
		{"a reversed port range", []string{"--skip-inbound-ports", "9000-8000"}, nil, "--skip-inbound-ports: range \"9000-8000\" is reversed", ""},
		{"a malformed port range", []string{"--opaque-ports", "80-"}, nil, "--opaque-ports", ""},
		{"a CIDR with a /33 mask", []string{"--cluster-networks", "10.0.0.0/33"}, nil, "--cluster-networks", ""},
		{"a CIDR that is a word", nil, map[string]string{"MESHEXP_SKIP_OUTBOUND_SUBNETS": "office"}, "MESHEXP_SKIP_OUTBOUND_SUBNETS", ""},
		{"a CIDR with host bits", []string{"--skip-outbound-subnets", "10.1.2.3/8"}, nil, "did you mean 10.0.0.0/8", ""},
		{"the proxy as root", nil, map[string]string{"MESHEXP_PROXY_UID": "0"}, "MESHEXP_PROXY_UID: the proxy must not run as root", ""},
		{"a proxy user that does not exist", []string{"--proxy-uid", "no-such-user-meshexp"}, nil, "--proxy-uid: user \"no-such-user-meshexp\" does not exist", ""},
		{"a workload group that does not exist", []string{"--workload-user", "1000:no-such-group-meshexp"}, nil, "--workload-user", ""},
		{"the workload as the proxy's uid", []string{"--workload-user", "2102"}, nil, "--workload-user", ""},
		{"an unknown SPIRE mode", nil, map[string]string{"MESHEXP_SPIRE_MODE": "cloud"}, "MESHEXP_SPIRE_MODE: \"cloud\" is not a valid choice", ""},
		{"external mode without a server", []string{"--spire-mode", "external", "--spire-join-token-file", "/dev/null"}, nil, "--spire-server-address", ""},
		{"external mode without attestation", []string{"--spire-mode", "external", "--spire-server-address", "10.9.0.1"}, nil, "external mode needs a way to attest this node", ""},
		{"an unreadable join token file", []string{"--spire-mode", "external", "--spire-server-address", "10.9.0.1", "--spire-join-token-file", "/nonexistent/token"}, nil, "--spire-join-token-file", ""},
		{"a socket path longer than a Unix socket allows", []string{"--spire-socket", longSock}, nil, "--spire-socket: socket path is", ""},
		{"a negative timeout", []string{"--ready-timeout", "-5s"}, nil, "--ready-timeout", ""},
		{"an unknown backend", []string{"--intercept-backend", "pf"}, nil, "--intercept-backend", ""},
		{"a bad control mark", []string{"--control-mark", "zero"}, nil, "--control-mark", ""},
		{"a cluster policy without cluster networks", []string{"--inbound-default-policy", "cluster-authenticated", "--cluster-networks", ""}, nil, "--inbound-default-policy", ""},
		{"a destination address without a port", []string{"--destination-addr", "linkerd-dst"}, nil, "--destination-addr", ""},
		{"an unreadable config file", []string{"--config", "/nonexistent/meshexp.yaml"}, nil, "--config: config file /nonexistent/meshexp.yaml does not exist", ""},
		{"a malformed config file", []string{"--config", badYAML}, nil, "config file " + badYAML + ": is not valid YAML", ""},
		{"an unknown flag", []string{"--no-such-flag"}, nil, "--no-such-flag", ""},

		// Checks that used to wait for identity to start, naming Go fields.
		{"a socket directory the proxy uid cannot enter", []string{"--spire-socket", f.closedDir + "/public/api.sock"}, nil,
			"--spire-socket: directory " + f.closedDir, "SocketPath"},
		{"an existing agent's socket the proxy uid cannot reach", []string{"--spire-mode", "existing", "--spire-socket", f.closedDir + "/api.sock"}, nil,
			"--spire-socket: directory " + f.closedDir + " (mode 0700, owner 0:0) does not let the proxy uid 2102 (--proxy-uid) reach the socket", "SocketPath"},
		{"a socket inside the data dir", []string{"--spire-socket", f.dataDir + "/agent/public/api.sock"}, map[string]string{"MESHEXP_SPIRE_DATA_DIR": f.dataDir},
			"--spire-socket: " + f.dataDir + "/agent/public/api.sock is inside --spire-data-dir", "SocketPath"},
		{"a data dir that is a file", nil, map[string]string{"MESHEXP_SPIRE_DATA_DIR": f.file},
			"MESHEXP_SPIRE_DATA_DIR: " + f.file + " is a regular file, not a directory", "DataDir"},
		{"a relative data dir", []string{"--spire-data-dir", "spire-data"}, nil, "--spire-data-dir: \"spire-data\" is a relative path", "DataDir"},
		{"a relative trust anchor dir", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": "certs"}, "MESHEXP_TRUST_ANCHOR_DIR: \"certs\" is a relative path", "TrustAnchorPath"},
		{"an external server given as ip:port", []string{"--spire-mode", "external", "--spire-server-address", "10.9.0.1:8081", "--spire-join-token-file", f.token}, nil,
			"--spire-server-address: \"10.9.0.1:8081\" includes a port (fix: give the host alone and the port separately: --spire-server-address 10.9.0.1 --spire-server-port 8081)", "ServerAddress"},
		{"a relative SPIRE bin dir", []string{"--spire-bin-dir", "spire/bin"}, nil, "--spire-bin-dir: \"spire/bin\" is a relative path", "BinDir"},
		{"a join token with a space", []string{"--spire-mode", "external", "--spire-server-address", "10.9.0.1"}, map[string]string{"MESHEXP_SPIRE_JOIN_TOKEN": "abc def"},
			"MESHEXP_SPIRE_JOIN_TOKEN: contains whitespace, quotes or control characters", "abc def"},
		{"an x509pop key that does not match its certificate", []string{"--spire-mode", "external", "--spire-server-address", "10.9.0.1",
			"--spire-x509pop-cert", goodDir + "/ca.crt", "--spire-x509pop-key", mismatched + "/ca.key"}, nil, "--spire-x509pop-cert: key " + mismatched + "/ca.key does not match certificate " + goodDir + "/ca.crt", "X509Pop"},
		{"an empty join token file", []string{"--spire-mode", "external", "--spire-server-address", "10.9.0.1", "--spire-join-token-file", f.file}, nil,
			"--spire-join-token-file: " + f.file + " is empty", "JoinTokenFile"},
		{"a SPIRE server name that does not resolve", []string{"--spire-mode", "external", "--spire-server-address", "spire.invalid", "--spire-join-token-file", f.token}, nil,
			"--spire-server-address: the DNS lookup of spire.invalid failed", "ServerAddress"},
		{"a proxy binary in a directory the proxy uid cannot enter", []string{"--proxy-bin", f.closedDir + "/linkerd2-proxy"}, nil,
			"--proxy-bin: uid 2102 (--proxy-uid) cannot reach " + f.closedDir + "/linkerd2-proxy", ""},
		{"a proxy binary the proxy uid may not execute", []string{"--proxy-bin", f.ownerOnlyExe}, nil,
			"--proxy-bin: uid 2102 (--proxy-uid) cannot execute " + f.ownerOnlyExe, ""},
		{"a workload the workload uid may not execute", []string{"--workload", f.ownerOnlyExe}, nil,
			"--workload: uid 65534 (--workload-user) cannot execute " + f.ownerOnlyExe, ""},

		// Values that were accepted and failed later or changed meaning.
		{"a workload name YAML 1.1 reads as a boolean", []string{"--config", yamlNo}, map[string]string{"WORKLOAD_NAME": ""},
			"(key workload-name in " + yamlNo + ", line 1): \"no\" is read as the boolean false by YAML 1.1 readers (fix: quote it to mean the text: workload-name: \"no\")", ""},
		{"a workload name YAML 1.1 reads as an octal number", []string{"--config", yamlOctal}, map[string]string{"WORKLOAD_NAME": ""},
			"\"0123\" is read as the number 83 by YAML 1.1 readers", ""},
		{"a list for a single-value key", []string{"--config", yamlList}, nil,
			"--inbound-port (key inbound-port in " + yamlList + ", line 2): expects one value, not a list", "Go value"},
		{"a config file that is a list", []string{"--config", yamlTop}, nil,
			"config file " + yamlTop + ": line 1: holds a list; the file must map setting names to values", "interface"},
		{"an unknown config file key names its line", []string{"--config", yamlKey}, nil,
			"line 2: unknown key \"inbound-prot\"", ""},
		{"an IPv6 zone in a CIDR", []string{"--skip-outbound-subnets", "fe80::%veth0/64"}, nil, "--skip-outbound-subnets: \"fe80::%veth0/64\" has an IPv6 zone", ""},
		{"an IPv6 zone in a workload address", []string{"--workload-ip", "fe80::1%eth0"}, nil, "--workload-ip: \"fe80::1%eth0\" has an IPv6 zone", ""},
		{"the admin port on a workload port", []string{"--admin-port", "8000"}, nil, "--admin-port: port 8000 is also the workload's port http (--port)", ""},
		{"a workload port on the proxy's inbound port", []string{"--port", "http:4143"}, nil, "--port: port 4143 is also the inbound-port", ""},
		{"the DNS forwarder on the proxy's admin port", []string{"--dns", "--cluster-dns", "10.9.0.1", "--dns-listen", "127.0.0.1:4191"}, nil, "--dns-listen: port 4191 is also the admin-port", ""},
		{"a lease shorter than a second", []string{"--lease-duration", "500ms"}, nil, "--lease-duration: \"500ms\" is outside 4s–1h", ""},
		{"a lease in fractions of a second", []string{"--lease-duration", "4500ms"}, nil, "--lease-duration: \"4500ms\" is not a whole number of seconds", ""},
		{"a huge SVID timeout", nil, map[string]string{"MESHEXP_SPIRE_SVID_TIMEOUT": "10000h"}, "MESHEXP_SPIRE_SVID_TIMEOUT: \"10000h\" is outside 1s–1h", ""},
		{"a shutdown grace that overflows the teardown deadline", nil, map[string]string{"MESHEXP_SHUTDOWN_GRACE": "700000h"}, "MESHEXP_SHUTDOWN_GRACE: \"700000h\" is outside 100ms–10m", ""},
		{"a zero probe period", []string{"--register-probe-period", "0s"}, nil, "--register-probe-period: \"0s\" is outside 100ms–10m", ""},
		{"uid 4294967295", []string{"--proxy-uid", "4294967295"}, nil, "--proxy-uid: uid 4294967295 is out of range", ""},
		{"a negative uid", []string{"--workload-user", "-1"}, nil, "--workload-user: uid \"-1\" is out of range", ""},
		{"gid 4294967295", []string{"--workload-user", "1000:4294967295"}, nil, "--workload-user: gid 4294967295 is out of range", ""},
		{"inbound ports that are all skipped", []string{"--inbound-ports", "4567-4568"}, nil, "--inbound-ports: every port in it is also in --skip-inbound-ports", ""},
		{"a control plane namespace that is not a DNS label", []string{"--control-plane-namespace", "Linkerd_CP"}, nil,
			"--control-plane-namespace: \"Linkerd_CP\" is not a valid namespace name", "destination"},
		{"a FIFO as ca.key", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": f.fifoKeyDir},
			f.fifoKeyDir + "/ca.key (from MESHEXP_TRUST_ANCHOR_DIR): is a named pipe (FIFO), not a regular file", ""},
		{"a FIFO as the config file", []string{"--config", f.fifo}, nil, "--config: config file " + f.fifo + " is a named pipe (FIFO), not a regular file", ""},
		{"a device as the config file", nil, map[string]string{"MESHEXP_CONFIG": "/dev/zero"}, "MESHEXP_CONFIG: config file /dev/zero is a character device", ""},

		// Messages in the user's words.
		{"a 20 MiB value is named, not echoed", nil, map[string]string{"WORKLOAD_NAME": strings.Repeat("A", 20<<20)}, "… (20971520 bytes) is not a valid Kubernetes name", ""},
		{"an encrypted ca.key", nil, map[string]string{"MESHEXP_TRUST_ANCHOR_DIR": f.encryptedKeyDir},
			"ca.key is encrypted; meshexp needs an unencrypted PKCS#8 or SEC1 (EC PRIVATE KEY) key (fix: decrypt it with `openssl pkey", "asn1"},
		{"a KUBECONFIG list with no file in it", []string{"--register"}, map[string]string{"KUBECONFIG": "/nonexistent/a:/nonexistent/b"},
			"KUBECONFIG: none of its files exists: /nonexistent/a, /nonexistent/b", ""},
		{"a value word after a non-boolean flag", []string{"--intercept", "maybe"}, nil, "takes no arguments, but got \"maybe\"", "unknown command"},
		{"a boolean in words the parser does not take", []string{"--register=t"}, nil, "--register: \"t\" is not a boolean (fix: use true or false (yes/no, on/off and 1/0 are read the same))", ""},
		{"a boolean in the environment the parser does not take", nil, map[string]string{"MESHEXP_INTERCEPT": "enabled"}, "MESHEXP_INTERCEPT: \"enabled\" is not a boolean", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := demoEnv(goodDir)
			env["MESHEXP_SPIRE_DATA_DIR"] = filepath.Join(t.TempDir(), "spire")
			for k, v := range tc.env {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			dataDir := env["MESHEXP_SPIRE_DATA_DIR"]
			before := f.snapshot(t)
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
			if tc.notWant != "" && strings.Contains(stderr, tc.notWant) {
				t.Errorf("message shows %q:\n%s", tc.notWant, stderr)
			}
			if len(stderr) > 16<<10 {
				t.Errorf("message is %d bytes long", len(stderr))
			}
			if fi, err := os.Stat(dataDir); err == nil && (dataDir != f.file || !fi.Mode().IsRegular()) {
				t.Errorf("bad input created %s", dataDir)
			}
			if after := f.snapshot(t); after != before {
				t.Errorf("bad input changed the fixtures:\nbefore %s\nafter  %s", before, after)
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
