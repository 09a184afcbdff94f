//go:build linux

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/trust"
)

// TestATrustAnchorExpiringWhileRunningIsAnnouncedAndSaidWhenItLapses runs
// bootstrap with a root that expires a minute and a half after it starts:
// meshexp warns at once (under a day left) and says when identity can no
// longer be renewed, instead of staying silent while SPIRE fails.
func TestATrustAnchorExpiringWhileRunningIsAnnouncedAndSaidWhenItLapses(t *testing.T) {
	t.Parallel() // mostly waiting for certificates to age: see doc.go
	h := newHost(t, "MESHEXP_SPIRE_SVID_TTL=30s", "MESHEXP_SPIRE_CA_TTL=3m")
	certs := filepath.Join(h.base, "certs")
	root, err := trust.NewRoot(trust.DefaultTrustDomain, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFiles(filepath.Join(certs, "ca.crt"), filepath.Join(certs, "ca.key")); err != nil {
		t.Fatal(err)
	}
	h.start()
	logged := func(s string) func() error {
		return func() error {
			if !strings.Contains(h.logs.String(), s) {
				return fmt.Errorf("meshexp has not logged %q", s)
			}
			return nil
		}
	}
	h.waitFor("the expiry warning", 30*time.Second, logged("trust anchor expires soon"))
	h.waitFor("the expiry", 3*time.Minute, logged("trust anchor EXPIRED: identity can no longer be renewed"))
	h.signal(syscall.SIGTERM)
	if code := h.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	h.assertClean()
}
