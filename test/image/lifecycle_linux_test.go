//go:build linux

package image

import (
	"context"
	"strings"
	"testing"
)

// served waits until the host's request to the published port reaches the
// proxy's inbound listener.
func (c *ctr) served() {
	c.t.Helper()
	c.waitRunning()
	c.waitFor("the published port to answer through the proxy", func() error {
		_, err := httpGet(context.Background(), "http://127.0.0.1:8000/")
		return err
	})
}

func TestDockerKillThenRunAgainWorks(t *testing.T) {
	d := newDemo(t)
	web := name("web")
	c := run(t, web, d.seedLine(web, env.example))
	c.served()
	t.Log("served; docker kill")
	must(t, "kill", web)
	t.Log("killed")
	if st := c.wait(); st != 137 {
		t.Fatalf("docker run after docker kill exited %d, want 137 (SIGKILL)", st)
	}
	t.Log("docker run exited; running again")
	again := run(t, web, d.seedLine(web, env.example))
	again.served()
	t.Log("served again")
	must(t, "stop", web)
	if st := again.wait(); st != 0 {
		t.Fatalf("second run: docker stop → exit %d, want 0", st)
	}
}

func TestDockerRestartWorks(t *testing.T) {
	d := newDemo(t)
	web := name("web")
	c := run(t, web, d.seedLine(web, env.example))
	c.served()
	must(t, "restart", "-t", "30", web)
	// The same container, its network namespace and file system kept: the
	// second start replaces what the first left (nothing, after a clean
	// teardown) and serves again.
	c.waitFor("a second start after docker restart", func() error {
		logs, _ := docker("logs", web)
		if strings.Count(logs, "msg=running") < 2 {
			return errNotYet
		}
		return nil
	})
	if _, err := httpGet(context.Background(), "http://127.0.0.1:8000/"); err != nil {
		t.Fatal(err)
	}
	logs, _ := docker("logs", web)
	assertTeardown(t, logs)
	rules := must(t, "exec", web, "iptables-save", "-t", "nat")
	if n := strings.Count(rules, "-j PROXY_INIT_REDIRECT"); n != 1 {
		t.Fatalf("after restart the PREROUTING jump appears %d times, want 1:\n%s", n, rules)
	}
	must(t, "stop", web)
}

func TestWithoutNetAdminExits2NamingTheCapability(t *testing.T) {
	d := newDemo(t)
	web := name("web")
	line := d.seedLine(web, env.example)
	var without []string
	for _, a := range line {
		if a != "--cap-add=NET_ADMIN" {
			without = append(without, a)
		}
	}
	c := run(t, web, without)
	if st := c.wait(); st != 2 {
		t.Fatalf("exit %d without NET_ADMIN, want 2\n%s", st, c.out.String())
	}
	out := c.out.String()
	for _, want := range []string{"NET_ADMIN", "--cap-add=NET_ADMIN"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, started := range []string{"phase: identity", "child started"} {
		if strings.Contains(out, started) {
			t.Errorf("something started before the refusal (%q):\n%s", started, out)
		}
	}
}

// A read-only root file system works when the places meshexp and SPIRE
// write to are tmpfs: /run (sockets), /var/lib/meshexp (SPIRE's data) and
// /tmp.
func TestReadOnlyRootWithTmpfsWorks(t *testing.T) {
	d := newDemo(t)
	web := name("web")
	c := run(t, web, d.seedLine(web, env.example,
		"--read-only", "--tmpfs", "/run", "--tmpfs", "/var/lib/meshexp", "--tmpfs", "/tmp"))
	c.served()
	must(t, "stop", web)
	if st := c.wait(); st != 0 {
		t.Fatalf("docker stop → exit %d, want 0", st)
	}
}

func TestReadOnlyRootWithoutTmpfsFailsClearly(t *testing.T) {
	d := newDemo(t)
	web := name("web")
	c := run(t, web, d.seedLine(web, env.example, "--read-only"))
	st := c.wait()
	out := c.out.String()
	if st == 0 {
		t.Fatalf("exit 0 with a read-only root and nowhere to write\n%s", out)
	}
	if !strings.Contains(out, "read-only file system") {
		t.Fatalf("exit %d without naming the read-only file system:\n%s", st, out)
	}
	t.Logf("exit %d; the message:\n%s", st, lastLines(out, 3))
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// A root workload is an explicit opt-in: refused (exit 2) without
// MESHEXP_WORKLOAD_ALLOW_ROOT, and with it started as root after a warning
// that states what it costs.
func TestRootWorkloadOnlyWhenAllowed(t *testing.T) {
	d := newDemo(t)
	web := name("root")
	c := run(t, web, d.seedLine(web, env.example, "-e", "MESHEXP_WORKLOAD_USER=0:0"))
	if st := c.wait(); st != 2 {
		t.Fatalf("a root workload without the opt-in: exit %d, want 2\n%s", st, c.out.String())
	}
	if out := c.out.String(); !strings.Contains(out, "--workload-allow-root") || strings.Contains(out, "phase: identity") {
		t.Fatalf("want a refusal naming --workload-allow-root before anything starts:\n%s", out)
	}

	web = name("root")
	c = run(t, web, d.seedLine(web, env.example, "-e", "MESHEXP_WORKLOAD_USER=0:0", "-e", "MESHEXP_WORKLOAD_ALLOW_ROOT=true"))
	c.served()
	if out := c.out.String(); !strings.Contains(out, "can remove the interception rules") || !strings.Contains(out, "read ca.key") {
		t.Errorf("the start does not log the consequence of a root workload:\n%s", out)
	}
	top := must(t, "top", web, "-eo", "pid,uid,args")
	root := false
	for _, line := range strings.Split(top, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[1] == "0" && f[2] == "/workload/start" {
			root = true
		}
	}
	if !root {
		t.Errorf("want the workload as uid 0:\n%s", top)
	}
	must(t, "stop", web)
	if st := c.wait(); st != 0 {
		t.Fatalf("docker stop → exit %d, want 0", st)
	}
}
