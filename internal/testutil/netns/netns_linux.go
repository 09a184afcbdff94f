//go:build linux

package netns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace (/run/netns/<Name>) made for one test.
type NS struct {
	Name string

	mu       sync.Mutex
	children []*Child
}

var seq atomic.Int64

// cleanupTimeout bounds each cleanup command; a hung `ip` must not hang the
// test binary.
const cleanupTimeout = 30 * time.Second

// New creates a network namespace with its loopback up and registers its
// removal (after killing every process the test started in it) with
// tb.Cleanup.
func New(tb testing.TB) *NS {
	tb.Helper()
	RequireRoot(tb)
	n := &NS{Name: fmt.Sprintf("mx%d-%d", os.Getpid(), seq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		tb.Fatalf("netns: create namespace %s: %v: %s", n.Name, err, out)
	}
	tb.Cleanup(func() { n.destroy(tb) })
	n.Run(tb, "ip", "link", "set", "lo", "up")
	// Links made here get their IPv6 link-local address at once, without
	// a second of duplicate address detection (no other host could hold
	// it); on a kernel without IPv6 there is nothing to set.
	_ = n.Command(context.Background(), "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0").Run()
	return n
}

// Path is the namespace's bind mount, usable with setns(2) or nsenter.
func (n *NS) Path() string { return "/run/netns/" + n.Name }

// Do runs fn on an OS thread that has entered the namespace. Sockets fn
// opens and processes it starts (exec.Cmd.Start) live in the namespace;
// goroutines fn starts do not. The thread returns to the host namespace
// afterwards, or is discarded if it cannot.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: open current namespace: %w", err)
			return
		}
		defer home.Close()
		target, err := os.Open(n.Path())
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: open %s: %w", n.Path(), err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: enter %s: %w", n.Name, err)
			return
		}
		err = fn()
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			// Only a thread back home may serve other goroutines; otherwise
			// the goroutine exits locked and the runtime kills the thread.
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Command returns a command that runs name inside the namespace through
// `ip netns exec`.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and fails the test if it fails;
// it returns the combined output.
func (n *NS) Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := n.Command(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("netns %s: %s %s: %v\n%s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Start starts cmd inside the namespace (the command's own settings, such as
// SysProcAttr.Credential, are kept). The caller waits for it.
func (n *NS) Start(cmd *exec.Cmd) error {
	return n.Do(cmd.Start)
}

// AddAddr adds an address (CIDR, e.g. "10.213.1.1/24") to a link inside the
// namespace; IPv6 addresses skip duplicate address detection so they are
// usable at once.
func (n *NS) AddAddr(tb testing.TB, link, cidr string) {
	tb.Helper()
	args := []string{"addr", "add", cidr, "dev", link}
	if strings.Contains(cidr, ":") {
		args = append(args, "nodad")
	}
	n.Run(tb, "ip", args...)
}

func (n *NS) destroy(tb testing.TB) {
	n.mu.Lock()
	children := n.children
	n.children = nil
	n.mu.Unlock()
	for _, c := range children {
		c.kill()
	}
	// Anything else still inside was started by this test (for example
	// through `ip netns exec`): end it by pid so the namespace can go.
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "pids", n.Name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				tb.Logf("netns %s: killing leftover process %d", n.Name, pid)
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		tb.Errorf("netns: delete namespace %s: %v: %s", n.Name, err, out)
	}
}
