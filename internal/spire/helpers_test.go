package spire

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/trust"
)

func TestMain(m *testing.M) {
	// Start re-executes this test binary as the proxy uid to fetch the SVID.
	RunFetcherIfRequested()
	os.Exit(m.Run())
}

// requireSPIRE returns the directory holding spire-server and spire-agent,
// or skips the test (fails it when MESHEXP_REQUIRE_SPIRE is set, as in CI).
// It also needs root: SPIRE's unix attestation and the proxy uid do.
func requireSPIRE(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("MESHEXP_REQUIRE_SPIRE") != "" {
			t.Fatal("MESHEXP_REQUIRE_SPIRE is set but the test is not running as root")
		}
		t.Skip("needs root: SPIRE tests switch to the proxy uid")
	}
	for _, dir := range spireBinDirs() {
		if isExecutable(filepath.Join(dir, "spire-server")) == nil && isExecutable(filepath.Join(dir, "spire-agent")) == nil {
			return dir
		}
	}
	msg := "spire-server/spire-agent not found (set MESHEXP_SPIRE_BIN_DIR to the directory hack/install-spire.sh prints)"
	if os.Getenv("MESHEXP_REQUIRE_SPIRE") != "" {
		t.Fatal(msg + "; MESHEXP_REQUIRE_SPIRE is set")
	}
	t.Skip(msg)
	return ""
}

// spireBinDirs is the lookup order of the tests: the variable, the install
// script's cache, then the product's own fallbacks.
func spireBinDirs() []string {
	var dirs []string
	if d := os.Getenv(BinDirEnv); d != "" {
		dirs = append(dirs, d)
	}
	cache := os.Getenv("MESHEXP_CACHE_DIR")
	if cache == "" {
		if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
			cache = filepath.Join(x, "meshexp")
		} else if h, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(h, ".cache", "meshexp")
		}
	}
	if cache != "" {
		dirs = append(dirs, filepath.Join(cache, "spire-v1.13.3"))
	}
	return append(dirs, DefaultBinDir)
}

// shortDir is a temporary directory with a short path (unix socket paths
// are limited to 107 bytes; t.TempDir names grow with the test's name),
// searchable by the proxy uid.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "mx")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// anchorFiles writes a fresh trust anchor into dir as ca.crt and ca.key.
func anchorFiles(t testing.TB, dir string) *trust.KeyPair {
	t.Helper()
	kp, err := trust.NewRoot(trust.DefaultTrustDomain, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.WriteFiles(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	return kp
}

// freePort returns a TCP port on 127.0.0.1 nobody listens on right now.
func freePort(t testing.TB) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(p)
	return uint16(n)
}

// embeddedOptions is embedded mode with the root anchor in a fresh dir.
func embeddedOptions(t testing.TB, bin string) (Options, string) {
	t.Helper()
	dir := shortDir(t)
	anchorFiles(t, dir)
	return Options{
		Mode:            ModeEmbedded,
		WorkloadName:    "vm-1",
		TrustAnchorPath: filepath.Join(dir, "ca.crt"),
		UpstreamKeyPath: filepath.Join(dir, "ca.key"),
		BinDir:          bin,
		DataDir:         filepath.Join(dir, "data"),
		SocketPath:      filepath.Join(dir, "run", "api.sock"),
		ServerPort:      freePort(t),
		Timeout:         60 * time.Second,
	}, dir
}

// logBuffer is a concurrency-safe log capture; its content is printed when
// the test fails.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

func testLogger(t testing.TB) (*slog.Logger, *logBuffer) {
	t.Helper()
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("captured log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// startIdentity starts opts and stops it when the test ends.
func startIdentity(t testing.TB, opts Options, logger *slog.Logger) *Identity {
	t.Helper()
	id, err := Start(context.Background(), opts, logger)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := id.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return id
}
