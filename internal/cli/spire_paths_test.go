package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/trust/trusttest"
)

// fakeSPIREBin is a directory with spire-server and spire-agent that only
// fail: validation looks them up, nothing may run them.
func fakeSPIREBin(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, b := range []string{"spire-server", "spire-agent"} {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

func TestWhatIsAtTheSocketPathIsRefusedWithExitTwoAndLeftAlone(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	bin := fakeSPIREBin(t)
	for _, tc := range []struct {
		name string
		put  func(path string) error
	}{
		{"a regular file", func(p string) error { return os.WriteFile(p, []byte("mine"), 0o644) }},
		{"an empty directory", func(p string) error { return os.Mkdir(p, 0o755) }},
	} {
		for _, cmd := range [][]string{{"bootstrap", "--dry-run"}, {"bootstrap"}, {"identity"}} {
			t.Run(tc.name+" with "+strings.Join(cmd, " "), func(t *testing.T) {
				base := t.TempDir()
				// The proxy's uid must reach the socket's directory, or
				// that is the problem reported (t.TempDir and its parent
				// are 0700).
				for _, d := range []string{filepath.Dir(base), base} {
					if err := os.Chmod(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				sock := filepath.Join(base, "api.sock")
				if err := tc.put(sock); err != nil {
					t.Fatal(err)
				}
				before, _ := os.Lstat(sock)
				args := append(append([]string{}, cmd...), "--spire-bin-dir", bin, "--spire-data-dir", filepath.Join(base, "spire"), "--spire-socket", sock)
				if cmd[0] == "bootstrap" {
					args = append(args, "--proxy-bin", "/bin/true", "--workload", "/bin/true")
				}
				code, _, stderr := run(t, args, demoEnv(dir))
				if code != ExitUsage {
					t.Fatalf("exit %d, want %d: %s", code, ExitUsage, stderr)
				}
				if !strings.Contains(stderr, "--spire-socket") || !strings.Contains(stderr, "is not a socket") {
					t.Errorf("the message does not name --spire-socket and what is there: %s", stderr)
				}
				after, err := os.Lstat(sock)
				if err != nil || after.Mode() != before.Mode() {
					t.Errorf("%s changed: %v", sock, err)
				}
				if _, err := os.Stat(filepath.Join(base, "spire")); err == nil {
					t.Error("the SPIRE data dir was created although the input was refused")
				}
			})
		}
	}
}

func TestATrustAnchorFileWithTwoRootsPassesValidation(t *testing.T) {
	oldCert, _ := trusttest.Make(t, trusttest.Spec{})
	newCert, newKey := trusttest.Make(t, trusttest.Spec{})
	// The key belongs to the second root: the new one signs.
	dir := trusttest.WriteDir(t, append(append([]byte{}, oldCert...), newCert...), newKey)
	code, stdout, stderr := run(t, []string{"bootstrap", "--dry-run", "--spire-bin-dir", fakeSPIREBin(t)}, demoEnv(dir))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS=<2 PEM certificate(s)") {
		t.Errorf("the plan does not give the proxy both roots:\n%s", stdout)
	}
	// SPIRE signs with the root ca.key belongs to and trusts the whole file.
	for _, want := range []string{"cert_file_path = \"/var/lib/meshexp/spire/server/upstream-ca.crt\"", "bundle_file_path = \"" + dir + "/ca.crt\""} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the plan's server.conf lacks %s:\n%s", want, stdout)
		}
	}
}
