//go:build linux

package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// envChild names the registered function a re-executed test binary runs.
const envChild = "MESHEXP_NETNS_CHILD"

// ChildFunc is a function run in a child process. args are those given to
// StartChild; what it writes to stdout is returned by Child.Wait. A non-nil
// error makes the child exit with status 1 and the error on stderr.
type ChildFunc func(ctx context.Context, args []string) error

var (
	childMu sync.Mutex
	childFn = map[string]ChildFunc{}
)

// Register makes fn runnable by StartChild under name. Call it from init or
// from TestMain before Main.
func Register(name string, fn ChildFunc) {
	childMu.Lock()
	defer childMu.Unlock()
	if _, dup := childFn[name]; dup {
		panic("netns: child function " + name + " registered twice")
	}
	childFn[name] = fn
}

// Main is the TestMain of packages that start children: in a child it runs
// the requested function and exits; otherwise it runs the tests.
//
//	func TestMain(m *testing.M) { netns.Main(m) }
func Main(m *testing.M) {
	if name := os.Getenv(envChild); name != "" {
		os.Exit(runChild(name, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func runChild(name string, args []string) int {
	childMu.Lock()
	fn := childFn[name]
	childMu.Unlock()
	if fn == nil {
		names := make([]string, 0, len(childFn))
		for n := range childFn {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "netns child: no function %q registered (have %s)\n", name, strings.Join(names, ", "))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := fn(ctx, args); err != nil {
		fmt.Fprintf(os.Stderr, "netns child %s: %v\n", name, err)
		return 1
	}
	return 0
}

// As returns credentials for a child running as uid (and gid = uid).
func As(uid uint32) *syscall.Credential {
	return &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}
}

// Child is a registered function running in its own process inside a
// namespace.
type Child struct {
	Name string
	cmd  *exec.Cmd
	out  bytes.Buffer
	err  bytes.Buffer
	done chan struct{}
	werr error
}

// StartChild runs the registered function name with args in a new process
// inside the namespace, with cred (nil: the test's own, root). The test
// binary must use Main as its TestMain. The child is killed in cleanup if it
// is still running, and it dies with the test process (Pdeathsig).
func (n *NS) StartChild(tb testing.TB, cred *syscall.Credential, name string, args ...string) *Child {
	tb.Helper()
	// /proc/self/exe is the test binary; opening it through the magic link
	// works for a non-root uid although `go test` keeps the binary in a
	// directory only root may enter.
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Args[0] = "netns-child-" + name
	cmd.Env = append(os.Environ(), envChild+"="+name)
	if _, set := os.LookupEnv("GORACE"); !set {
		// A -race binary otherwise sleeps a second at exit (ThreadSanitizer's
		// atexit_sleep_ms), which would dominate tests that run many children.
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	c := &Child{Name: name, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &c.out, &c.err
	if err := n.Start(cmd); err != nil {
		tb.Fatalf("netns %s: start child %s: %v", n.Name, name, err)
	}
	go func() { c.werr = cmd.Wait(); close(c.done) }()
	n.mu.Lock()
	n.children = append(n.children, c)
	n.mu.Unlock()
	return c
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Wait waits for the child to exit and returns its stdout. A failure
// carries the child's stderr; ctx bounds the wait (the child is then
// killed).
func (c *Child) Wait(ctx context.Context) (string, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		c.kill()
		return c.out.String(), fmt.Errorf("netns child %s: still running when the wait ended (%w); killed it", c.Name, ctx.Err())
	}
	if c.werr != nil {
		return c.out.String(), fmt.Errorf("netns child %s: %w: %s", c.Name, c.werr, strings.TrimSpace(c.err.String()))
	}
	return c.out.String(), nil
}

// Kill sends SIGKILL to the child and waits for it to be reaped.
func (c *Child) Kill() { c.kill() }

func (c *Child) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	// The child leads its own process group (Setpgid), so this ends it and
	// anything it started, and nothing else.
	if err := syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return
	}
	<-c.done
}

// RunChild starts a child and waits for it; see StartChild.
func (n *NS) RunChild(ctx context.Context, tb testing.TB, cred *syscall.Credential, name string, args ...string) (string, error) {
	tb.Helper()
	return n.StartChild(tb, cred, name, args...).Wait(ctx)
}
