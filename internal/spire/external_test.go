package spire

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer starts an embedded identity whose server the external agents
// of a test join (it has its own agent too, which does no harm).
func testServer(t *testing.T, bin string, change func(*Options)) (*Identity, Options) {
	t.Helper()
	opts, _ := embeddedOptions(t, bin)
	if change != nil {
		change(&opts)
	}
	logger, _ := testLogger(t)
	return startIdentity(t, opts, logger), opts
}

// newJoinToken asks the test server for a fresh join token whose agent may
// issue the workload's SVID (the entry exists already).
func newJoinToken(t *testing.T, server Options) string {
	t.Helper()
	o := server.withDefaults()
	conn, err := dialUnix(o.layout().serverSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := register(ctx, conn, registration{trustDomain: o.TrustDomain, workload: o.WorkloadName, proxyUID: o.ProxyUID, tokenTTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// externalOptions joins the test server from a new directory.
func externalOptions(t *testing.T, bin string, server Options) (Options, string) {
	t.Helper()
	dir := shortDir(t)
	return Options{
		Mode:            ModeExternal,
		WorkloadName:    server.WorkloadName,
		TrustAnchorPath: server.TrustAnchorPath,
		BinDir:          bin,
		DataDir:         filepath.Join(dir, "data"),
		SocketPath:      filepath.Join(dir, "run", "api.sock"),
		ServerAddress:   "127.0.0.1",
		ServerPort:      server.ServerPort,
		Timeout:         60 * time.Second,
	}, dir
}

// recorder is a Starter that remembers every process it started.
type recorder struct {
	next  Starter
	mu    sync.Mutex
	procs []Process
}

func (r *recorder) start(ctx context.Context, c Command) (Process, error) {
	p, err := r.next(ctx, c)
	if err == nil {
		r.mu.Lock()
		r.procs = append(r.procs, p)
		r.mu.Unlock()
	}
	return p, err
}

// assertAllGone fails unless every recorded process has ended for good.
func (r *recorder) assertAllGone(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.procs {
		select {
		case <-p.Done():
		default:
			t.Errorf("process %d is still running after Start failed", p.Pid())
		}
	}
}

func TestExternalModeJoinsAServerWithATokenFromAFile(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	_, server := testServer(t, bin, nil)
	opts, dir := externalOptions(t, bin, server)
	opts.JoinTokenFile = filepath.Join(dir, "token")
	if err := os.WriteFile(opts.JoinTokenFile, []byte(newJoinToken(t, server)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logger, _ := testLogger(t)
	id := startIdentity(t, opts, logger)
	assertChainsTo(t, id.SVID().Certificates, opts.TrustAnchorPath)
	if id.Server() != nil {
		t.Error("external mode started a server")
	}
}

func TestExistingModeUsesAnAgentStartedElsewhere(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	running, server := testServer(t, bin, nil)
	logger, _ := testLogger(t)
	id := startIdentity(t, Options{
		Mode:            ModeExisting,
		WorkloadName:    server.WorkloadName,
		TrustAnchorPath: server.TrustAnchorPath,
		SocketPath:      running.SocketPath(),
		Timeout:         30 * time.Second,
	}, logger)
	assertChainsTo(t, id.SVID().Certificates, server.TrustAnchorPath)
	if id.Agent() != nil || id.Server() != nil {
		t.Error("existing mode started a process")
	}
}

// failing runs Start expecting an error, and checks that nothing it
// started is left.
func failing(t *testing.T, opts Options, dir string) error {
	t.Helper()
	logger, _ := testLogger(t)
	next := opts.Starter
	if next == nil {
		next = ExecStarter(logger, time.Second)
	}
	rec := &recorder{next: next}
	opts.Starter = rec.start
	id, err := Start(context.Background(), opts, logger)
	if err == nil {
		id.Stop(context.Background())
		t.Fatal("Start succeeded")
	}
	t.Logf("Start: %v", err)
	rec.assertAllGone(t)
	if dir != "" {
		assertNoProcessUnder(t, dir)
	}
	return err
}

func TestFailuresAreClearAndLeaveNoProcess(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	running, server := testServer(t, bin, nil)

	t.Run("a used join token", func(t *testing.T) {
		tok := newJoinToken(t, server)
		first, _ := externalOptions(t, bin, server)
		first.JoinToken = tok
		logger, _ := testLogger(t)
		startIdentity(t, first, logger)

		second, dir := externalOptions(t, bin, server)
		second.JoinToken = tok
		err := failing(t, second, dir)
		if !strings.Contains(err.Error(), "does not exist or has already been used") {
			t.Errorf("want the used-token diagnosis, got: %v", err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Error("the used token was only noticed at the deadline")
		}
		if strings.Contains(err.Error(), tok) {
			t.Error("the error shows the token")
		}
	})
	t.Run("a server that cannot be reached", func(t *testing.T) {
		opts, dir := externalOptions(t, bin, server)
		opts.JoinToken = newJoinToken(t, server)
		opts.ServerPort = freePort(t)
		opts.Timeout = 8 * time.Second
		err := failing(t, opts, dir)
		if !strings.Contains(err.Error(), "cannot reach the SPIRE server at 127.0.0.1:") {
			t.Errorf("want the unreachable-server diagnosis, got: %v", err)
		}
	})
	t.Run("a trust bundle that is not the server's", func(t *testing.T) {
		opts, dir := externalOptions(t, bin, server)
		opts.JoinToken = newJoinToken(t, server)
		anchorFiles(t, dir) // another root, in the agent's directory
		opts.TrustBundlePath = filepath.Join(dir, "ca.crt")
		err := failing(t, opts, dir)
		if !strings.Contains(err.Error(), "does not trust the server") {
			t.Errorf("want the trust-bundle diagnosis, got: %v", err)
		}
	})
	t.Run("an embedded server signing with another root than the trust anchor", func(t *testing.T) {
		opts, dir := embeddedOptions(t, bin)
		other := shortDir(t)
		anchorFiles(t, other)
		opts.UpstreamCertPath, opts.UpstreamKeyPath = filepath.Join(other, "ca.crt"), filepath.Join(other, "ca.key")
		err := failing(t, opts, dir)
		var oe *OptionError
		if !errors.As(err, &oe) || !strings.Contains(err.Error(), "does not chain to the trust anchor") {
			t.Errorf("want an UpstreamCertPath error, got: %v", err)
		}
	})
	t.Run("a socket path too long", func(t *testing.T) {
		opts, dir := embeddedOptions(t, bin)
		opts.SocketPath = filepath.Join(dir, strings.Repeat("s", 100), "api.sock")
		err := failing(t, opts, dir)
		if !strings.Contains(err.Error(), "SocketPath") || !strings.Contains(err.Error(), "at most 107") {
			t.Errorf("want a SocketPath length error, got: %v", err)
		}
		if _, err := os.Stat(opts.DataDir); err == nil {
			t.Error("the data dir was created although the options were refused")
		}
	})
	t.Run("an existing agent the proxy uid may not reach", func(t *testing.T) {
		closed := filepath.Join(shortDir(t), "closed")
		if err := os.Mkdir(closed, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(running.SocketPath(), filepath.Join(closed, "api.sock")); err != nil {
			t.Fatal(err)
		}
		err := failing(t, Options{
			Mode: ModeExisting, WorkloadName: "vm-1", TrustAnchorPath: server.TrustAnchorPath,
			SocketPath: filepath.Join(closed, "api.sock"), Timeout: 3 * time.Second,
		}, "")
		if !strings.Contains(err.Error(), "uid 2102 may not reach") {
			t.Errorf("want the permission hint, got: %v", err)
		}
	})
	t.Run("an existing agent that is not there", func(t *testing.T) {
		dir := shortDir(t)
		err := failing(t, Options{
			Mode: ModeExisting, WorkloadName: "vm-1", TrustAnchorPath: server.TrustAnchorPath,
			SocketPath: filepath.Join(dir, "api.sock"), Timeout: 3 * time.Second,
		}, dir)
		if !strings.Contains(err.Error(), "no verified SVID within 3s") || !strings.Contains(err.Error(), "no SPIRE agent is serving the Workload API") {
			t.Errorf("want a deadline error saying no agent serves the socket, got: %v", err)
		}
	})
}
