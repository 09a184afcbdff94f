// Package standin gives tests the linkerd2-proxy stand-in (test/standin-proxy)
// and the parts it talks to: Build compiles the stand-in once per test
// binary, WorkloadAPI is an in-process SPIFFE Workload API server on a unix
// socket, and NewCA/MintSVID make the SVIDs it serves.
//
//	bin := standin.Build(t)
//	ca := standin.NewCA(t)
//	api := standin.NewWorkloadAPI(t)
//	api.Set(ca.MintSVID(t, "spiffe://root.linkerd.cluster.local/web", time.Hour))
//	cmd := exec.Command(bin)
//	cmd.Env = append(env, "LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET="+api.Addr(),
//		"LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS="+string(ca.RootPEM()))
package standin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// BinaryName is the stand-in's file name inside the directory Build makes.
const BinaryName = "linkerd2-proxy-standin"

const dirPrefix = "meshexp-standin-"

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Build compiles test/standin-proxy the first time it is called in a test
// binary and returns the executable's path. The directory and the binary are
// world-readable and executable, so a test may run the stand-in as another
// uid (meshexp runs the proxy as uid 2102). The directory is named after the
// test process and removed by a later Build once that process has exited,
// or at once by Remove (for a TestMain).
func Build(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() { buildPath, buildErr = build() })
	if buildErr != nil {
		tb.Fatalf("standin: %v", buildErr)
	}
	return buildPath
}

// Remove deletes the binary Build made, if any. Call it at the end of a
// TestMain; later calls to Build in the same process fail.
func Remove() {
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
}

func build() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	sweepStale()
	dir, err := os.MkdirTemp("", dirPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("making a directory for the stand-in: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("making %s readable by other uids: %w", dir, err)
	}
	out := filepath.Join(dir, BinaryName)
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goBin, "build", "-o", out, "./test/standin-proxy")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("go build ./test/standin-proxy in %s: %v\n%s", root, err, b)
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return "", fmt.Errorf("making %s executable by other uids: %w", out, err)
	}
	return out, nil
}

// moduleRoot is the directory of go.mod, found from this source file: the
// tests that call Build run from the source tree.
func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot find the source tree (runtime.Caller failed)")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	if _, err := os.Stat(filepath.Join(root, "test", "standin-proxy", "main.go")); err != nil {
		return "", fmt.Errorf("test/standin-proxy not found under %s: %w", root, err)
	}
	return filepath.Clean(root), nil
}

// sweepStale removes stand-in directories left by test processes that no
// longer run.
func sweepStale() {
	if _, err := os.Stat("/proc/self"); err != nil {
		return // no procfs: cannot tell which processes are gone
	}
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), dirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", pidStr)); os.IsNotExist(err) {
			os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
}
