package spire

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/trust"
)

func TestEmbeddedModeWithTheRootAnchorIssuesTheProxyUIDAVerifiedSVID(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	opts, dir := embeddedOptions(t, bin)
	logger, logs := testLogger(t)

	// Scan every process's command line and environment while the run
	// starts, to catch short-lived ones (the SVID fetcher, SPIRE's start).
	scan := startProcScan(t)
	id := startIdentity(t, opts, logger)
	token := readToken(t, opts)
	hits := scan.stop()

	t.Run("the SVID's URI SAN is the workload's SPIFFE ID", func(t *testing.T) {
		if got, want := id.SVID().ID.String(), "spiffe://root.linkerd.cluster.local/vm-1"; got != want {
			t.Errorf("SVID ID = %s, want %s", got, want)
		}
		if u := id.SVID().Certificates[0].URIs; len(u) != 1 || u[0].String() != "spiffe://root.linkerd.cluster.local/vm-1" {
			t.Errorf("leaf URI SANs = %v", u)
		}
	})
	t.Run("the SVID's chain verifies against ca.crt", func(t *testing.T) {
		assertChainsTo(t, id.SVID().Certificates, opts.TrustAnchorPath)
	})
	t.Run("a process running as another uid gets no SVID within its deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := FetchSVID(ctx, FetchOptions{SocketPath: id.SocketPath(), ID: opts.SPIFFEID(), UID: 2103, GID: 2103, TrustAnchorPath: opts.TrustAnchorPath})
		if err == nil {
			t.Fatal("uid 2103 received the proxy's SVID")
		}
		if !strings.Contains(err.Error(), "no identity issued") {
			t.Errorf("want the agent's 'no identity issued', got: %v", err)
		}
	})
	t.Run("root gets no SVID either", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := FetchSVID(ctx, FetchOptions{SocketPath: id.SocketPath(), ID: opts.SPIFFEID(), UID: 0, GID: 0, TrustAnchorPath: opts.TrustAnchorPath}); err == nil {
			t.Fatal("root received the proxy's SVID")
		}
	})
	t.Run("the proxy uid can reach the socket through directories it may enter", func(t *testing.T) {
		fi, err := os.Stat(filepath.Dir(id.SocketPath()))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("socket directory mode %04o, want 0755", fi.Mode().Perm())
		}
	})
	t.Run("the join token file and the configs are owner-only", func(t *testing.T) {
		l := opts.withDefaults().layout()
		for _, f := range []string{l.tokenFile, l.serverConf, l.agentConf, l.serverDir, l.agentDir} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %04o", f, fi.Mode().Perm())
			}
		}
	})
	t.Run("no join token or key material in command lines, environments or logs", func(t *testing.T) {
		secrets := secretNeedles(t, token, filepath.Join(dir, "ca.key"))
		self, _ := os.Executable()
		for _, h := range hits {
			// The PEM marker is searched for in this test's processes only
			// (SPIRE's, this binary and its re-executed fetchers); the
			// token and the key's bytes, which are unique, everywhere.
			ours := h.exe == self || strings.HasPrefix(h.exe, bin+"/")
			for i, s := range secrets {
				if (ours || i != 1) && bytes.Contains(h.data, []byte(s)) {
					t.Errorf("%s of pid %d (%s) contains a secret", h.file, h.pid, h.exe)
				}
			}
		}
		for _, s := range secrets {
			if strings.Contains(logs.String(), s) {
				t.Errorf("the captured log contains a secret (%.12q...)", s)
			}
		}
		if !strings.Contains(logs.String(), "join_token/"+redacted) {
			t.Error("the agent's SPIFFE ID was not logged redacted; is the check still looking at SPIRE's output?")
		}
		sawAgent, sawFetcher := false, false
		for _, h := range hits {
			sawAgent = sawAgent || (h.file == "cmdline" && bytes.Contains(h.data, []byte("agent.conf")))
			sawFetcher = sawFetcher || (h.file == "cmdline" && bytes.Contains(h.data, []byte("fetch-svid")))
		}
		if !sawAgent || !sawFetcher {
			t.Errorf("the /proc scan missed the agent (%v) or the SVID fetcher (%v) among %d entries", sawAgent, sawFetcher, scan.count())
		}
	})
}

func TestEmbeddedModeWithAnIntermediateKeepsTheRootKeyOffTheHost(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	opts, dir := embeddedOptions(t, bin)
	root, err := trust.LoadKeyPair(opts.TrustAnchorPath, opts.UpstreamKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := trust.NewIntermediate(root, "spire.root.linkerd.cluster.local", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	opts.UpstreamCertPath, opts.UpstreamKeyPath = filepath.Join(dir, "spire-ca.crt"), filepath.Join(dir, "spire-ca.key")
	if err := inter.WriteFiles(opts.UpstreamCertPath, opts.UpstreamKeyPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil { // only ca.crt stays
		t.Fatal(err)
	}
	logger, _ := testLogger(t)
	id := startIdentity(t, opts, logger)

	assertChainsTo(t, id.SVID().Certificates, opts.TrustAnchorPath)
	chain := id.SVID().Certificates
	if got := chain[len(chain)-1]; !bytes.Equal(got.Raw, inter.Cert.Raw) {
		t.Errorf("the chain ends at %q, want the intermediate", got.Subject.CommonName)
	}
}

func TestAKilledAgentIsRestartedAndTheIdentityRecovers(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	opts, _ := embeddedOptions(t, bin)
	logger, _ := testLogger(t)
	id := startIdentity(t, opts, logger)

	old := id.Agent().Pid()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "a new spire-agent process", func() bool {
		p := id.Agent().Pid()
		return p != 0 && p != old
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svid, err := FetchSVID(ctx, FetchOptions{SocketPath: id.SocketPath(), ID: opts.SPIFFEID(), UID: DefaultProxyUID, GID: DefaultProxyUID, TrustAnchorPath: opts.TrustAnchorPath})
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	assertChainsTo(t, svid.Certificates, opts.TrustAnchorPath)
}

func TestEmbeddedModeStartsAgainAfterACrashLeftStateAndSockets(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	opts, _ := embeddedOptions(t, bin)
	logger, _ := testLogger(t)

	// First run: nothing restarts, and both processes die by SIGKILL, as
	// they would with the machine's power.
	first := opts
	first.Starter = noRestart(ExecStarter(logger, time.Second))
	id := startIdentity(t, first, logger)
	for _, p := range []Process{id.Agent(), id.Server()} {
		if err := syscall.Kill(p.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.Done()
	}
	l := opts.withDefaults().layout()
	for _, s := range []string{l.serverSocket, opts.SocketPath} {
		if _, err := os.Stat(s); err != nil {
			t.Fatalf("expected the crash to leave %s behind: %v", s, err)
		}
	}

	second := startIdentity(t, opts, logger)
	assertChainsTo(t, second.SVID().Certificates, opts.TrustAnchorPath)
}

func TestStopEndsEverySPIREProcess(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	opts, dir := embeddedOptions(t, bin)
	logger, _ := testLogger(t)
	id, err := Start(context.Background(), opts, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := id.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Process{id.Agent(), id.Server()} {
		select {
		case <-p.Done():
		default:
			t.Errorf("a process is still running after Stop")
		}
	}
	assertNoProcessUnder(t, dir)
	if _, err := os.Stat(opts.withDefaults().layout().tokenFile); err == nil {
		t.Error("the join token file outlived Stop")
	}
}

// noRestart makes every command of s one-shot.
func noRestart(s Starter) Starter {
	return func(ctx context.Context, c Command) (Process, error) {
		c.Restart = false
		return s(ctx, c)
	}
}

func readToken(t *testing.T, opts Options) string {
	t.Helper()
	b, err := os.ReadFile(opts.withDefaults().layout().tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		t.Fatalf("join token %q looks too short to search for", tok)
	}
	return tok
}

// secretNeedles are strings that must not leak: the token, the PEM marker
// of a private key, and slices of the key's base64 body.
func secretNeedles(t *testing.T, token, keyPath string) []string {
	t.Helper()
	data, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("no PEM in %s", keyPath)
	}
	body := strings.Join(strings.Split(strings.TrimSpace(string(data)), "\n")[1:2], "")
	return []string{token, "PRIVATE KEY", body[:32], body[len(body)-32:]}
}

type procHit struct {
	pid  int
	file string // cmdline or environ
	exe  string
	data []byte
}

type procScan struct {
	mu   sync.Mutex
	hits map[string]procHit
	done chan struct{}
	wg   sync.WaitGroup
}

// startProcScan reads /proc/*/cmdline and /proc/*/environ every few
// milliseconds until stop, keeping each distinct content.
func startProcScan(t *testing.T) *procScan {
	t.Helper()
	s := &procScan{hits: map[string]procHit{}, done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			s.once()
			select {
			case <-s.done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *procScan) once() {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscan(filepath.Base(d), &pid); err != nil {
			continue
		}
		exe, _ := os.Readlink(d + "/exe")
		for _, f := range []string{"cmdline", "environ"} {
			data, err := os.ReadFile(d + "/" + f)
			if err != nil || len(data) == 0 {
				continue
			}
			key := f + "\x00" + string(data)
			s.mu.Lock()
			if _, ok := s.hits[key]; !ok {
				s.hits[key] = procHit{pid: pid, file: f, exe: exe, data: data}
			}
			s.mu.Unlock()
		}
	}
}

func (s *procScan) stop() []procHit {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]procHit, 0, len(s.hits))
	for _, h := range s.hits {
		out = append(out, h)
	}
	return out
}

func (s *procScan) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.hits)
}

// assertNoProcessUnder fails if a process's command line mentions dir (the
// test's own temporary directory, so only processes this test started).
func assertNoProcessUnder(t *testing.T, dir string) {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err == nil && bytes.Contains(data, []byte(dir)) {
			t.Errorf("process %s still runs: %s", filepath.Base(filepath.Dir(f)), bytes.ReplaceAll(data, []byte{0}, []byte{' '}))
		}
	}
}

// assertChainsTo verifies the chain with crypto/x509 alone, independently
// of the go-spiffe check Start made, against the anchor file.
func assertChainsTo(t *testing.T, chain []*x509.Certificate, anchorPath string) {
	t.Helper()
	data, err := os.ReadFile(anchorPath)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		t.Fatalf("no certificate in %s", anchorPath)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Errorf("SVID does not verify against %s: %v", anchorPath, err)
	}
}
