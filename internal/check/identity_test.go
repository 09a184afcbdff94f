package check

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/trust"
	"github.com/meshexp/meshexp/internal/trust/trusttest"
)

func outcome(t *testing.T, f func(context.Context) (string, error)) (Status, string) {
	t.Helper()
	r := runOne(context.Background(), Check{Run: f})
	t.Logf("%s %s %s", r.Status, r.Detail, r.Error)
	return r.Status, r.Detail + " " + r.Error
}

func TestTheTrustAnchorsExpiryWarnsUnder30DaysAndFailsUnderOne(t *testing.T) {
	for _, tc := range []struct {
		name string
		left time.Duration
		want Status
	}{
		{"a year left passes", 365 * 24 * time.Hour, OK},
		{"ten days left warns", 10 * 24 * time.Hour, Warn},
		{"twelve hours left fails", 12 * time.Hour, Fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crt, key := trusttest.Make(t, trusttest.Spec{NotAfter: time.Now().Add(tc.left)})
			dir := trusttest.WriteDir(t, crt, key)
			if st, msg := outcome(t, TrustAnchor(filepath.Join(dir, "ca.crt"), trust.DefaultTrustDomain, time.Now)); st != tc.want {
				t.Errorf("%s, want %s: %s", st, tc.want, msg)
			}
		})
	}
	t.Run("a certificate that is not a CA fails", func(t *testing.T) {
		crt, key := trusttest.Make(t, trusttest.Spec{NotCA: true})
		dir := trusttest.WriteDir(t, crt, key)
		if st, _ := outcome(t, TrustAnchor(filepath.Join(dir, "ca.crt"), trust.DefaultTrustDomain, time.Now)); st != Fail {
			t.Errorf("%s, want error", st)
		}
	})
	t.Run("a missing file fails", func(t *testing.T) {
		if st, _ := outcome(t, TrustAnchor(filepath.Join(t.TempDir(), "ca.crt"), trust.DefaultTrustDomain, time.Now)); st != Fail {
			t.Errorf("%s, want error", st)
		}
	})
}

// controlPlaneCert is a leaf for name issued by an issuer under root, as
// Linkerd's identity issues the destination controller's certificate.
func controlPlaneCert(t *testing.T, root *trust.KeyPair, name string) tls.Certificate {
	t.Helper()
	issuer, err := trust.NewIssuer(root, "identity.linkerd.cluster.local", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.Cert, key.Public(), issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, issuer.Cert.Raw}, PrivateKey: key}
}

// tlsServer serves TLS with cert on loopback and returns its address.
func tlsServer(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	return l.Addr().String()
}

func TestTheControlPlanesCertificateMustChainToTheAnchorAndNameItsIdentity(t *testing.T) {
	const id = "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
	dir, root := trusttest.AnchorDir(t)
	anchor := filepath.Join(dir, "ca.crt")
	other, err := trust.NewRoot(trust.DefaultTrustDomain, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a certificate under the anchor naming the identity passes", func(t *testing.T) {
		addr := tlsServer(t, controlPlaneCert(t, root, id))
		if st, msg := outcome(t, TLSIdentity(addr, id, anchor, 0, time.Now)); st != OK {
			t.Errorf("%s: %s", st, msg)
		}
	})
	t.Run("a certificate under another root fails", func(t *testing.T) {
		addr := tlsServer(t, controlPlaneCert(t, other, id))
		st, msg := outcome(t, TLSIdentity(addr, id, anchor, 0, time.Now))
		if st != Fail || !strings.Contains(msg, "does not chain to the trust anchor") {
			t.Errorf("%s: %s", st, msg)
		}
	})
	t.Run("a certificate naming another identity fails", func(t *testing.T) {
		addr := tlsServer(t, controlPlaneCert(t, root, "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local"))
		st, msg := outcome(t, TLSIdentity(addr, id, anchor, 0, time.Now))
		if st != Fail || !strings.Contains(msg, "does not name "+id) {
			t.Errorf("%s: %s", st, msg)
		}
	})
	t.Run("a plain TCP server fails the handshake", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err == nil {
				_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
				c.Close()
			}
		}()
		if st, _ := outcome(t, TLSIdentity(l.Addr().String(), id, anchor, 0, time.Now)); st != Fail {
			t.Errorf("%s, want error", st)
		}
	})
}

func TestClockSkewAgainstAServersDateHeader(t *testing.T) {
	skewed := func(d time.Duration) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Date", time.Now().Add(d).UTC().Format(http.TimeFormat))
		}))
		t.Cleanup(s.Close)
		return s.URL
	}
	for _, tc := range []struct {
		name string
		skew time.Duration
		want Status
	}{
		{"ten minutes behind fails", -10 * time.Minute, Fail},
		{"ten seconds ahead warns", 10 * time.Second, Warn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, msg := outcome(t, ClockSkew(http.DefaultClient, skewed(tc.skew))); st != tc.want {
				t.Errorf("%s, want %s: %s", st, tc.want, msg)
			}
		})
	}
}
