package trust

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// NewLeaf creates an end-entity certificate signed by parent that is a
// valid X.509-SVID (SPIFFE X509-SVID §4: exactly one URI SAN, not a CA,
// digitalSignature) and also carries dnsNames, so that a client may verify
// it either by SPIFFE ID or by TLS name. Usable for TLS server and client
// authentication: meshexp's controller serves hosts with it and presents it
// to the other replicas.
func NewLeaf(parent *KeyPair, spiffeID string, dnsNames []string, ttl time.Duration) (*KeyPair, error) {
	if parent == nil {
		return nil, errors.New("trust: a leaf certificate needs a signing CA")
	}
	u, err := url.Parse(spiffeID)
	if err != nil || u.Scheme != "spiffe" || u.Host == "" || u.Path == "" || strings.ContainsAny(u.Path, "?#") {
		return nil, fmt.Errorf("trust: SPIFFE ID %q: want spiffe://<trust domain>/<path>", spiffeID)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: firstOr(dnsNames, u.Path)},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(ttl),
		URIs:                  []*url.URL{u},
		DNSNames:              dnsNames,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	kp, err := create(tmpl, parent)
	if err != nil {
		return nil, err
	}
	// PKCS#8, which SPIFFE libraries (go-spiffe's x509svid) require.
	der, err := x509.MarshalPKCS8PrivateKey(kp.Key)
	if err != nil {
		return nil, fmt.Errorf("trust: encoding key: %w", err)
	}
	kp.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return kp, nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
