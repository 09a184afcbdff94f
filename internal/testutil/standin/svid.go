package standin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"

	"github.com/meshexp/meshexp/internal/trust"
)

// CA is a trust anchor and the CA below it that signs SVIDs, shaped like
// SPIRE under Linkerd's trust anchor: root → SPIRE's X.509 CA → SVID.
type CA struct {
	Root   *trust.KeyPair
	Signer *trust.KeyPair
}

// NewCA makes a fresh root and SVID-signing intermediate.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	root, err := trust.NewRoot(trust.DefaultTrustDomain, time.Hour)
	if err != nil {
		tb.Fatalf("standin: root CA: %v", err)
	}
	signer, err := trust.NewIntermediate(root, "spire-ca", time.Hour)
	if err != nil {
		tb.Fatalf("standin: intermediate CA: %v", err)
	}
	return &CA{Root: root, Signer: signer}
}

// RootPEM is the trust anchor, for LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS.
func (ca *CA) RootPEM() []byte { return ca.Root.CertPEM }

// MintSVID signs an X.509 SVID for id valid for ttl, as the Workload API
// returns it: leaf then intermediate in the chain, the root as the bundle.
func (ca *CA) MintSVID(tb testing.TB, id string, ttl time.Duration) *workload.X509SVID {
	tb.Helper()
	u, err := url.Parse(id)
	if err != nil {
		tb.Fatalf("standin: SPIFFE ID %q: %v", id, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("standin: SVID key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		tb.Fatalf("standin: serial: %v", err)
	}
	now := time.Now()
	// What SPIRE puts in an X509-SVID (SPIFFE X509-SVID §4): one URI SAN,
	// not a CA, digital signature, TLS server and client auth.
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Country: []string{"US"}, Organization: []string{"SPIRE"}},
		URIs:                  []*url.URL{u},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Signer.Cert, key.Public(), ca.Signer.Key)
	if err != nil {
		tb.Fatalf("standin: signing SVID: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("standin: encoding SVID key: %v", err)
	}
	chain := append(append([]byte{}, der...), ca.Signer.Cert.Raw...)
	return &workload.X509SVID{
		SpiffeId:    id,
		X509Svid:    chain,
		X509SvidKey: keyDER,
		Bundle:      ca.Root.Cert.Raw,
	}
}
