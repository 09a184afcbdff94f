package spire

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/proxyenv"
	"github.com/meshexp/meshexp/internal/trust"
)

func TestNothingMeshexpDidNotCreateIsDeletedOrReused(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	for _, tc := range []struct {
		name, option, want string
		put                func(t *testing.T, opts Options) string // returns the path that must survive
	}{
		{"a regular file at the socket path", "SocketPath", "a regular file is already there", func(t *testing.T, o Options) string {
			mustWrite(t, o.SocketPath, "the user's file")
			return o.SocketPath
		}},
		{"an empty directory at the socket path", "SocketPath", "a directory is already there", func(t *testing.T, o Options) string {
			if err := os.MkdirAll(o.SocketPath, 0o755); err != nil {
				t.Fatal(err)
			}
			return o.SocketPath
		}},
		{"a stale socket meshexp's SPIRE did not make", "SocketPath", "meshexp's SPIRE did not make it", func(t *testing.T, o Options) string {
			staleSocket(t, o.SocketPath)
			return o.SocketPath
		}},
		{"SPIRE state in the data dir that meshexp did not create", "DataDir", "which meshexp did not create", func(t *testing.T, o Options) string {
			p := filepath.Join(o.DataDir, "agent", "data", "agent-data.json")
			mustWrite(t, p, "{}")
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts, dir := embeddedOptions(t, bin)
			keep := tc.put(t, opts)
			before := snapshot(t, keep)

			errs := opts.CheckHostPaths()
			if len(errs) != 1 || !isOptionError(errs[0], tc.option, tc.want) {
				t.Errorf("the validation pass (CheckHostPaths) said %v; want one %s error with %q", errs, tc.option, tc.want)
			}
			_, err := Start(context.Background(), opts, discardLogger())
			if err == nil || !isOptionError(err, tc.option, tc.want) {
				t.Errorf("Start: %v; want a %s error with %q", err, tc.option, tc.want)
			}
			if after := snapshot(t, keep); after != before {
				t.Errorf("%s changed: %s → %s", keep, before, after)
			}
			assertNoProcessUnder(t, dir)
		})
	}
}

func TestAnExistingSocketDirectoryKeepsItsModeAndMissingOnesAreReachable(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	opts, dir := embeddedOptions(t, bin)
	// Like /tmp: world-writable with the sticky bit.
	shared := filepath.Join(dir, "tmp")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	opts.SocketPath = filepath.Join(shared, "api.sock")
	logger, _ := testLogger(t)
	startIdentity(t, opts, logger)
	fi, err := os.Stat(shared)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (os.ModePerm | os.ModeSticky); got != 0o777|os.ModeSticky {
		t.Errorf("the socket's existing directory has mode %v now, want drwxrwxrwt as it was", got)
	}

	nested, _ := embeddedOptions(t, bin)
	nested.SocketPath = filepath.Join(filepath.Dir(nested.TrustAnchorPath), "a", "b", "api.sock")
	startIdentity(t, nested, logger)
	for _, d := range []string{filepath.Dir(nested.SocketPath), filepath.Dir(filepath.Dir(nested.SocketPath))} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("created directory %s: %v, want mode 0755", d, fi.Mode())
		}
	}
}

func TestARestartKeepsSPIREsStateAndIsWarm(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	opts, dir := embeddedOptions(t, bin)
	logger, logs := testLogger(t)

	first, cold := startTimed(t, opts, logger)
	stop(t, first)
	logs.reset()
	second, warm := startTimed(t, opts, logger)
	t.Logf("start → verified SVID: cold %s, warm %s", cold.Round(time.Millisecond), warm.Round(time.Millisecond))

	t.Run("the second start reused the server's CA and the agent's SVID", func(t *testing.T) {
		if !strings.Contains(logs.String(), "reusing SPIRE state") || !strings.Contains(logs.String(), "reuses its kept SVID") {
			t.Error("the second start did not say it reused the kept state")
		}
		a, b := first.SVID().Certificates, second.SVID().Certificates
		if len(a) < 2 || len(b) < 2 || !bytes.Equal(a[1].Raw, b[1].Raw) {
			t.Error("the second SVID was signed by another SPIRE CA: the server's keys were not kept")
		}
		if _, err := os.Stat(opts.withDefaults().layout().tokenFile); err == nil {
			t.Error("a join token was written although the agent kept its SVID")
		}
		assertChainsTo(t, b, opts.TrustAnchorPath)
	})
	stop(t, second)

	t.Run("another trust anchor makes the kept state stale: a clean start says so", func(t *testing.T) {
		logs.reset()
		anchorFiles(t, dir) // a new root in place of the old
		third := startIdentity(t, opts, logger)
		if !strings.Contains(logs.String(), "does not fit these settings; starting clean") || !strings.Contains(logs.String(), "trust anchor") {
			t.Errorf("no log line saying the state was stale because of the trust anchor:\n%s", logs.String())
		}
		assertChainsTo(t, third.SVID().Certificates, opts.TrustAnchorPath)
	})
}

func TestATrustAnchorRotationSignsWithTheKeysRootAndTrustsEveryRoot(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	opts, dir := embeddedOptions(t, bin)
	oldRoot, err := trust.LoadKeyPair(opts.TrustAnchorPath, opts.UpstreamKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	newRoot, err := trust.NewRoot(trust.DefaultTrustDomain, 96*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// ca.crt: old root first, then the new one, as during a rotation.
	mustWrite(t, opts.TrustAnchorPath, string(oldRoot.CertPEM)+string(newRoot.CertPEM))
	anchors := proxyAnchors(t, dir)
	logger, _ := testLogger(t)

	var svids [][]*x509.Certificate
	for _, signer := range []*trust.KeyPair{newRoot, oldRoot} {
		mustWrite(t, filepath.Join(dir, "ca.key"), string(signer.KeyPEM))
		if err := opts.Validate(); err != nil {
			t.Fatalf("Validate refused the two-root ca.crt: %v", err)
		}
		id := startIdentity(t, opts, logger)
		chain := id.SVID().Certificates
		only := x509.NewCertPool()
		only.AddCert(signer.Cert)
		if err := verifyAgainst(chain, only); err != nil {
			t.Errorf("the SVID does not chain to the root whose key is ca.key: %v", err)
		}
		assertBundleHolds(t, opts, oldRoot.Cert, newRoot.Cert)
		svids = append(svids, chain)
		stop(t, id)
	}
	for i, chain := range svids {
		if err := verifyAgainst(chain, anchors); err != nil {
			t.Errorf("SVID %d does not verify against the proxy's trust anchors: %v", i+1, err)
		}
	}
}

// proxyAnchors is LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS as bootstrap
// renders it for a trust anchor directory.
func proxyAnchors(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	c, _ := config.LoadArgs(config.ScopeBootstrap, nil, map[string]string{
		"WORKLOAD_NAME": "vm-1", "WORKLOAD_NAMESPACE": "ns", "NODE_NAME": "n", "MESHEXP_TRUST_ANCHOR_DIR": dir})
	if c == nil {
		t.Fatal("loading the configuration failed")
	}
	data, err := os.ReadFile(c.TrustAnchorPath())
	if err != nil {
		t.Fatal(err)
	}
	vars, err := proxyenv.Render(c, data, false)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, v := range vars {
		if v.Name == "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS" && !pool.AppendCertsFromPEM([]byte(v.Value)) {
			t.Fatal("no certificate in the proxy's trust anchors")
		}
	}
	return pool
}

// assertBundleHolds checks that the server's bundle (what SPIRE hands its
// agents and workloads) holds every root.
func assertBundleHolds(t *testing.T, opts Options, roots ...*x509.Certificate) {
	t.Helper()
	conn, err := dialUnix(opts.withDefaults().layout().serverSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bundlev1.NewBundleClient(conn).GetBundle(ctx, &bundlev1.GetBundleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roots {
		found := false
		for _, a := range b.GetX509Authorities() {
			found = found || bytes.Equal(a.GetAsn1(), r.Raw)
		}
		if !found {
			t.Errorf("SPIRE's bundle lacks the root %x", r.SubjectKeyId)
		}
	}
}

func verifyAgainst(chain []*x509.Certificate, roots *x509.CertPool) error {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

func startTimed(t *testing.T, opts Options, logger *slog.Logger) (*Identity, time.Duration) {
	t.Helper()
	begin := time.Now()
	id := startIdentity(t, opts, logger)
	return id, time.Since(begin)
}

func stop(t *testing.T, id *Identity) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := id.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func isOptionError(err error, option, text string) bool {
	var oe *OptionError
	return errors.As(err, &oe) && oe.Option == option && strings.Contains(err.Error(), text)
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// staleSocket leaves a unix socket at path with nobody listening.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

// snapshot describes path's type, mode and content, to compare.
func snapshot(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		return "missing"
	}
	data, _ := os.ReadFile(path)
	return fi.Mode().String() + " " + string(data)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestAnExternalAgentRestartsWithItsKeptSVIDAndTheUsedToken(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	_, server := testServer(t, bin, nil)
	opts, _ := externalOptions(t, bin, server)
	opts.JoinToken = newJoinToken(t, server)
	logger, logs := testLogger(t)
	stop(t, startIdentity(t, opts, logger))

	// The token is spent; the agent's kept SVID is what lets it back in.
	logs.reset()
	id := startIdentity(t, opts, logger)
	assertChainsTo(t, id.SVID().Certificates, opts.TrustAnchorPath)
	if !strings.Contains(logs.String(), "reusing SPIRE state") {
		t.Error("the restart did not reuse the agent's state")
	}
	stop(t, id)

	// Another server address makes the kept agent state stale.
	logs.reset()
	opts.ServerAddress = "localhost"
	opts.JoinToken = newJoinToken(t, server)
	startIdentity(t, opts, logger)
	if !strings.Contains(logs.String(), "starting clean") || !strings.Contains(logs.String(), "SPIRE settings") {
		t.Errorf("no log line saying the agent's state was stale:\n%s", logs.String())
	}
}
