//go:build linux

package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/check"
	"github.com/meshexp/meshexp/internal/testutil/netns"
	"github.com/meshexp/meshexp/internal/trust"
)

// controlPlane serves TLS in ns with a certificate for the destination's
// identity, issued under root, and returns its address.
func controlPlane(t *testing.T, ns *netns.NS, root *trust.KeyPair) string {
	t.Helper()
	const id = "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"
	issuer, err := trust.NewIssuer(root, "identity.linkerd.cluster.local", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: id}, DNSNames: []string{id},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer.Cert, key.Public(), issuer.Key)
	if err != nil {
		t.Fatal(err)
	}
	var l net.Listener
	if err := ns.Do(func() (err error) {
		l, err = tls.Listen("tcp", "127.0.0.1:8086", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, issuer.Cert.Raw}, PrivateKey: key}}})
		return err
	}); err != nil {
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

func TestCheckPrePassesOnAHostThatCanRunMeshexpAndFailsWhenTheControlPlaneIsUnreachable(t *testing.T) {
	ns := netns.New(t)
	dir := t.TempDir()
	if code, _, stderr := run(t, []string{"certs", "root", "--out-dir", dir}, nil); code != 0 {
		t.Fatalf("certs root: exit %d: %s", code, stderr)
	}
	root, err := trust.LoadKeyPair(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	addr := controlPlane(t, ns, root)
	env := demoEnv(dir)
	env["MESHEXP_DESTINATION_ADDR"] = addr
	env["MESHEXP_POLICY_ADDR"] = addr
	env["MESHEXP_KUBECONFIG"] = filepath.Join(dir, "no-kubeconfig")

	code, stdout, stderr := inNS(t, ns, []string{"check", "--pre"}, env)
	t.Logf("stdout:\n%s", stdout)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"host\n----\n", "✓ meshexp has the NET_ADMIN capability", "✓ the trust anchor is valid", "✓ the destination service's certificate chains to the trust anchor", "Status check results are ✓"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	t.Run("json output carries every result", func(t *testing.T) {
		code, stdout, _ := inNS(t, ns, []string{"check", "--pre", "--output", "json"}, env)
		var rep check.JSONReport
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, stdout)
		}
		if code != 0 || !rep.Success || len(rep.Results) < 10 {
			t.Errorf("exit %d, %+v", code, rep)
		}
	})
	t.Run("an unreachable control plane fails with exit 1", func(t *testing.T) {
		bad := map[string]string{}
		for k, v := range env {
			bad[k] = v
		}
		bad["MESHEXP_POLICY_ADDR"] = "127.0.0.1:8090"
		code, stdout, _ := inNS(t, ns, []string{"check", "--pre"}, bad)
		if code != 1 || !strings.Contains(stdout, "× the policy service is reachable with the control mark") || !strings.Contains(stdout, "hint: ") {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
	})
	t.Run("a bad --output is invalid input", func(t *testing.T) {
		if code, _, stderr := run(t, []string{"check", "--output", "yaml"}, env); code != 2 || !strings.Contains(stderr, "--output") {
			t.Errorf("exit %d: %s", code, stderr)
		}
	})
}
