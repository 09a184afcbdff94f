package spire

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc/codes"

	"github.com/meshexp/meshexp/internal/trust"
)

// nodeCert makes an x509pop node certificate (digitalSignature, as SPIRE's
// x509pop requires) signed by ca, and writes it with its key into dir.
func nodeCert(t *testing.T, ca *trust.KeyPair, dir string) (certPath, keyPath string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "vm-1.node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	return certPath, keyPath, cert
}

// startX509PopServer starts a bare SPIRE server from the embedded mode's
// config plus an x509pop node attestor trusting nodeCA.
func startX509PopServer(t *testing.T, bin, nodeCA string) Options {
	t.Helper()
	opts, _ := embeddedOptions(t, bin)
	o := opts.withDefaults()
	l := o.layout()
	conf := strings.Replace(o.renderServer(), `    NodeAttestor "join_token" {`,
		"    NodeAttestor \"x509pop\" {\n        plugin_data {\n            ca_bundle_path = \""+nodeCA+"\"\n        }\n    }\n    NodeAttestor \"join_token\" {", 1)
	for _, d := range []string{l.serverDir, l.serverData} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(l.serverConf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logger, _ := testLogger(t)
	out, errw, _ := newLogSinks("spire-server", logger, &secrets{}, nil, nil)
	p, err := ExecStarter(logger, time.Second)(context.Background(), Command{
		Name: "spire-server", Path: filepath.Join(bin, "spire-server"), Args: []string{"run", "-config", l.serverConf},
		Env: childEnv, Stdout: out, Stderr: errw,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(context.Background()) })
	conn, err := dialUnix(l.serverSocket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waitServing(ctx, conn, "the test server"); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestExternalModeAttestsWithX509Pop(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	dir := shortDir(t)
	nodeCA, err := trust.NewRoot("node-ca", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := nodeCA.WriteFiles(filepath.Join(dir, "node-ca.crt"), ""); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, cert := nodeCert(t, nodeCA, dir)
	server := startX509PopServer(t, bin, filepath.Join(dir, "node-ca.crt"))

	// The operator's side: an entry parented to the node's x509pop agent ID
	// (spire pkg/common/plugin/x509pop: /spire/agent/x509pop/<sha1 of the cert>).
	sum := sha1.Sum(cert.Raw)
	conn, err := dialUnix(server.layout().serverSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := entryv1.NewEntryClient(conn).BatchCreateEntry(context.Background(), &entryv1.BatchCreateEntryRequest{Entries: []*types.Entry{{
		SpiffeId:  &types.SPIFFEID{TrustDomain: server.TrustDomain, Path: "/" + server.WorkloadName},
		ParentId:  &types.SPIFFEID{TrustDomain: server.TrustDomain, Path: "/spire/agent/x509pop/" + hex.EncodeToString(sum[:])},
		Selectors: []*types.Selector{{Type: "unix", Value: "uid:2102"}},
	}}})
	if err != nil || codes.Code(resp.Results[0].GetStatus().GetCode()) != codes.OK {
		t.Fatalf("creating the entry: %v %v", err, resp)
	}

	opts, _ := externalOptions(t, bin, server)
	opts.X509PopCertPath, opts.X509PopKeyPath = certPath, keyPath
	logger, _ := testLogger(t)
	id := startIdentity(t, opts, logger)
	assertChainsTo(t, id.SVID().Certificates, opts.TrustAnchorPath)
}
