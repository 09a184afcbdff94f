package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/meshexp/meshexp/internal/netfilter"
	"github.com/meshexp/meshexp/internal/trust"
)

// Resolve checks that the host part of addr (host:port) resolves.
func Resolve(addr string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return "", fmt.Errorf("address %q: %w", addr, err)
		}
		ips, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", host, err)
		}
		return strings.Join(ips, ", "), nil
	}
}

// TCPReach connects to addr with meshexp's control mark on the socket,
// as its own control connections do, and closes the connection.
func TCPReach(addr string, mark uint32) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		c, err := netfilter.ControlDialer(mark).DialContext(ctx, "tcp", addr)
		if err != nil {
			return "", fmt.Errorf("connect to %s with mark 0x%x: %w", addr, mark, err)
		}
		remote := c.RemoteAddr().String()
		c.Close()
		return "connected to " + remote, nil
	}
}

// TLSIdentity connects to addr (with the control mark) and checks that
// the server's certificate chains to the trust anchor and names identity
// (Linkerd's control plane presents its service account's identity as a
// DNS name and answers to it as SNI).
func TLSIdentity(addr, identity, anchorPath string, mark uint32, now func() time.Time) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		pemBytes, err := os.ReadFile(anchorPath)
		if err != nil {
			return "", fmt.Errorf("read the trust anchor: %w", err)
		}
		anchors, err := trust.ParseCertificates(pemBytes)
		if err != nil {
			return "", fmt.Errorf("read the trust anchor %s: %w", anchorPath, err)
		}
		roots := x509.NewCertPool()
		for _, a := range anchors {
			roots.AddCert(a)
		}
		raw, err := netfilter.ControlDialer(mark).DialContext(ctx, "tcp", addr)
		if err != nil {
			return "", fmt.Errorf("connect to %s with mark 0x%x: %w", addr, mark, err)
		}
		defer raw.Close()
		// Verified by hand below, to say which of chain or name is wrong.
		conn := tls.Client(raw, &tls.Config{ServerName: identity, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec
		if err := conn.HandshakeContext(ctx); err != nil {
			return "", fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		certs := conn.ConnectionState().PeerCertificates
		if len(certs) == 0 {
			return "", fmt.Errorf("%s presented no certificate", addr)
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		leaf := certs[0]
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return "", fmt.Errorf("the certificate of %s (subject %q) does not chain to the trust anchor %s: %w", addr, leaf.Subject.CommonName, anchorPath, err)
		}
		if err := leaf.VerifyHostname(identity); err != nil {
			return "", fmt.Errorf("the certificate of %s chains to the trust anchor but does not name %s (it names %s)", addr, identity, strings.Join(leaf.DNSNames, ", "))
		}
		return "names " + identity + ", chains to the trust anchor", nil
	}
}
