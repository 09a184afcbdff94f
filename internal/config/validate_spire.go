package config

import (
	"strings"

	"github.com/meshexp/meshexp/internal/trust"
)

// spireText checks what identity writes into SPIRE's configs: paths must
// be absolute (SPIRE runs in its own directory) and free of what its HCL
// cannot hold, and a join token free of whitespace and quotes. The spire
// package checks the same when it starts; here they come with the rest,
// named by setting.
func (v *validator) spireText() {
	s := v.c.SPIRE
	paths := []struct{ setting, value string }{
		{"spire-bin-dir", s.BinDir}, {"spire-socket", s.SocketPath},
		{"spire-upstream-cert", s.UpstreamCert}, {"spire-upstream-key", s.UpstreamKey}, {"spire-upstream-bundle", s.UpstreamBundle},
		{"spire-join-token-file", s.JoinTokenFile}, {"spire-x509pop-cert", s.X509PopCert}, {"spire-x509pop-key", s.X509PopKey},
	}
	if !v.c.isDefault("spire-trust-bundle") {
		// Otherwise it is the trust anchor, checked as such.
		paths = append(paths, struct{ setting, value string }{"spire-trust-bundle", s.TrustBundle})
	}
	for _, p := range paths {
		switch {
		case p.value == "":
		case strings.ContainsAny(p.value, "\x00\n\r\"\\"):
			v.add(p.setting, "use a path without quotes, backslashes or control characters", "%s cannot be written into SPIRE's config", quote(p.value))
		case !strings.HasPrefix(p.value, "/") && p.setting != "spire-socket":
			v.add(p.setting, "use an absolute path", "%s is a relative path", quote(p.value))
		}
	}
	if s.Mode == SPIREExternal && strings.ContainsAny(s.JoinToken, "\x00\n\r\t\"\\ ") {
		// Never echo the token itself.
		v.add("spire-join-token", "pass the token exactly as `spire-server token generate` printed it", "contains whitespace, quotes or control characters")
	}
}

// x509Pop checks the node certificate and key an external agent attests
// with: regular files, an unencrypted key that matches the certificate.
func (v *validator) x509Pop() {
	s := v.c.SPIRE
	if !v.plainFile("spire-x509pop-cert", v.c.input("spire-x509pop-cert"), s.X509PopCert, false) ||
		!v.plainFile("spire-x509pop-key", v.c.input("spire-x509pop-key"), s.X509PopKey, true) {
		return
	}
	if v.readable("spire-x509pop-cert", s.X509PopCert) == nil || v.readable("spire-x509pop-key", s.X509PopKey) == nil {
		return
	}
	if _, err := trust.LoadKeyPair(s.X509PopCert, s.X509PopKey); err != nil {
		v.add("spire-x509pop-cert", "give the node's certificate and its own unencrypted key", "%s", strings.TrimPrefix(err.Error(), "trust: "))
	}
}
