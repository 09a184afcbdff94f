package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/standin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	standin.Remove()
	os.Exit(code)
}

// waitFor bounds every wait in these tests; reaching it is a failure that
// says what was awaited, never a timing assertion.
const waitFor = 30 * time.Second

// defaultEnv is internal/proxyenv/testdata/default.env — exactly what
// meshexp hands the proxy by default — read as a map. Values may span lines
// (the trust anchors): a line that does not start a LINKERD2_PROXY_*
// assignment continues the previous value.
func defaultEnv(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "proxyenv", "testdata", "default.env"))
	if err != nil {
		t.Fatalf("reading meshexp's rendered proxy environment: %v", err)
	}
	start := regexp.MustCompile(`^LINKERD2_PROXY_[A-Z0-9_]+=`)
	env := map[string]string{}
	var last string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if start.MatchString(line) {
			name, value, _ := strings.Cut(line, "=")
			env[name], last = value, name
			continue
		}
		if last == "" {
			t.Fatalf("default.env: continuation line before any variable: %q", line)
		}
		env[last] += "\n" + line
	}
	return env
}

// runnableEnv adapts default.env to one process on this host: listeners on
// loopback with ports the kernel picks (the stand-in logs them), real trust
// anchors, and the given Workload API.
func runnableEnv(t *testing.T, anchorsPEM []byte, workloadAPI string) map[string]string {
	t.Helper()
	env := defaultEnv(t)
	for _, name := range []string{envInboundListenAddr, envOutboundListenAddr, envAdminListenAddr, envControlListenAddr} {
		env[name] = "127.0.0.1:0"
	}
	env[envTrustAnchors] = string(anchorsPEM)
	env[envSPIRESocket] = workloadAPI
	return env
}

func environ(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a running stand-in.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// start runs the stand-in with env. launch starts the command (for example
// inside a network namespace); nil means cmd.Start. The process is killed
// in t.Cleanup if it is still running.
func start(t *testing.T, env map[string]string, launch func(*exec.Cmd) error) *proc {
	t.Helper()
	cmd := exec.Command(standin.Build(t))
	cmd.Env = environ(env)
	p := &proc{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if launch == nil {
		launch = (*exec.Cmd).Start
	}
	if err := launch(cmd); err != nil {
		t.Fatalf("starting the stand-in: %v", err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("stand-in output:\n%s", p.out.String())
		}
	})
	return p
}

// logLine waits until the output has a line containing s and returns it.
func (p *proc) logLine(s string) string {
	p.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(p.out.String(), "\n") {
			if strings.Contains(line, s) {
				return line
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("stand-in exited (%v) before logging %q:\n%s", p.err, s, p.out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	p.t.Fatalf("waited %s for the stand-in to log %q:\n%s", waitFor, s, p.out.String())
	return ""
}

// addr is the address the stand-in logged for an interface ("Admin",
// "Inbound", "Outbound", "Tap").
func (p *proc) addr(iface string) string {
	p.t.Helper()
	line := p.logLine(iface + " interface on ")
	m := regexp.MustCompile(iface + ` interface on ([0-9a-fA-F.:\[\]]+)`).FindStringSubmatch(line)
	if m == nil {
		p.t.Fatalf("no address in %q", line)
	}
	return m[1]
}

// exit waits for the process to end and returns its exit status.
func (p *proc) exit() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitFor):
		p.t.Fatalf("waited %s for the stand-in to exit:\n%s", waitFor, p.out.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("waiting for the stand-in: %v", p.err)
	}
	return 0
}

// terminate sends SIGTERM and returns the exit status.
func (p *proc) terminate() int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	return p.exit()
}

// runToExit runs the stand-in to completion (it is expected to refuse to start)
// and returns its exit status and output.
func runToExit(t *testing.T, env map[string]string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cmd := exec.CommandContext(ctx, standin.Build(t))
	cmd.Env = environ(env)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the stand-in did not exit within %s; it was expected to refuse its environment:\n%s", waitFor, out)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("running the stand-in: %v", err)
	}
	return 0, string(out)
}

// get does an HTTP GET and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: waitFor}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of a metric line (name with labels) from
// /metrics text, or "" if absent.
func metric(text, series string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
