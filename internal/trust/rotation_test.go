package trust_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/trust"
)

// rotationFiles writes ca.crt holding the old and the new root (in that
// order, as an operator appends the new one) and returns both key pairs.
func rotationFiles(t *testing.T, dir string) (crt string, old, next *trust.KeyPair) {
	t.Helper()
	var err error
	if old, err = trust.NewRoot(trust.DefaultTrustDomain, time.Hour); err != nil {
		t.Fatal(err)
	}
	if next, err = trust.NewRoot(trust.DefaultTrustDomain, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	crt = filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(crt, append(append([]byte{}, old.CertPEM...), next.CertPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	return crt, old, next
}

func TestATrustBundleOfTwoRootsPassesWithTheKeyOfEither(t *testing.T) {
	dir := t.TempDir()
	crt, old, next := rotationFiles(t, dir)
	for _, tc := range []struct {
		name string
		kp   *trust.KeyPair
	}{{"the old root's key (listed first)", old}, {"the new root's key (listed second)", next}} {
		t.Run(tc.name, func(t *testing.T) {
			key := filepath.Join(t.TempDir(), "ca.key")
			if err := os.WriteFile(key, tc.kp.KeyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			certs, findings := trust.CheckAnchor(crt, key, trust.CheckOptions{TrustDomain: trust.DefaultTrustDomain})
			if len(findings) != 0 {
				t.Errorf("findings: %+v", findings)
			}
			if len(certs) != 2 {
				t.Errorf("parsed %d certificates, want both roots", len(certs))
			}
			kp, err := trust.LoadKeyPair(crt, key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(kp.Cert.Raw, tc.kp.Cert.Raw) {
				t.Error("LoadKeyPair paired the key with the other root")
			}
			if got, _ := trust.ParseCertificates(kp.CertPEM); len(got) != 1 {
				t.Errorf("the key pair's PEM holds %d certificates, want the signing root alone", len(got))
			}
		})
	}
}

func TestAKeyOfNoRootInTheBundleIsNamed(t *testing.T) {
	dir := t.TempDir()
	crt, _, _ := rotationFiles(t, dir)
	stranger, err := trust.NewRoot(trust.DefaultTrustDomain, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "ca.key")
	if err := os.WriteFile(key, stranger.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	_, findings := trust.CheckAnchor(crt, key, trust.CheckOptions{})
	if len(findings) != 1 || !strings.Contains(findings[0].Message, "does not match any of the 2 roots") {
		t.Errorf("findings = %+v", findings)
	}
	if _, err := trust.LoadKeyPair(crt, key); err == nil || !strings.Contains(err.Error(), "any of the 2 certificates") {
		t.Errorf("LoadKeyPair: %v", err)
	}
}

func TestAChainIsPairedWithItsFirstCertificateOnly(t *testing.T) {
	dir := t.TempDir()
	root, err := trust.NewRoot(trust.DefaultTrustDomain, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := trust.NewIntermediate(root, "spire", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, "chain.crt"), filepath.Join(dir, "root.key")
	if err := os.WriteFile(crt, append(append([]byte{}, inter.CertPEM...), root.CertPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, root.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	// The root's key must not pass for the intermediate's: SPIRE signs
	// with the first certificate of a chain.
	if _, err := trust.LoadKeyPair(crt, key); err == nil {
		t.Error("the root's key was accepted for a chain that starts with the intermediate")
	}
}
