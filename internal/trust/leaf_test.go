package trust

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestALeafIsAnSVIDThatAlsoVerifiesByItsDNSName(t *testing.T) {
	root, err := NewRoot(DefaultTrustDomain, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id := "spiffe://" + DefaultTrustDomain + "/ns/meshexp-system/sa/meshexp-controller"
	leaf, err := NewLeaf(root, id, []string{"meshexp-controller.meshexp-system.svc"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	svid, err := x509svid.Parse(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatalf("not an X.509-SVID: %v", err)
	}
	td := spiffeid.RequireTrustDomainFromString(DefaultTrustDomain)
	got, _, err := x509svid.Verify(svid.Certificates, x509bundle.FromX509Authorities(td, []*x509.Certificate{root.Cert}))
	if err != nil || got.String() != id {
		t.Fatalf("verify as SVID: id %s, err %v", got, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root.Cert)
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "meshexp-controller.meshexp-system.svc"}); err != nil {
		t.Fatalf("verify by DNS name: %v", err)
	}
	if _, err := NewLeaf(root, "https://example.org/x", nil, time.Hour); err == nil {
		t.Fatal("a non-SPIFFE URI was accepted")
	}
}
