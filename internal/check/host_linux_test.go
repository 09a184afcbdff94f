//go:build linux

package check

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

// status runs f and classifies its outcome as Run would.
func status(t *testing.T, f func(context.Context) (string, error)) (Status, string) {
	t.Helper()
	r := runOne(context.Background(), Check{Run: f})
	t.Logf("%s %s %s", r.Status, r.Detail, r.Error)
	return r.Status, r.Detail + r.Error
}

func inNS(t *testing.T, n *netns.NS, f func(context.Context) (string, error)) (Status, string) {
	t.Helper()
	var st Status
	var msg string
	if err := n.Do(func() error { st, msg = status(t, f); return nil }); err != nil {
		t.Fatal(err)
	}
	return st, msg
}

func restoreBin(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

func TestNETADMINIsPresentForRootAndMissingForAnotherUser(t *testing.T) {
	n := netns.New(t)
	ctx := context.Background()
	if out, err := n.RunChild(ctx, t, nil, "netadmin"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("root: %q %v", out, err)
	}
	out, err := n.RunChild(ctx, t, netns.As(65534), "netadmin")
	if err != nil || !strings.Contains(out, "CAP_NET_ADMIN is not in") {
		t.Errorf("nobody: %q %v", out, err)
	}
}

func TestTheNATProbeAcceptsOwnerAndRedirectAndChangesNothing(t *testing.T) {
	for _, b := range []string{"iptables-nft-restore", "iptables-legacy-restore"} {
		t.Run(b, func(t *testing.T) {
			bin := restoreBin(t, b)
			save := strings.Replace(bin, "-restore", "-save", 1)
			n := netns.New(t)
			before := n.Run(t, save)
			if out, err := n.RunChild(context.Background(), t, nil, "natprobe", bin); err != nil || strings.TrimSpace(out) != "ok" {
				t.Errorf("root: %q %v", out, err)
			}
			if after := n.Run(t, save); stripComments(after) != stripComments(before) {
				t.Errorf("the probe created a table:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			// With the nat table in place the probe hands it a --test
			// transaction, which commits nothing either.
			n.Run(t, strings.Replace(bin, "-restore", "", 1), "-t", "nat", "-S")
			before = n.Run(t, save)
			if out, err := n.RunChild(context.Background(), t, nil, "natprobe", bin); err != nil || strings.TrimSpace(out) != "ok" {
				t.Errorf("root: %q %v", out, err)
			}
			if after := n.Run(t, save); strings.Contains(after, probeChain) || stripComments(after) != stripComments(before) {
				t.Errorf("the probe changed the rules:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			out, err := n.RunChild(context.Background(), t, netns.As(65534), "natprobe", bin)
			if err != nil || !strings.Contains(out, "refused a nat rule") {
				t.Errorf("without CAP_NET_ADMIN: %q %v", out, err)
			}
		})
	}
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestBackendConflictsAreFoundInTheRulesOfBothBackends(t *testing.T) {
	restoreBin(t, "iptables-legacy")
	restoreBin(t, "iptables-nft")
	conflicts := func(n *netns.NS, running bool) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			var dumps []Dump
			if err := n.Do(func() error { dumps = BackendDumps(ctx); return nil }); err != nil {
				return "", err
			}
			return Conflicts(dumps, "iptables-nft", running)
		}
	}
	t.Run("a clean namespace passes before the first start", func(t *testing.T) {
		n := netns.New(t)
		if st, msg := status(t, conflicts(n, false)); st != OK {
			t.Errorf("%s: %s", st, msg)
		}
	})
	t.Run("a running host without meshexp's chains fails", func(t *testing.T) {
		n := netns.New(t)
		if st, _ := status(t, conflicts(n, true)); st != Fail {
			t.Errorf("%s, want error", st)
		}
	})
	t.Run("PROXY_INIT chains in the other backend fail", func(t *testing.T) {
		n := netns.New(t)
		n.Run(t, "iptables-legacy", "-t", "nat", "-N", "PROXY_INIT_REDIRECT")
		st, msg := status(t, conflicts(n, false))
		if st != Fail || !strings.Contains(msg, "iptables-legacy holds PROXY_INIT chains") {
			t.Errorf("%s: %s", st, msg)
		}
	})
	t.Run("rules in both backends and Docker's chains warn", func(t *testing.T) {
		n := netns.New(t)
		n.Run(t, "iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT")
		n.Run(t, "iptables-nft", "-t", "nat", "-N", "DOCKER")
		n.Run(t, "iptables-nft", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT")
		st, msg := status(t, conflicts(n, false))
		if st != Warn || !strings.Contains(msg, "both backends hold rules") || !strings.Contains(msg, "Docker's chains") {
			t.Errorf("%s: %s", st, msg)
		}
	})
}

func TestThePortsCheckNamesTheProcessHoldingAPort(t *testing.T) {
	n := netns.New(t)
	ports := []Port{{Name: "proxy inbound", Proto: "tcp", Port: 4143}, {Name: "DNS", Proto: "udp", Port: 53}}
	if st, msg := inNS(t, n, PortsFree(ports, nil)); st != OK {
		t.Fatalf("free ports: %s %s", st, msg)
	}
	child := n.StartChild(t, nil, "listen", "127.0.0.1:4143")
	// Wait until the socket is listening (no time limit: the test's own).
	for {
		st, msg := inNS(t, n, PortsFree(ports, nil))
		if st == Fail {
			if !strings.Contains(msg, "proxy inbound tcp/4143 held by pid") {
				t.Errorf("message %q does not name the holder", msg)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Run("a child of meshexp may hold it on a running host", func(t *testing.T) {
		// The child's parent is this test binary, standing in for meshexp.
		comm := strings.TrimSpace(readFile(t, "/proc/self/comm"))
		st, msg := inNS(t, n, PortsFree(ports, DescendantOf(comm)))
		if st != OK || !strings.Contains(msg, "held by pid") {
			t.Errorf("%s %s", st, msg)
		}
		if st, _ := inNS(t, n, PortsFree(ports, DescendantOf("someone-else"))); st != Fail {
			t.Errorf("another parent: %s, want error", st)
		}
	})
	child.Kill()
}

func TestIPv6StateFollowsTheNamespace(t *testing.T) {
	n := netns.New(t)
	if st, msg := inNS(t, n, IPv6State("auto")); st != OK {
		t.Errorf("auto: %s %s", st, msg)
	}
	n.AddAddr(t, "lo", "2001:db8::1/128")
	if st, msg := inNS(t, n, IPv6State("off")); st != Warn {
		t.Errorf("off with a global address: %s %s", st, msg)
	}
	n.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	if st, msg := inNS(t, n, IPv6State("on")); st != Fail {
		t.Errorf("on with IPv6 disabled: %s %s", st, msg)
	}
}

func TestTCPReachCarriesTheControlMark(t *testing.T) {
	n := netns.New(t)
	// Only marked connections get through: unmarked SYNs are rejected.
	n.Run(t, "iptables-nft", "-A", "OUTPUT", "-p", "tcp", "--dport", "8086", "-m", "mark", "!", "--mark", "0x1000", "-j", "REJECT", "--reject-with", "tcp-reset")
	var l net.Listener
	if err := n.Do(func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:8086"); return }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if st, msg := inNS(t, n, TCPReach("127.0.0.1:8086", 0x1000)); st != OK {
		t.Errorf("marked: %s %s", st, msg)
	}
	if st, _ := inNS(t, n, TCPReach("127.0.0.1:8086", 0)); st != Fail {
		t.Errorf("unmarked: %s, want error (the rule rejects it)", st)
	}
	if st, _ := inNS(t, n, TCPReach("127.0.0.1:8090", 0x1000)); st != Fail {
		t.Errorf("closed port: %s, want error", st)
	}
}

func TestResolveFailsOnANameThatDoesNotExist(t *testing.T) {
	if st, _ := status(t, Resolve("localhost:8086")); st != OK {
		t.Errorf("localhost: %s", st)
	}
	if st, _ := status(t, Resolve("linkerd-dst.invalid.:8086")); st != Fail {
		t.Errorf(".invalid: %s", st)
	}
	if st, _ := status(t, Resolve("no-port")); st != Fail {
		t.Errorf("no port: %s", st)
	}
}
