//go:build linux

package bootstrap

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// group starts a shell that leaves a background child in its process
// group, and returns the leader and the child's pid.
func group(t *testing.T) (*exec.Cmd, int) {
	t.Helper()
	pidfile := t.TempDir() + "/child"
	cmd := exec.Command("/bin/sh", "-c", "sleep 1000 & echo $! > "+pidfile+"; exec sleep 1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	for {
		b, err := os.ReadFile(pidfile)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			return cmd, pid
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	st := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
	return st != "Z" && st != "X"
}

func TestTheNextStartEndsWhatACrashLeftInARecordedProcessGroup(t *testing.T) {
	stateDir = t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	leader, child := group(t)
	crashed := newStateFile("test", logger)
	crashed.started("workload", "", leader.Process.Pid)
	// The crash: meshexp and (by the parent-death signal) the leader die,
	// the leader's child stays.
	leader.Process.Kill()
	leader.Wait()
	if !alive(child) {
		t.Fatal("setup: the leader's child died with it")
	}
	next := newStateFile("test", logger)
	if err := next.recoverLeftovers(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); alive(child) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(child) {
		t.Errorf("the crashed run's leftover (pid %d) still runs", child)
	}
	if _, err := os.Stat(next.path); !os.IsNotExist(err) {
		t.Errorf("state file still there: %v", err)
	}
}

func TestAProcessGroupWithTheRecordedIdButAnotherLeaderIsLeftAlone(t *testing.T) {
	stateDir = t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	leader, child := group(t)
	s := newStateFile("test", logger)
	s.started("workload", "", leader.Process.Pid)
	// Pretend the recorded leader started at another time: the id now
	// belongs to someone else.
	s.st.Children["workload"] = childState{PGID: leader.Process.Pid, Start: 1}
	s.mu.Lock()
	s.writeLocked()
	s.mu.Unlock()
	if err := newStateFile("test", logger).recoverLeftovers(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if !alive(leader.Process.Pid) || !alive(child) {
		t.Error("an unrelated process group was killed")
	}
}
