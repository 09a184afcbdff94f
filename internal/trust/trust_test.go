package trust_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/trust"
	"github.com/meshexp/meshexp/internal/trust/trusttest"
)

func TestCreatedChainVerifies(t *testing.T) {
	root, err := trust.NewRoot(trust.DefaultTrustDomain, trust.DefaultRootTTL)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := trust.NewIssuer(root, trust.DefaultIssuerCN, trust.DefaultIssuerTTL)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := trust.NewIntermediate(root, "spire.example", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	for _, kp := range []*trust.KeyPair{issuer, inter} {
		if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s does not verify against the root: %v", kp.Cert.Subject.CommonName, err)
		}
	}
	if !issuer.Cert.MaxPathLenZero {
		t.Error("issuer must be pathlen 0, like step-cli's intermediate-ca profile")
	}
	if inter.Cert.MaxPathLen != 1 {
		t.Errorf("intermediate pathlen = %d, want 1 so SPIRE's CA fits below it", inter.Cert.MaxPathLen)
	}
	if got := trust.KeyAlgorithm(root.Cert.PublicKey); got != "ECDSA P-256" {
		t.Errorf("root key = %s", got)
	}
}

func TestWrittenFilesLoadAndKeyIsPrivate(t *testing.T) {
	dir := t.TempDir()
	root, err := trust.NewRoot(trust.DefaultTrustDomain, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := root.WriteFiles(crt, key); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode = %#o, want 0600", fi.Mode().Perm())
	}
	if _, err := trust.LoadKeyPair(crt, key); err != nil {
		t.Fatal(err)
	}
	if _, findings := trust.CheckAnchor(crt, key, trust.CheckOptions{TrustDomain: trust.DefaultTrustDomain}); len(findings) != 0 {
		t.Errorf("a fresh root has findings: %+v", findings)
	}
}

func TestCheckAnchorNamesEachProblem(t *testing.T) {
	good, goodKey := trusttest.Make(t, trusttest.Spec{})
	_, otherKey := trusttest.Make(t, trusttest.Spec{})
	rsaCert, rsaKey := trusttest.Make(t, trusttest.Spec{Key: "rsa"})
	p384, p384Key := trusttest.Make(t, trusttest.Spec{Key: "p384"})
	leaf, leafKey := trusttest.Make(t, trusttest.Spec{NotCA: true})
	expired, expiredKey := trusttest.Make(t, trusttest.Spec{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	future, futureKey := trusttest.Make(t, trusttest.Spec{NotBefore: time.Now().Add(24 * time.Hour)})
	otherCN, otherCNKey := trusttest.Make(t, trusttest.Spec{CN: "example.org"})

	tests := []struct {
		name      string
		cert, key []byte
		keyMode   os.FileMode
		want      string
		severity  trust.Severity
	}{
		{"an RSA anchor is refused with the algorithm named", rsaCert, rsaKey, 0o600, "RSA 2048-bit key; Linkerd requires ECDSA P-256", trust.Error},
		{"a P-384 anchor is refused with the curve named", p384, p384Key, 0o600, "ECDSA P-384", trust.Error},
		{"a leaf certificate is not a trust anchor", leaf, leafKey, 0o600, "not a CA", trust.Error},
		{"an expired anchor is refused", expired, expiredKey, 0o600, "expired on", trust.Error},
		{"a not-yet-valid anchor is refused", future, futureKey, 0o600, "not valid until", trust.Error},
		{"a key from another pair is refused", good, otherKey, 0o600, "does not match", trust.Error},
		{"garbage instead of a certificate is refused", []byte("hello"), goodKey, 0o600, "not a valid PEM certificate", trust.Error},
		{"garbage instead of a key is refused", good, []byte("-----BEGIN NOTHING-----\n"), 0o600, "not a valid private key", trust.Error},
		{"a world-readable key is a warning", good, goodKey, 0o644, "readable by group or others", trust.Warning},
		{"a subject off the trust domain is a warning", otherCN, otherCNKey, 0o600, "does not match the trust domain", trust.Warning},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := trusttest.WriteDir(t, tc.cert, tc.key)
			key := filepath.Join(dir, "ca.key")
			if err := os.Chmod(key, tc.keyMode); err != nil {
				t.Fatal(err)
			}
			_, findings := trust.CheckAnchor(filepath.Join(dir, "ca.crt"), key, trust.CheckOptions{TrustDomain: trust.DefaultTrustDomain})
			for _, f := range findings {
				if strings.Contains(f.Message, tc.want) {
					if f.Severity != tc.severity {
						t.Errorf("finding %q has severity %s, want %s", f.Message, f.Severity, tc.severity)
					}
					if f.Fix == "" {
						t.Errorf("finding %q has no fix", f.Message)
					}
					return
				}
			}
			t.Errorf("no finding mentions %q; got %+v", tc.want, findings)
		})
	}
}

func TestCheckAnchorReportsMissingAndDirectoryPaths(t *testing.T) {
	dir := t.TempDir()
	_, findings := trust.CheckAnchor(filepath.Join(dir, "nope.crt"), dir, trust.CheckOptions{})
	var msgs []string
	for _, f := range findings {
		msgs = append(msgs, f.File+": "+f.Message)
	}
	joined := strings.Join(msgs, "\n")
	for _, want := range []string{"nope.crt: certificate file does not exist", dir + ": private key path is a directory"} {
		if !strings.Contains(joined, want) {
			t.Errorf("findings lack %q:\n%s", want, joined)
		}
	}
}
