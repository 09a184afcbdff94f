//go:build linux

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestStatusAndMetricsOfARunningBootstrap starts bootstrap and reads its
// admin endpoint: `meshexp status` (text and JSON), /metrics, /live,
// /ready, and `meshexp check` against the running host.
func TestStatusAndMetricsOfARunningBootstrap(t *testing.T) {
	h := newHost(t)
	h.start()
	h.waitFor("the admin endpoint's /ready", 60*time.Second, func() error {
		_, err := h.get("http://127.0.0.1:4192/ready")
		return err
	})
	run := h.meshexp
	out, err := run("status")
	if err != nil {
		t.Fatalf("meshexp status: %v\n%s", err, out)
	}
	t.Logf("meshexp status:\n%s", out)
	for _, want := range []string{"meshexp ready", "identity", "proxy      up, pid", "workload   up, pid", "spiffe://root.linkerd.cluster.local/web", "SVID expires", "IPv4: ", "off (--register false)"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	if js, err := run("status", "--output", "json"); err != nil || !strings.Contains(js, `"children"`) {
		t.Errorf("status --output json: %v\n%s", err, js)
	}
	metrics, err := h.get("http://127.0.0.1:4192/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`meshexp_child_up{child="proxy"} 1`, `meshexp_phase_duration_seconds{phase="identity"}`, "meshexp_svid_expiry_timestamp_seconds", `meshexp_intercept_rules{family="IPv4"}`, "meshexp_ready 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	check, err := run("check")
	t.Logf("meshexp check:\n%s", check)
	if !strings.Contains(check, "✓ the proxy's and DNS ports are free or meshexp's own") || !strings.Contains(check, "✓ the proxy gets a valid SVID") || !strings.Contains(check, "only the proxy can reach the Workload API socket") {
		t.Errorf("meshexp check on the running host (%v):\n%s", err, check)
	}
	if path := os.Getenv("MESHEXP_STATUS_OUT"); path != "" {
		_ = os.WriteFile(path, []byte(out+"\n---\n"+check), 0o644)
	}
	h.signal(15)
	h.wait(60 * time.Second)
}

// meshexp runs another meshexp command in the host's namespace with its
// environment (status, check) and returns its output.
func (h *host) meshexp(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := h.pair.NS.Command(ctx, bins.meshexp, args...)
	cmd.Env = h.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}
