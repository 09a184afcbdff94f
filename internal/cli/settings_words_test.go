package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/spire"
	"github.com/meshexp/meshexp/internal/trust/trusttest"
)

// TestABooleanFlagTakesItsValueAfterASpace: `--intercept false` used to
// leave "false" as a stray argument ("unknown command").
func TestABooleanFlagTakesItsValueAfterASpace(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	for _, args := range [][]string{
		{"bootstrap", "--dry-run", "--intercept", "false"},
		{"bootstrap", "--intercept", "no", "--dry-run", "true"},
		{"bootstrap", "--dry-run", "--intercept=off"},
	} {
		code, stdout, stderr := run(t, args, demoEnv(dir))
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if !strings.Contains(stdout, "interception disabled") {
			t.Errorf("%v: the plan still intercepts:\n%s", args, stdout)
		}
	}
}

// TestHelpShowsValueKindsNotQuotedText: pflag takes the first `quoted`
// text of a usage string as the value's name, so --help used to show
// "--kubeconfig meshexp workload rbac --kubeconfig-out".
func TestHelpShowsValueKindsNotQuotedText(t *testing.T) {
	for _, cmd := range []string{"bootstrap", "dns", "workload", "intercept"} {
		code, stdout, stderr := run(t, []string{cmd, "--help"}, nil)
		if code != 0 {
			t.Fatalf("%s --help: exit %d: %s", cmd, code, stderr)
		}
		for _, line := range strings.Split(stdout, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && strings.HasPrefix(f[0], "--") && strings.HasPrefix(f[1], "meshexp") {
				t.Errorf("%s --help shows quoted text as a value name: %s", cmd, line)
			}
		}
		if cmd == "bootstrap" && !strings.Contains(stdout, "--kubeconfig string") {
			t.Errorf("bootstrap --help lacks %q:\n%s", "--kubeconfig string", stdout)
		}
	}
}

// TestAClusterDomainWithATrailingDotIsTheSameDomain: the proxy exited 64
// on "cluster.local." and meshexp named nothing.
func TestAClusterDomainWithATrailingDotIsTheSameDomain(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	env := demoEnv(dir)
	env["MESHEXP_CLUSTER_DOMAIN"] = "cluster.local."
	code, stdout, stderr := run(t, []string{"bootstrap", "--dry-run"}, env)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	_, want, _ := run(t, []string{"bootstrap", "--dry-run"}, demoEnv(dir))
	if stdout != want || strings.Contains(stdout, "cluster.local..") {
		t.Errorf("the plan for cluster.local. differs from cluster.local's:\n%s", stdout)
	}
}

// TestRuntimeSPIREErrorsNameTheSetting: an error identity raises while
// running names --spire-socket, not the Go field SocketPath.
func TestRuntimeSPIREErrorsNameTheSetting(t *testing.T) {
	inner := &spire.OptionError{Option: "SocketPath", Value: "/run/x/api.sock", Err: errors.New("process 42 is already serving this socket")}
	err := inSettingNames(fmt.Errorf("bootstrap: identity: %w", inner))
	if got := err.Error(); strings.Contains(got, "SocketPath") || !strings.Contains(got, `--spire-socket "/run/x/api.sock": process 42`) {
		t.Errorf("got %q", got)
	}
	var oe *spire.OptionError
	if !errors.As(err, &oe) {
		t.Error("the error chain was lost")
	}
}

// TestCertsRefuseAnEncryptedKeyAndAFIFOInWords: the key used to come back
// as an ASN.1 parse error; a FIFO blocked forever.
func TestCertsRefuseAnEncryptedKeyAndAFIFOInWords(t *testing.T) {
	goodDir, _ := trusttest.AnchorDir(t)
	f := newBadInputFixtures(t, goodDir)
	code, _, stderr := run(t, []string{"certs", "intermediate", "--ca-dir", f.encryptedKeyDir, "--out-dir", t.TempDir()}, nil)
	if code != ExitUsage || !strings.Contains(stderr, "ca.key is encrypted; meshexp needs an unencrypted") || strings.Contains(stderr, "asn1") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	code, _, stderr = run(t, []string{"certs", "inspect", "--key", f.fifo, filepath.Join(goodDir, "ca.crt")}, nil)
	if code != ExitUsage || !strings.Contains(stderr, "is a named pipe (FIFO), not a regular file") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// TestEveryProblemIsReportedAtOnceWithoutDryRun: SPIRE's binaries were
// checked only after the settings passed, one round later, and named the
// Go field BinDir.
func TestEveryProblemIsReportedAtOnceWithoutDryRun(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	env := demoEnv(dir)
	env["MESHEXP_PROXY_BIN"] = "/nonexistent/linkerd2-proxy"
	code, _, stderr := run(t, []string{"bootstrap", "--spire-bin-dir", "/nonexistent/spire"}, env)
	if code != ExitUsage {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"MESHEXP_PROXY_BIN: /nonexistent/linkerd2-proxy does not exist", "--spire-bin-dir: /nonexistent/spire: no usable spire-server in it"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "BinDir") {
		t.Errorf("stderr names a Go field:\n%s", stderr)
	}
}
