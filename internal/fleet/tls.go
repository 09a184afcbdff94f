package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ClientTLS is the host's side of the mutual TLS: it presents the SVID from
// svids and verifies the controller either by SPIFFE ID (controllerIdentity
// starting with spiffe://, the default; the certificate must chain to the
// bundle of that ID's trust domain) or by TLS name (a DNS name in the
// certificate, chained to the same trust anchors).
func ClientTLS(svids x509svid.Source, bundles x509bundle.Source, trustDomain spiffeid.TrustDomain, controllerIdentity string) (*tls.Config, error) {
	if strings.HasPrefix(controllerIdentity, "spiffe://") {
		id, err := spiffeid.FromString(controllerIdentity)
		if err != nil {
			return nil, fmt.Errorf("controller identity %q: %w", controllerIdentity, err)
		}
		return tlsconfig.MTLSClientConfig(svids, bundles, tlsconfig.AdaptMatcher(func(got spiffeid.ID) error {
			if got != id {
				return fmt.Errorf("the controller presented identity %s, not the expected %s (fix the controller identity setting or the controller's certificate)", got, id)
			}
			return nil
		})), nil
	}
	if controllerIdentity == "" {
		return nil, errors.New("controller identity: empty; give the controller's SPIFFE ID or TLS name")
	}
	b, err := bundles.GetX509BundleForTrustDomain(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("trust anchors for %s: %w", trustDomain, err)
	}
	roots := x509.NewCertPool()
	for _, c := range b.X509Authorities() {
		roots.AddCert(c)
	}
	cfg := tlsconfig.MTLSWebClientConfig(svids, roots)
	cfg.ServerName = controllerIdentity
	return cfg, nil
}

// ServerTLS is the controller's side: it presents its certificate and asks
// for a client certificate without judging it in the handshake, so that the
// handler can refuse with an error naming what is wrong (another trust
// domain, an expired SVID) instead of a bare TLS alert. The handshake still
// proves the client holds the certificate's key; VerifyPeer checks the
// chain.
func ServerTLS(svid x509svid.Source) *tls.Config {
	cfg := tlsconfig.TLSServerConfig(svid)
	cfg.ClientAuth = tls.RequireAnyClientCert
	cfg.NextProtos = []string{"h2"}
	return cfg
}

// VerifyPeer checks a client's certificate chain (leaf first) against the
// mesh's trust anchors and returns its SPIFFE ID. Its errors are written
// for the host's operator.
func VerifyPeer(chain []*x509.Certificate, bundle *x509bundle.Bundle) (spiffeid.ID, error) {
	if len(chain) == 0 {
		return spiffeid.ID{}, errors.New("no client certificate: present the host's X.509-SVID")
	}
	id, err := x509svid.IDFromCert(chain[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("the client certificate is not an X.509-SVID (%v); present the SVID from the host's SPIRE agent", err)
	}
	if id.TrustDomain() != bundle.TrustDomain() {
		return spiffeid.ID{}, fmt.Errorf("SVID %s is from trust domain %q, but the controller serves the mesh's trust domain %q; join the host to the mesh's SPIRE server",
			id, id.TrustDomain().Name(), bundle.TrustDomain().Name())
	}
	if _, _, err := x509svid.Verify(chain, bundle); err != nil {
		return spiffeid.ID{}, fmt.Errorf("SVID %s does not chain to the mesh's trust anchor (%v); the host's SPIRE server must sign with the mesh's trust anchor or an intermediate below it", id, err)
	}
	return id, nil
}
