// Package trusttest makes certificate fixtures for tests, good and bad, so no
// test depends on a checked-in key.
package trusttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/trust"
)

// Spec describes a self-signed certificate to make. The zero value is a
// valid Linkerd trust anchor.
type Spec struct {
	CN        string // default trust.DefaultTrustDomain
	Key       string // "p256" (default), "p384", "rsa"
	NotCA     bool
	NotBefore time.Time // default an hour ago
	NotAfter  time.Time // default in a year
}

// Make returns a self-signed certificate and key as PEM.
func Make(t testing.TB, s Spec) (certPEM, keyPEM []byte) {
	t.Helper()
	if s.CN == "" {
		s.CN = trust.DefaultTrustDomain
	}
	if s.NotBefore.IsZero() {
		s.NotBefore = time.Now().Add(-time.Hour)
	}
	if s.NotAfter.IsZero() {
		s.NotAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	var key crypto.Signer
	var err error
	switch s.Key {
	case "", "p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("trusttest: unknown key kind %q", s.Key)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: s.CN},
		NotBefore:             s.NotBefore,
		NotAfter:              s.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  !s.NotCA,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// AnchorDir writes a valid trust anchor as ca.crt/ca.key into a new
// temporary directory and returns the directory and the key pair.
func AnchorDir(t testing.TB) (string, *trust.KeyPair) {
	t.Helper()
	kp, err := trust.NewRoot(trust.DefaultTrustDomain, time.Hour*24*365)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := kp.WriteFiles(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	return dir, kp
}

// WriteDir writes the given PEM blobs as ca.crt and ca.key (nil: not
// written) into a new temporary directory.
func WriteDir(t testing.TB, certPEM, keyPEM []byte) string {
	t.Helper()
	dir := t.TempDir()
	if certPEM != nil {
		if err := os.WriteFile(filepath.Join(dir, "ca.crt"), certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if keyPEM != nil {
		if err := os.WriteFile(filepath.Join(dir, "ca.key"), keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
