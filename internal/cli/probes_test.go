package cli

import (
	"strings"
	"testing"
)

func TestABadWorkloadProbeIsInvalidInputNamingTheSetting(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := run(t, []string{"certs", "root", "--out-dir", dir}, nil); code != 0 {
		t.Fatalf("certs root: exit %d: %s", code, stderr)
	}
	env := demoEnv(dir)
	env["MESHEXP_PROBES"] = "http://127.0.0.1:8000/healthz,exec:healthy"
	code, _, stderr := run(t, []string{"bootstrap", "--dry-run", "--register", "--workload-ip", "10.0.0.5"}, env)
	if code != 2 || !strings.Contains(stderr, "MESHEXP_PROBES") || !strings.Contains(stderr, `probe "exec:healthy": exec needs an absolute command path`) {
		t.Errorf("exit %d:\n%s", code, stderr)
	}
	env["MESHEXP_PROBES"] = "http://127.0.0.1:8000/healthz,tcp://127.0.0.1:8000"
	if code, _, stderr := run(t, []string{"bootstrap", "--dry-run", "--register", "--workload-ip", "10.0.0.5", "--probe-failure-threshold", "0"}, env); code != 2 || !strings.Contains(stderr, "--probe-failure-threshold") {
		t.Errorf("threshold 0: exit %d:\n%s", code, stderr)
	}
	if code, _, stderr := run(t, []string{"bootstrap", "--dry-run", "--register", "--workload-ip", "10.0.0.5"}, env); code != 0 {
		t.Errorf("good probes: exit %d:\n%s", code, stderr)
	}
}
