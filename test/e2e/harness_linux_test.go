//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/spire"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
	"github.com/meshexp/meshexp/internal/testutil/netns"
	"github.com/meshexp/meshexp/internal/testutil/standin"
	"github.com/meshexp/meshexp/internal/trust"
)

// binaries are built once per test binary into a world-readable directory,
// so the proxy uid and the workload uid can execute them.
var bins struct {
	once                          sync.Once
	err                           error
	dir, meshexp, proxy, workload string
}

func TestMain(m *testing.M) {
	// The parallel tests (see doc.go) mostly wait for certificates to age,
	// so they all run at once, not GOMAXPROCS at a time; -parallel given
	// on the command line still wins.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		flag.Set("test.parallel", "8")
	}
	code := func() int {
		defer func() {
			if bins.dir != "" {
				os.RemoveAll(bins.dir)
			}
		}()
		defer kubetest.Stop()
		return m.Run()
	}()
	os.Exit(code)
}

func build(t testing.TB) {
	t.Helper()
	bins.once.Do(func() {
		bins.proxy = standin.Build(t) // fails t on an error
		dir, err := os.MkdirTemp("", "mx-e2e-bin-")
		if err != nil {
			bins.err = err
			return
		}
		bins.dir = dir
		if bins.err = os.Chmod(dir, 0o755); bins.err != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{
			{"meshexp", "github.com/meshexp/meshexp/cmd/meshexp"},
			{"workload", "github.com/meshexp/meshexp/test/workload"},
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				bins.err = fmt.Errorf("building %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
		bins.meshexp = filepath.Join(dir, "meshexp")
		if other := os.Getenv("MESHEXP_E2E_MESHEXP"); other != "" {
			// Another build of meshexp, e.g. an older commit's, to show
			// which tests it fails.
			bins.meshexp = other
		}
		bins.workload = filepath.Join(dir, "workload")
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	if bins.proxy == "" || bins.workload == "" {
		t.Fatal("the test binaries were not built: see the first test's failure")
	}
}

// requirements skips (or, in CI, fails) without root and SPIRE.
func requirements(t testing.TB) string {
	t.Helper()
	required := os.Getenv("MESHEXP_REQUIRE_SPIRE") != ""
	if os.Geteuid() != 0 {
		if required {
			t.Fatal("MESHEXP_REQUIRE_SPIRE is set but the test is not running as root")
		}
		t.Skip("skipped: end-to-end tests need root (network namespaces, rules, uids)")
	}
	dir := os.Getenv("MESHEXP_SPIRE_BIN_DIR")
	if _, err := os.Stat(filepath.Join(dir, "spire-server")); dir == "" || err != nil {
		msg := "SPIRE binaries not found: run hack/install-spire.sh and set MESHEXP_SPIRE_BIN_DIR"
		if required {
			t.Fatal(msg + "; MESHEXP_REQUIRE_SPIRE is set")
		}
		t.Skip("skipped: " + msg)
	}
	return dir
}

// host is one `meshexp bootstrap` run in the namespace of a pair.
type host struct {
	t      testing.TB
	pair   *netns.Pair
	base   string // every file of the run lives below it
	env    []string
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
	status int
	// netOnly runs meshexp with nsenter --net rather than ip netns exec,
	// which also gives it a private mount namespace where /sys (and so the
	// cgroup hierarchies) is not mounted: the way systemd or a container
	// runtime starts it, with cgroups.
	netOnly bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// newHost prepares a run: a namespace pair, a trust anchor and the
// environment of the demo's podman line plus meshexp's test settings.
func newHost(t testing.TB, extraEnv ...string) *host {
	t.Helper()
	requirements(t)
	return newHostIn(t, netns.NewPair(t), extraEnv...)
}

// newHostIn prepares a run in an existing namespace pair, with its own
// files (a second instance beside a first one).
func newHostIn(t testing.TB, pair *netns.Pair, extraEnv ...string) *host {
	t.Helper()
	spireBin := requirements(t)
	build(t)
	// Short base path: SPIRE's unix sockets live below it.
	base, err := os.MkdirTemp("/tmp", "mxe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(base, "certs")
	if err := os.Mkdir(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := trust.NewRoot(trust.DefaultTrustDomain, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.WriteFiles(filepath.Join(certs, "ca.crt"), filepath.Join(certs, "ca.key")); err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, pair: pair, base: base, logs: &syncBuffer{}}
	h.env = append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"WORKLOAD_NAME=web", "WORKLOAD_NAMESPACE=e2e", "NODE_NAME=vm-1",
		"MESHEXP_TRUST_ANCHOR_DIR=" + certs,
		"MESHEXP_SPIRE_MODE=embedded",
		"MESHEXP_SPIRE_BIN_DIR=" + spireBin,
		"MESHEXP_SPIRE_DATA_DIR=" + filepath.Join(base, "spire"),
		"MESHEXP_SPIRE_SOCKET=" + filepath.Join(base, "run", "api.sock"),
		"MESHEXP_PROXY_BIN=" + bins.proxy,
		"MESHEXP_WORKLOAD=" + bins.workload,
		"MESHEXP_WORKLOAD_USER=65534:65534",
		"MESHEXP_SHUTDOWN_GRACE=3s",
		"MESHEXP_TEST_SPIRE_SOCKET=" + filepath.Join(base, "run", "api.sock"),
		"WORKLOAD_LISTEN=:8000",
		// The control plane's addresses are IP literals in the peer
		// namespace (nothing listens there), so `meshexp check` never
		// sends a DNS query to the machine's resolver.
		"MESHEXP_DESTINATION_ADDR=" + net.JoinHostPort(pair.PeerAddr4.String(), "8086"),
		"MESHEXP_POLICY_ADDR=" + net.JoinHostPort(pair.PeerAddr4.String(), "8090"),
	}, extraEnv...)
	t.Cleanup(func() {
		if h.cmd != nil && h.cmd.Process != nil {
			select {
			case <-h.exited:
			default:
				h.cmd.Process.Kill()
				<-h.exited
			}
		}
		if t.Failed() {
			t.Logf("meshexp output:\n%s", h.logs.String())
		}
	})
	return h
}

// start runs `meshexp bootstrap` (with wrapper, e.g. unshare, in front)
// and waits until the workload answers.
func (h *host) start(wrapper ...string) {
	h.t.Helper()
	h.startNoWait(wrapper...)
	h.waitFor("the workload to answer on :8000", 120*time.Second, func() error {
		_, err := h.get("http://127.0.0.1:8000/whoami")
		return err
	})
}

// startNoWait starts `meshexp bootstrap` and returns at once.
func (h *host) startNoWait(wrapper ...string) {
	h.t.Helper()
	args := append(append([]string{}, wrapper...), bins.meshexp, "--log-format", "json", "bootstrap")
	h.cmd = h.pair.NS.Command(context.Background(), args[0], args[1:]...)
	if h.netOnly {
		h.cmd = exec.Command("nsenter", append([]string{"--net=" + h.pair.NS.Path()}, args...)...)
	}
	h.cmd.Env = h.env
	h.cmd.Dir = h.base // a core dump of a crash lands there, removed with it
	h.cmd.Stdout, h.cmd.Stderr = h.logs, h.logs
	h.exited = make(chan struct{})
	if err := h.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() {
		err := h.cmd.Wait()
		h.status = exitStatus(err)
		close(h.exited)
	}()
}

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return -1
}

// waitFor polls f until it succeeds, meshexp exits, or the deadline passes.
func (h *host) waitFor(what string, d time.Duration, f func() error) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		select {
		case <-h.exited:
			h.t.Fatalf("meshexp exited with status %d while waiting for %s (last error: %v)", h.status, what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	h.t.Fatalf("waited %s for %s: %v", d, what, err)
}

// waitUntil polls f until it succeeds or the deadline passes, whether or
// not meshexp runs (for checks after meshexp was killed on purpose).
func (h *host) waitUntil(what string, d time.Duration, f func() error) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("waited %s for %s: %v", d, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// wait waits for meshexp to exit and returns its status.
func (h *host) wait(d time.Duration) int {
	h.t.Helper()
	select {
	case <-h.exited:
		return h.status
	case <-time.After(d):
		h.t.Fatalf("meshexp did not exit within %s", d)
		return -1
	}
}

// get fetches url from inside the host namespace, as root.
func (h *host) get(url string) (string, error) { return getIn(h.pair.NS, url) }

func getIn(ns *netns.NS, url string) (string, error) {
	var body string
	err := ns.Do(func() error {
		conn, err := dialURL(url)
		if err != nil {
			return err
		}
		b, err := httpOver(conn, url)
		body = b
		return err
	})
	return body, err
}

// dialURL opens the connection on the calling (namespaced) thread; the HTTP
// exchange can then run anywhere.
func dialURL(url string) (net.Conn, error) {
	hostport := strings.TrimPrefix(url, "http://")
	if i := strings.IndexByte(hostport, '/'); i >= 0 {
		hostport = hostport[:i]
	}
	return net.DialTimeout("tcp", hostport, 3*time.Second)
}

func httpOver(conn net.Conn, url string) (string, error) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	return string(b), err
}

// signal sends sig to meshexp (the first process of the command).
func (h *host) signal(sig syscall.Signal) {
	h.t.Helper()
	if err := h.cmd.Process.Signal(sig); err != nil {
		h.t.Fatal(err)
	}
}

// logMessages returns the msg field of each JSON log line of meshexp itself
// (children's lines carry a "child" attribute and are left out).
func (h *host) logMessages() []string {
	var out []string
	for _, line := range strings.Split(h.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if _, child := rec["child"]; child {
			continue
		}
		if m, ok := rec["msg"].(string); ok {
			out = append(out, m)
		}
	}
	return out
}

// processesOf lists the live processes meshexp left or started in the
// host's namespace (meshexp itself excluded): its children and theirs.
func (h *host) processesOf() []string {
	var out []string
	for _, p := range h.procs() {
		if h.cmd == nil || p.pid != h.cmd.Process.Pid {
			out = append(out, fmt.Sprintf("%d (%s) %s", p.pid, p.state, p.cmdline))
		}
	}
	return out
}

type proc struct {
	pid            int
	state, cmdline string
}

// procs lists the live processes in the host's network namespace. Only
// this run's processes are there: other hosts, other test packages and
// the machine run the same binaries (a spire-agent, a proxy) elsewhere,
// and a test must never find, let alone kill, one of theirs.
func (h *host) procs() []proc {
	netns := "net:[" + h.netnsIno() + "]"
	var out []proc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net")); err != nil || ns != netns {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		state := procState(pid)
		if err != nil || strings.HasPrefix(state, "Z") || state == "?" {
			continue
		}
		out = append(out, proc{pid, state, strings.ReplaceAll(string(cmdline), "\x00", " ")})
	}
	return out
}

func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "State:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "State:"))
		}
	}
	return "?"
}

// pidOf finds the live process of this run whose command line contains
// needle; a needle starting with NUL must match the start of the command
// line.
func (h *host) pidOf(needle string) int {
	for _, p := range h.procs() {
		match := strings.Contains(p.cmdline, needle)
		if rest, anchored := strings.CutPrefix(needle, "\x00"); anchored {
			match = strings.HasPrefix(p.cmdline, rest)
		}
		if match {
			return p.pid
		}
	}
	return 0
}

// natRules returns the nat table of the host namespace (IPv4 and IPv6),
// without the save tools' timestamped comments and chain counters, so two
// dumps of the same rules compare equal.
func (h *host) natRules() string {
	var out strings.Builder
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		o, _ := h.pair.NS.Command(context.Background(), save, "-t", "nat").CombinedOutput()
		for _, line := range strings.Split(string(o), "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			if strings.HasPrefix(line, ":") {
				line, _, _ = strings.Cut(line, " [")
			}
			out.WriteString(line + "\n")
		}
	}
	return out.String()
}

// assertClean checks that no child process and no meshexp rule is left.
func (h *host) assertClean() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := h.processesOf()
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			h.t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rules := h.natRules(); strings.Contains(rules, "PROXY_INIT") {
		h.t.Errorf("interception rules left behind:\n%s", rules)
	}
}

// fetchAsProxy asks the Workload API for the workload's SVID as the proxy's
// uid, the way meshexp verifies it, and returns the fetcher's output.
func (h *host) fetchAsProxy(timeout time.Duration) (string, error) {
	args := append(append([]string{}, spire.FetcherArgs...), "-socket", filepath.Join(h.base, "run", "api.sock"),
		"-id", "spiffe://root.linkerd.cluster.local/web", "-timeout", timeout.String())
	// A unix socket is reached by path from any network namespace, and
	// `ip netns exec` cannot run as a non-root uid.
	cmd := exec.Command(bins.meshexp, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 2102, Gid: 2102, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// stopCleanly ends meshexp with SIGTERM, expects exit 0 and checks that
// nothing is left.
func (h *host) stopCleanly() {
	h.t.Helper()
	h.signal(syscall.SIGTERM)
	if code := h.wait(60 * time.Second); code != 0 {
		h.t.Errorf("exit status = %d, want 0", code)
	}
	h.assertNothingLeft()
}
