package trust

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// Severity says whether a finding stops the run.
type Severity int

const (
	Error Severity = iota
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Finding is one thing a check noticed about a file.
type Finding struct {
	Severity Severity
	File     string // the file the finding is about
	Message  string
	Fix      string
}

// CheckOptions says what a trust anchor is checked against.
type CheckOptions struct {
	// TrustDomain is compared with the anchor's subject (a warning only:
	// Linkerd does not require it, but operators expect the convention).
	TrustDomain string
	// Now is the time validity is checked at; zero means time.Now().
	Now time.Time
	// ExpiryWarning warns when the certificate expires sooner than this.
	ExpiryWarning time.Duration
}

// CheckAnchor checks a trust anchor certificate file and, when keyPath is
// not empty, its private key. The file may hold several roots (a trust
// anchor rotation: old and new); the key must then belong to one of them. It returns every finding at once, and the
// parsed certificates when the certificate file could be read.
func CheckAnchor(certPath, keyPath string, opts CheckOptions) ([]*x509.Certificate, []Finding) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	var out []Finding
	add := func(sev Severity, file, fix, format string, args ...any) {
		out = append(out, Finding{Severity: sev, File: file, Message: fmt.Sprintf(format, args...), Fix: fix})
	}

	certs, ok := readPEMFile(certPath, "certificate", add)
	var parsed []*x509.Certificate
	if ok {
		var err error
		parsed, err = ParseCertificates(certs)
		if err != nil {
			add(Error, certPath, "provide the trust anchor as a PEM certificate (meshexp certs root creates one)", "not a valid PEM certificate: %v", err)
		}
	}
	for i, c := range parsed {
		label := "certificate"
		if len(parsed) > 1 {
			label = fmt.Sprintf("certificate %d (%s)", i+1, c.Subject.CommonName)
		}
		checkCA(c, label, certPath, opts, add)
	}
	if len(parsed) > 0 && opts.TrustDomain != "" && isSelfSigned(parsed[0]) && parsed[0].Subject.CommonName != opts.TrustDomain {
		add(Warning, certPath, "Linkerd's convention is CN=<trust domain>; ignore if this is intended",
			"subject CN %q does not match the trust domain %q", parsed[0].Subject.CommonName, opts.TrustDomain)
	}

	if keyPath == "" {
		return parsed, out
	}
	keyPEM, ok := readPEMFile(keyPath, "private key", add)
	if !ok {
		return parsed, out
	}
	if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
		add(Warning, keyPath, "chmod 600 "+keyPath, "private key is readable by group or others (mode %#o)", fi.Mode().Perm())
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		add(Error, keyPath, "provide the PEM private key that belongs to the trust anchor", "not a valid private key: %v", err)
		return parsed, out
	}
	if len(parsed) > 0 && SigningCert(parsed, key) == nil {
		what := "the certificate"
		switch {
		case len(parsed) > 1 && AllSelfSigned(parsed):
			what = fmt.Sprintf("any of the %d roots", len(parsed))
		case len(parsed) > 1:
			what = "the first certificate"
		}
		add(Error, keyPath, "use the key created together with "+certPath, "private key does not match %s in %s", what, certPath)
	}
	return parsed, out
}

// readPEMFile reads a file, reporting missing, unreadable and directory
// paths as findings that say which.
func readPEMFile(path, what string, add func(Severity, string, string, string, ...any)) ([]byte, bool) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		add(Error, path, "create it (meshexp certs root) or point the trust anchor setting at the right directory", "%s file does not exist", what)
		return nil, false
	case err != nil:
		add(Error, path, "check the path and its permissions", "cannot read %s file: %v", what, err)
		return nil, false
	case fi.IsDir():
		add(Error, path, "point the setting at a file, not a directory", "%s path is a directory", what)
		return nil, false
	}
	data, err := os.ReadFile(path)
	if err != nil {
		add(Error, path, "make it readable by the user running meshexp", "cannot read %s file: %v", what, err)
		return nil, false
	}
	return data, true
}

func checkCA(c *x509.Certificate, label, file string, opts CheckOptions, add func(Severity, string, string, string, ...any)) {
	if !c.BasicConstraintsValid || !c.IsCA {
		add(Error, file, "use a CA certificate (basicConstraints CA:TRUE), e.g. from meshexp certs root", "%s is not a CA (basicConstraints CA:TRUE missing)", label)
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		add(Error, file, "recreate the certificate with keyUsage keyCertSign", "%s may not sign certificates (keyUsage lacks keyCertSign)", label)
	}
	if opts.Now.Before(c.NotBefore) {
		add(Error, file, "check the host clock, or wait until the certificate is valid", "%s is not valid until %s", label, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if opts.Now.After(c.NotAfter) {
		add(Error, file, "rotate the trust anchor (https://linkerd.io/2/tasks/manually-rotating-control-plane-tls-credentials/)", "%s expired on %s", label, c.NotAfter.UTC().Format(time.RFC3339))
	} else if opts.ExpiryWarning > 0 && c.NotAfter.Sub(opts.Now) < opts.ExpiryWarning {
		add(Warning, file, "plan a trust anchor rotation", "%s expires on %s", label, c.NotAfter.UTC().Format(time.RFC3339))
	}
	if alg := KeyAlgorithm(c.PublicKey); alg != "ECDSA P-256" {
		add(Error, file, "Linkerd requires ECDSA P-256 keys; create one with meshexp certs root", "%s has a %s key; Linkerd requires ECDSA P-256", label, alg)
	}
}

// KeyAlgorithm names a public key's algorithm as a person would say it.
func KeyAlgorithm(pub any) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ECDSA P-256"
		case elliptic.P384():
			return "ECDSA P-384"
		case elliptic.P521():
			return "ECDSA P-521"
		}
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// Describe renders what the checks see in a certificate, for `certs inspect`.
func Describe(c *x509.Certificate) string {
	var b strings.Builder
	fmt.Fprintf(&b, "subject:      %s\n", c.Subject)
	fmt.Fprintf(&b, "issuer:       %s\n", c.Issuer)
	fmt.Fprintf(&b, "serial:       %x\n", c.SerialNumber)
	fmt.Fprintf(&b, "valid:        %s to %s\n", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "key:          %s\n", KeyAlgorithm(c.PublicKey))
	ca := "no"
	if c.BasicConstraintsValid && c.IsCA {
		ca = "yes"
		if c.MaxPathLen > 0 || c.MaxPathLenZero {
			ca += fmt.Sprintf(" (pathlen %d)", c.MaxPathLen)
		}
	}
	fmt.Fprintf(&b, "CA:           %s\n", ca)
	fmt.Fprintf(&b, "key usage:    %s\n", keyUsage(c.KeyUsage))
	for _, u := range c.URIs {
		fmt.Fprintf(&b, "URI SAN:      %s\n", u)
	}
	for _, d := range c.DNSNames {
		fmt.Fprintf(&b, "DNS SAN:      %s\n", d)
	}
	fmt.Fprintf(&b, "self-signed:  %t\n", isSelfSigned(c))
	return b.String()
}

func keyUsage(u x509.KeyUsage) string {
	names := []struct {
		bit  x509.KeyUsage
		name string
	}{
		{x509.KeyUsageDigitalSignature, "digitalSignature"},
		{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
		{x509.KeyUsageCertSign, "keyCertSign"},
		{x509.KeyUsageCRLSign, "cRLSign"},
	}
	var out []string
	for _, n := range names {
		if u&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return "(none)"
	}
	return strings.Join(out, ", ")
}

// VerifyCA checks that ca chains to one of roots at time now.
func VerifyCA(ca *x509.Certificate, roots []*x509.Certificate, now time.Time) error {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	_, err := ca.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// isSelfSigned reports whether c is a root; the trust domain convention is
// about the root's subject only.
func isSelfSigned(c *x509.Certificate) bool { return c.CheckSignatureFrom(c) == nil }
