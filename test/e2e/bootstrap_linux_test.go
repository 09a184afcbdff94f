//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBootstrapStartsInOrderInterceptsTrafficAndTearsDownCleanly is the
// product's main job from start to SIGTERM.
func TestBootstrapStartsInOrderInterceptsTrafficAndTearsDownCleanly(t *testing.T) {
	h := newHost(t)
	h.start()

	t.Run("phases ran in order", func(t *testing.T) {
		// The workload may answer before meshexp logs "running".
		h.waitFor("meshexp to log that it is running", 60*time.Second, func() error {
			if !slices.Contains(h.logMessages(), "running") {
				return errors.New("not yet")
			}
			return nil
		})
		msgs := h.logMessages()
		order := []string{"phase: identity", "identity ready", "phase: interception", "phase: proxy", "phase: waiting for proxy readiness", "phase: workload", "running"}
		last := -1
		for _, m := range order {
			i := slices.Index(msgs, m)
			if i < 0 {
				t.Fatalf("log lacks %q; messages: %q", m, msgs)
			}
			if i < last {
				t.Errorf("%q came out of order; messages: %q", m, msgs)
			}
			last = i
		}
	})

	t.Run("the workload runs as its own user", func(t *testing.T) {
		got, err := h.get("http://127.0.0.1:8000/whoami")
		if err != nil || !strings.Contains(got, "uid=65534 gid=65534") {
			t.Fatalf("whoami = %q, %v", got, err)
		}
	})

	t.Run("the workload's call to a peer goes through the outbound listener", func(t *testing.T) {
		peer := h.pair.PeerAddr4.String() + ":8080"
		got, err := h.get("http://127.0.0.1:8000/call?url=http://" + peer + "/")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, "outbound orig_dst="+peer) {
			t.Errorf("the peer call was not intercepted: %q", got)
		}
	})

	t.Run("a peer's request to the workload goes through the inbound listener", func(t *testing.T) {
		target := h.pair.Addr4.String() + ":8000"
		got, err := getIn(h.pair.Peer, "http://"+target+"/whoami")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, "inbound orig_dst="+target) {
			t.Errorf("the inbound request was not intercepted: %q", got)
		}
	})

	t.Run("IPv6 is intercepted both ways", func(t *testing.T) {
		peer := "[" + h.pair.PeerAddr6.String() + "]:8080"
		got, err := h.get("http://127.0.0.1:8000/call?url=http://" + peer + "/")
		if err != nil || !strings.Contains(got, "outbound orig_dst="+peer) {
			t.Errorf("the IPv6 peer call was not intercepted: %q, %v", got, err)
		}
		target := "[" + h.pair.Addr6.String() + "]:8000"
		got, err = getIn(h.pair.Peer, "http://"+target+"/whoami")
		if err != nil || !strings.Contains(got, "inbound orig_dst="+target) {
			t.Errorf("the inbound IPv6 request was not intercepted: %q, %v", got, err)
		}
	})

	t.Run("root processes other than the proxy are intercepted too", func(t *testing.T) {
		peer := h.pair.PeerAddr4.String() + ":9999"
		got, err := h.get("http://" + peer + "/")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(got, "outbound orig_dst="+peer) {
			t.Errorf("a root connection escaped interception: %q", got)
		}
	})

	t.Run("the workload cannot get the proxy's SVID", func(t *testing.T) {
		got, err := h.get("http://127.0.0.1:8000/svid")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, "no svid") {
			t.Errorf("the workload's uid obtained an SVID: %q", got)
		}
		if out, err := h.fetchAsProxy(20 * time.Second); err != nil || !strings.Contains(out, "BEGIN CERTIFICATE") {
			t.Errorf("the proxy's uid did not get the SVID: %v\n%s", err, out)
		}
	})

	h.signal(syscall.SIGTERM)
	if code := h.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	h.assertClean()
}

func TestKillingTheProxyEndsMeshexpWithTheProxysStatus(t *testing.T) {
	h := newHost(t)
	h.start()
	pid := h.pidOf(bins.proxy)
	if pid == 0 {
		t.Fatal("proxy process not found")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := h.wait(60 * time.Second); code != 128+9 {
		t.Errorf("exit status = %d, want %d (the proxy's)", code, 128+9)
	}
	h.assertClean()
}

func TestKillingTheWorkloadHonoursTheRestartPolicy(t *testing.T) {
	t.Run("on-failure restarts it", func(t *testing.T) {
		h := newHost(t, "MESHEXP_WORKLOAD_RESTART=on-failure")
		h.start()
		old := h.pidOf(bins.workload)
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		h.waitFor("a new workload process", 30*time.Second, func() error {
			if p := h.pidOf(bins.workload); p == 0 || p == old {
				return fmt.Errorf("no new workload yet")
			}
			_, err := h.get("http://127.0.0.1:8000/whoami")
			return err
		})
		h.signal(syscall.SIGTERM)
		if code := h.wait(60 * time.Second); code != 0 {
			t.Errorf("exit status = %d, want 0", code)
		}
		h.assertClean()
	})
	t.Run("never ends meshexp with the workload's status", func(t *testing.T) {
		h := newHost(t, "MESHEXP_WORKLOAD_RESTART=never")
		h.start()
		if err := syscall.Kill(h.pidOf(bins.workload), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code := h.wait(60 * time.Second); code != 128+9 {
			t.Errorf("exit status = %d, want %d (the workload's)", code, 128+9)
		}
		h.assertClean()
	})
}

func TestKillingTheSPIREAgentRestartsItAndIdentityRecovers(t *testing.T) {
	h := newHost(t)
	h.start()
	agent := h.pidOf("spire-agent")
	if agent == 0 {
		t.Fatal("spire-agent not found")
	}
	if err := syscall.Kill(agent, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a new spire-agent", 30*time.Second, func() error {
		if p := h.pidOf("spire-agent"); p == 0 || p == agent {
			return fmt.Errorf("no new agent yet")
		}
		return nil
	})
	if out, err := h.fetchAsProxy(60 * time.Second); err != nil || !strings.Contains(out, "BEGIN CERTIFICATE") {
		t.Fatalf("identity did not recover after the agent restart: %v\n%s", err, out)
	}
	h.signal(syscall.SIGTERM)
	if code := h.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
	h.assertClean()
}

func TestAfterMeshexpIsKilledItStartsAgainCleanly(t *testing.T) {
	h := newHost(t)
	h.start()
	h.signal(syscall.SIGKILL)
	h.wait(30 * time.Second)
	// Children die with meshexp (parent-death signal); the rules stay,
	// as after any crash.
	h.waitUntil("children to die with meshexp", 30*time.Second, func() error {
		if left := h.processesOf(); len(left) > 0 {
			return fmt.Errorf("still running: %v", left)
		}
		return nil
	})
	if !strings.Contains(h.natRules(), "PROXY_INIT") {
		t.Log("note: no rules survived the kill")
	}
	h.start()
	peer := h.pair.PeerAddr4.String() + ":8080"
	got, err := h.get("http://127.0.0.1:8000/call?url=http://" + peer + "/")
	if err != nil || !strings.Contains(got, "outbound orig_dst="+peer) {
		t.Fatalf("after restart the peer call was not intercepted: %q, %v", got, err)
	}
	if n := strings.Count(h.natRules(), "-j PROXY_INIT_OUTPUT"); n != 2 { // one jump per family
		t.Errorf("found %d OUTPUT jumps after the restart, want one per family:\n%s", n, h.natRules())
	}
	h.signal(syscall.SIGTERM)
	if code := h.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
	h.assertClean()
}

// TestNoZombiesWhenMeshexpIsPID1 runs meshexp as PID 1 of a new PID
// namespace with a workload that leaves an orphan behind, like a shell
// script that backgrounds a command and exits.
func TestNoZombiesWhenMeshexpIsPID1(t *testing.T) {
	h := newHost(t)
	wrapper := filepath.Join(h.base, "workload-with-orphans")
	script := fmt.Sprintf("#!/bin/sh\n(sleep 0.2 &)\n(sleep 0.3 &)\nexec %s\n", bins.workload)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h.env = append(h.env, "MESHEXP_WORKLOAD="+wrapper)
	h.start("unshare", "--pid", "--fork", "--mount-proc", "--kill-child")
	meshexpPID := h.pidOf("\x00" + bins.meshexp + " --log-format json bootstrap")
	if meshexpPID == 0 {
		t.Fatal("meshexp not found")
	}
	if nspid := nsPID(meshexpPID); nspid != "1" {
		t.Fatalf("meshexp is pid %s in its namespace, want 1", nspid)
	}
	h.waitFor("the orphans to be reaped", 30*time.Second, func() error {
		if z := zombiesIn(meshexpPID); len(z) > 0 {
			return fmt.Errorf("zombies: %v", z)
		}
		return nil
	})
	// SIGTERM to meshexp itself (PID 1 of the namespace).
	if err := syscall.Kill(meshexpPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := h.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
	h.assertClean()
}

// nsPID is a process's pid inside its own PID namespace.
func nsPID(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "NSpid:") {
			f := strings.Fields(l)
			return f[len(f)-1]
		}
	}
	return ""
}

// zombiesIn lists zombie processes in the PID namespace of pid.
func zombiesIn(pid int) []string {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return nil
	}
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if other, _ := os.Readlink("/proc/" + e.Name() + "/ns/pid"); other != ns {
			continue
		}
		var p int
		fmt.Sscan(e.Name(), &p)
		if st := procState(p); strings.HasPrefix(st, "Z") {
			out = append(out, e.Name()+" "+st)
		}
	}
	return out
}

// TestSIGHUPIsForwardedToTheWorkload: the sample workload does not handle
// SIGHUP, so it dies of it (129) and, with restart policy never, meshexp
// exits with that status.
func TestSIGHUPIsForwardedToTheWorkload(t *testing.T) {
	h := newHost(t)
	h.start()
	h.signal(syscall.SIGHUP)
	if code := h.wait(60 * time.Second); code != 128+int(syscall.SIGHUP) {
		t.Errorf("exit status = %d, want %d (the workload killed by the forwarded SIGHUP)", code, 128+int(syscall.SIGHUP))
	}
	h.assertClean()
}
