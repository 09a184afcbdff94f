package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/trust/trusttest"
)

func TestIdentityDryRunPrintsTheAgentConfigWithoutTheToken(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	env := demoEnv(dir)
	env["MESHEXP_SPIRE_JOIN_TOKEN"] = "0f1e2d3c-secret"
	code, stdout, stderr := run(t, []string{"identity", "--dry-run", "--spire-mode", "external", "--spire-server-address", "localhost"}, env)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `server_address = "localhost"`) || !strings.Contains(stdout, "join_token_file = ") {
		t.Errorf("unexpected configs:\n%s", stdout)
	}
	if strings.Contains(stdout+stderr, "0f1e2d3c-secret") {
		t.Error("the join token was printed")
	}
}

func TestIdentityDryRunSignsWithTheTrustAnchorInEmbeddedMode(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	code, stdout, stderr := run(t, []string{"identity", "--dry-run"}, demoEnv(dir))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, `key_file_path = "`+filepath.Join(dir, "ca.key")+`"`) {
		t.Errorf("the embedded server does not sign with %s/ca.key:\n%s", dir, stdout)
	}
}

func TestIdentityRefusesASocketInsideTheDataDirNamingTheFlag(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	bin := t.TempDir()
	for _, b := range []string{"spire-server", "spire-agent"} {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(t.TempDir(), "spire")
	code, _, stderr := run(t, []string{"identity", "--spire-bin-dir", bin, "--spire-data-dir", data, "--spire-socket", filepath.Join(data, "agent", "api.sock")}, demoEnv(dir))
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d: %s", code, ExitUsage, stderr)
	}
	if !strings.Contains(stderr, "--spire-socket") {
		t.Errorf("the message does not name --spire-socket: %s", stderr)
	}
	if _, err := os.Stat(data); err == nil {
		t.Errorf("%s was created although the input was refused", data)
	}
}

func TestFetchSVIDWithoutArgumentsIsAUsageError(t *testing.T) {
	if code, _, _ := run(t, []string{"identity", "fetch-svid"}, nil); code != ExitUsage {
		t.Errorf("exit %d, want %d", code, ExitUsage)
	}
}
