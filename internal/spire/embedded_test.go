package spire

import (
	"crypto/x509"
	"os"
	"testing"
)

func TestEmbeddedModeWithTheRootAnchorIssuesAVerifiedSVID(t *testing.T) {
	bin := requireSPIRE(t)
	opts, _ := embeddedOptions(t, bin)
	logger, _ := testLogger(t)
	id := startIdentity(t, opts, logger)

	svid := id.SVID()
	if got, want := svid.ID.String(), "spiffe://root.linkerd.cluster.local/vm-1"; got != want {
		t.Errorf("SVID ID = %s, want %s", got, want)
	}
	assertChainsTo(t, svid.Certificates, opts.TrustAnchorPath)
	if id.SocketPath() != opts.SocketPath {
		t.Errorf("SocketPath() = %s, want %s", id.SocketPath(), opts.SocketPath)
	}
}

// assertChainsTo verifies the chain with crypto/x509 alone, independently
// of the go-spiffe check Start made, against the anchor file.
func assertChainsTo(t *testing.T, chain []*x509.Certificate, anchorPath string) {
	t.Helper()
	data, err := os.ReadFile(anchorPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		t.Fatalf("no certificate in %s", anchorPath)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("SVID does not verify against %s: %v", anchorPath, err)
	}
	if len(chain[0].URIs) != 1 {
		t.Errorf("SVID has %d URI SANs, want 1", len(chain[0].URIs))
	}
}
