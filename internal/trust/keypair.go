// Package trust creates and checks the certificates a Linkerd mesh trusts:
// the trust anchor (root), the control plane's identity issuer, and an
// intermediate CA for a SPIRE server, so hosts need not hold the root key.
//
// Linkerd requires ECDSA P-256 keys for its trust chain
// (linkerd2 pkg/tls/cred.go accepts *ecdsa.PrivateKey only), so everything
// created here uses P-256 and everything checked here is held to it.
package trust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Defaults match what Linkerd's documentation creates with step-cli
// (https://linkerd.io/2/tasks/generate-certificates/).
const (
	DefaultTrustDomain = "root.linkerd.cluster.local"
	DefaultIssuerCN    = "identity.linkerd.cluster.local"
	DefaultRootTTL     = 10 * 365 * 24 * time.Hour
	DefaultIssuerTTL   = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so a host whose clock is slightly behind
	// the one that made the certificate still accepts it.
	clockSkew = 5 * time.Minute
)

// KeyPair is a certificate with its private key, parsed and as PEM.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// NewRoot creates a self-signed trust anchor like Linkerd's: ECDSA P-256,
// CA:TRUE (critical), keyUsage certSign+cRLSign.
func NewRoot(cn string, ttl time.Duration) (*KeyPair, error) {
	tmpl := caTemplate(cn, ttl)
	return create(tmpl, nil)
}

// NewIntermediate creates a CA signed by parent that may itself sign one
// more CA below it: SPIRE's own X.509 CA sits between it and workload SVIDs
// (root → this → SPIRE CA → SVID), hence MaxPathLen 1.
func NewIntermediate(parent *KeyPair, cn string, ttl time.Duration) (*KeyPair, error) {
	if parent == nil {
		return nil, errors.New("trust: intermediate needs a parent CA")
	}
	tmpl := caTemplate(cn, ttl)
	tmpl.MaxPathLen = 1
	return create(tmpl, parent)
}

// NewIssuer creates the Linkerd control plane's identity issuer: a CA signed
// by the root that signs only leaf certificates (pathlen 0), as step-cli's
// intermediate-ca profile does.
func NewIssuer(root *KeyPair, cn string, ttl time.Duration) (*KeyPair, error) {
	if root == nil {
		return nil, errors.New("trust: issuer needs a root CA")
	}
	tmpl := caTemplate(cn, ttl)
	tmpl.MaxPathLen = 0
	tmpl.MaxPathLenZero = true
	return create(tmpl, root)
}

func caTemplate(cn string, ttl time.Duration) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

func create(tmpl *x509.Certificate, parent *KeyPair) (*KeyPair, error) {
	if tmpl.NotAfter.Before(tmpl.NotBefore) {
		return nil, fmt.Errorf("trust: certificate %q: validity must be positive", tmpl.Subject.CommonName)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("trust: generating P-256 key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("trust: generating serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.SubjectKeyId = keyID(&key.PublicKey)
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.Cert, parent.Key
		tmpl.AuthorityKeyId = parent.Cert.SubjectKeyId
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("trust: signing certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("trust: parsing new certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("trust: encoding key: %w", err)
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		// SEC1 "EC PRIVATE KEY": what step-cli writes for Linkerd and what
		// SPIRE's disk UpstreamAuthority accepts (measured, docs/spire.md).
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// keyID is the RFC 5280 §4.2.1.2 method (1) key identifier.
func keyID(pub *ecdsa.PublicKey) []byte {
	raw, err := pub.Bytes()
	if err != nil {
		return nil
	}
	sum := sha1.Sum(raw)
	return sum[:]
}

// WriteFiles writes the certificate (0644) and key (0600) without following
// an existing file's mode: the key is created fresh with owner-only access.
// Existing files are replaced atomically.
func (k *KeyPair) WriteFiles(certPath, keyPath string) error {
	if err := writeAtomic(certPath, k.CertPEM, 0o644); err != nil {
		return err
	}
	if keyPath == "" {
		return nil
	}
	return writeAtomic(keyPath, k.KeyPEM, 0o600)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("trust: writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("trust: writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("trust: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("trust: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("trust: writing %s: %w", path, err)
	}
	return nil
}

// LoadKeyPair reads a certificate and its key and checks that they belong
// together. The key is paired with the first certificate of certPath (a
// chain, leaf first) or, when the file is a bundle of roots (every
// certificate self-signed, what an operator holds during a trust anchor
// rotation), with the root it belongs to; CertPEM is then that root alone.
func LoadKeyPair(certPath, keyPath string) (*KeyPair, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("trust: reading certificate: %w", err)
	}
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("trust: %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("trust: reading key: %w", err)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("trust: %s: %w", keyPath, err)
	}
	cert := SigningCert(certs, key)
	if cert == nil {
		what := "certificate"
		if len(certs) > 1 {
			what = fmt.Sprintf("any of the %d certificates in", len(certs))
			if !AllSelfSigned(certs) {
				what = "the first certificate in"
			}
		}
		return nil, fmt.Errorf("trust: key %s does not match %s %s", keyPath, what, certPath)
	}
	if len(certs) > 1 && AllSelfSigned(certs) {
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}
	return &KeyPair{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// SigningCert returns the certificate of certs that key signs for: the
// first one (a chain is leaf first), or, when certs is a bundle of roots
// (all self-signed), whichever root key belongs to. nil if none.
func SigningCert(certs []*x509.Certificate, key crypto.Signer) *x509.Certificate {
	if len(certs) == 0 {
		return nil
	}
	if KeyMatches(certs[0], key) {
		return certs[0]
	}
	if !AllSelfSigned(certs) {
		return nil
	}
	for _, c := range certs[1:] {
		if KeyMatches(c, key) {
			return c
		}
	}
	return nil
}

// AllSelfSigned reports whether every certificate is a root: a file of
// several is then a trust bundle, not a chain.
func AllSelfSigned(certs []*x509.Certificate) bool {
	for _, c := range certs {
		if !isSelfSigned(c) {
			return false
		}
	}
	return len(certs) > 0
}

// ParseCertificates returns every CERTIFICATE block in data, in order.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// ParsePrivateKey accepts SEC1 ("EC PRIVATE KEY"), PKCS#8 ("PRIVATE KEY")
// and PKCS#1 ("RSA PRIVATE KEY") keys, so that checks can name the wrong
// algorithm instead of failing to parse it.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key block found")
		}
		switch block.Type {
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported private key type %T", k)
			}
			return s, nil
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("key is encrypted; meshexp needs an unencrypted key (step-cli: --no-password --insecure)")
		}
	}
}

// KeyMatches reports whether key is the private half of cert's public key.
func KeyMatches(cert *x509.Certificate, key crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	return ok && pub.Equal(cert.PublicKey)
}
