//go:build linux

package supervise

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

// daemonSpec runs a shell that starts `sleep` in a new session (leaving
// its process group, as a daemon does), writes its pid to a file, then
// either exits 0 or keeps running.
func daemonSpec(t *testing.T, thenExit bool) (Spec, string) {
	pidfile := filepath.Join(t.TempDir(), "daemon.pid")
	tail := "exec sleep 1000"
	if thenExit {
		tail = "exit 0"
	}
	// The pid is written from inside the new session, and the shell goes
	// on only then: the daemon has left the group before its parent exits.
	script := fmt.Sprintf("setsid sh -c 'echo $$ > %[1]s.tmp && mv %[1]s.tmp %[1]s; exec sleep 1000' </dev/null >/dev/null 2>&1 & while [ ! -s %[1]s ]; do sleep 0.01; done; %[2]s", pidfile, tail)
	return Spec{
		Name:   "workload",
		Path:   "/bin/sh",
		Args:   []string{"-c", script},
		Grace:  2e9,
		Cgroup: fmt.Sprintf("meshexp-test-%d/%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")),
	}, pidfile
}

func readPID(t *testing.T, file string, settled bool) int {
	t.Helper()
	var pid int
	eventually.True(t, "the daemon's pid file", func() bool {
		b, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	if !settled {
		return pid
	}
	eventually.True(t, "the daemon to be in its own session, running sleep", func() bool {
		st, err := readProcStat(pid)
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return err == nil && st.pgrp == pid && strings.TrimSpace(string(comm)) == "sleep"
	})
	return pid
}

func forEachHierarchy(t *testing.T, f func(t *testing.T)) {
	hs, err := findHierarchies()
	if err != nil || len(hs) == 0 {
		t.Skipf("no cgroup hierarchy: %v", err)
	}
	for _, kind := range []bool{true, false} {
		var pick []hierarchy
		for _, h := range hs {
			if h.v2 == kind {
				pick = append(pick, h)
			}
		}
		name := map[bool]string{true: "cgroup v2", false: "cgroup v1"}[kind]
		t.Run(name, func(t *testing.T) {
			if len(pick) == 0 {
				t.Skipf("no %s hierarchy on this host", name)
			}
			cgroupHierarchies = func() ([]hierarchy, error) { return pick, nil }
			t.Cleanup(func() { cgroupHierarchies = findHierarchies })
			t.Cleanup(func() {
				for _, h := range pick {
					os.Remove(filepath.Join(h.mount, h.own, fmt.Sprintf("meshexp-test-%d", os.Getpid())))
				}
			})
			f(t)
		})
	}
}

func TestAChildThatDaemonizesIsCaughtStoppedAndReportedAsEscaped(t *testing.T) {
	requireRoot(t, "make cgroups")
	forEachHierarchy(t, func(t *testing.T) {
		logs, logger := newLogStore(t)
		spec, pidfile := daemonSpec(t, true)
		c, err := Start(context.Background(), spec, logger)
		if err != nil {
			t.Fatal(err)
		}
		stopOnCleanup(t, c)
		dir := c.Cgroup()
		if dir == "" {
			t.Fatal("the child got no cgroup")
		}
		daemon := readPID(t, pidfile, false)
		waitExited(t, c)
		if !c.Escaped() {
			t.Error("Escaped() = false for a child that left a daemon behind")
		}
		if !dead(daemon) {
			t.Errorf("the daemon (pid %d) outlived its child", daemon)
		}
		if len(logs.find(func(r logRec) bool { return strings.Contains(r.msg, "daemonized or called setsid") })) == 0 {
			t.Error("no plain-words log line about the escape")
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left behind: %v", dir, err)
		}
	})
}

func TestStopEndsProcessesThatLeftTheGroup(t *testing.T) {
	requireRoot(t, "make cgroups")
	forEachHierarchy(t, func(t *testing.T) {
		_, logger := newLogStore(t)
		spec, pidfile := daemonSpec(t, false)
		c, err := Start(context.Background(), spec, logger)
		if err != nil {
			t.Fatal(err)
		}
		daemon := readPID(t, pidfile, true)
		if err := c.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !dead(daemon) {
			t.Errorf("the daemon (pid %d) survived Stop", daemon)
		}
	})
}

func TestACgroupLeftByACrashIsEmptiedAtTheNextStart(t *testing.T) {
	requireRoot(t, "make cgroups")
	forEachHierarchy(t, func(t *testing.T) {
		_, logger := newLogStore(t)
		spec, pidfile := daemonSpec(t, false)
		c, err := Start(context.Background(), spec, logger)
		if err != nil {
			t.Fatal(err)
		}
		daemon := readPID(t, pidfile, true)
		// What a crash leaves: the cgroup and its daemon, unknown to anyone
		// but the cgroup's name.
		dir := c.Cgroup()
		c.cg.dir = filepath.Join(t.TempDir(), "gone") // this Child forgets it
		if err := c.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		if dead(daemon) {
			t.Fatal("setup: the daemon died with its child")
		}
		spec2, _ := daemonSpec(t, false)
		spec2.Cgroup = spec.Cgroup
		c2, err := Start(context.Background(), spec2, logger)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Stop(context.Background())
		if c2.Cgroup() != dir {
			t.Fatalf("cgroup %s, want the same name %s", c2.Cgroup(), dir)
		}
		eventually.True(t, "the leftover daemon to be killed", func() bool { return dead(daemon) })
	})
}
