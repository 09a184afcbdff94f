//go:build linux

package supervise

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

func TestAChildRunsWithTheCredentialsAskedFor(t *testing.T) {
	requireRoot(t, "start a child as another user")
	_, logger := newLogStore(t)
	spec := Spec{
		Name:       "as-user",
		Path:       "sleep",
		Args:       []string{"3600"},
		Credential: &syscall.Credential{Uid: 4321, Gid: 4322},
	}
	c, err := Start(context.Background(), spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, c)
	for field, want := range map[string]string{
		"Uid":    "4321\t4321\t4321\t4321",
		"Gid":    "4322\t4322\t4322\t4322",
		"Groups": "", // root's supplementary groups are not inherited
	} {
		got, err := procStatusField(c.PID(), field)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("/proc/%d/status %s: %q, want %q", c.PID(), field, got, want)
		}
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.ExitCode(); got != 143 {
		t.Errorf("ExitCode() = %d, want 143: SIGTERM reached the child running as another user", got)
	}
}

func TestOtherCredentialsNeedRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as root, where changing credentials is allowed")
	}
	spec := Spec{Name: "as-user", Path: "sleep", Args: []string{"1"}, Credential: &syscall.Credential{Uid: 4321, Gid: 4322}}
	if c, err := Start(context.Background(), spec, nil); err == nil {
		c.Stop(context.Background())
		t.Fatal("Start as another uid succeeded without root")
	} else if !strings.Contains(err.Error(), "operation not permitted") {
		t.Errorf("error %q does not say the operation is not permitted", err)
	}
}

// A supervisor killed with SIGKILL cannot stop anything; the kernel's
// parent-death signal must, even though some of the supervisor's threads
// died before (children are forked from a thread that never does).
func TestChildrenDieWithAKilledSupervisor(t *testing.T) {
	cmd := exec.Command(self(t))
	cmd.Env = helperEnv("supervisor")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var got struct{ Child int }
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading the supervisor's report: %v", err)
	}
	if err := json.Unmarshal(line, &got); err != nil || got.Child == 0 {
		t.Fatalf("supervisor said %q (%v), want {\"child\":PID}", line, err)
	}
	t.Cleanup(func() { syscall.Kill(got.Child, syscall.SIGKILL) })
	st, err := readProcStat(got.Child)
	if err != nil || st.state == 'Z' || st.ppid != cmd.Process.Pid {
		t.Fatalf("child %d is not alive under the supervisor after its threads died: %+v, %v", got.Child, st, err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	eventually.True(t, "the child of the killed supervisor to die", func() bool { return dead(got.Child) })
}

func TestTheReaperReapsOrphansWithoutStealingExitStatuses(t *testing.T) {
	// As a subreaper: no root needed.
	rep := runReaperScenario(t, exec.Command(self(t), "subreaper"))
	checkReaperReport(t, rep)
}

func TestAsPID1TheReaperLeavesNoZombieInItsNamespace(t *testing.T) {
	requireRoot(t, "create a PID namespace")
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare (util-linux) to create a PID namespace")
	}
	rep := runReaperScenario(t, exec.Command(unshare, "--pid", "--fork", "--mount-proc", self(t), "pid1"))
	if rep.PID != 1 {
		t.Errorf("the scenario ran as pid %d, want 1", rep.PID)
	}
	checkReaperReport(t, rep)
}

func runReaperScenario(t *testing.T, cmd *exec.Cmd) reaperReport {
	t.Helper()
	cmd.Env = helperEnv("reaper")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reaper scenario: %v\n%s", err, stderr.String())
	}
	var rep reaperReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("reaper scenario printed %q: %v\n%s", out, err, stderr.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reaper scenario log:\n%s", stderr.String())
		}
	})
	return rep
}

func checkReaperReport(t *testing.T, rep reaperReport) {
	t.Helper()
	if rep.ChildExit != 7 {
		t.Errorf("the supervised child's exit code was %d, want 7 (its own status, not stolen by the reaper)", rep.ChildExit)
	}
	if rep.Events != "started exited finished" {
		t.Errorf("events %q, want \"started exited finished\"", rep.Events)
	}
	if rep.Reaped < 3 {
		t.Errorf("the reaper reaped %d orphans, want at least the 3 made", rep.Reaped)
	}
	if len(rep.ExecBad) > 0 || rep.ExecOK < 20 {
		t.Errorf("os/exec statuses: %d right, wrong ones: %v; want at least 20 right and none wrong", rep.ExecOK, rep.ExecBad)
	}
	if len(rep.Zombies) > 0 {
		t.Errorf("zombies left: %v", rep.Zombies)
	}
}
