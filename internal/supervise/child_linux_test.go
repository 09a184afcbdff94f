//go:build linux

package supervise

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

func TestExitCodesAreReportedLikeAShell(t *testing.T) {
	tests := []struct {
		name   string
		helper string
		args   []string
		signal syscall.Signal // sent once the child is ready
		want   int
	}{
		{name: "a clean exit is 0", helper: "exit", args: []string{"0"}, want: 0},
		{name: "exit 3 is 3", helper: "exit", args: []string{"3"}, want: 3},
		{name: "death by SIGKILL is 128+9", helper: "sleep", signal: syscall.SIGKILL, want: 137},
		{name: "death by SIGTERM is 128+15", helper: "sleep", signal: syscall.SIGTERM, want: 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs, logger := newLogStore(t)
			events := &eventLog{}
			spec := helperSpec(t, tt.helper, tt.args...)
			spec.OnEvent = events.add
			c, err := Start(context.Background(), spec, logger)
			if err != nil {
				t.Fatal(err)
			}
			stopOnCleanup(t, c)
			if tt.signal != 0 {
				logs.waitLine(t, tt.helper, "ready")
				if err := c.Signal(tt.signal); err != nil {
					t.Fatal(err)
				}
			}
			waitExited(t, c)
			if got := c.ExitCode(); got != tt.want {
				t.Errorf("ExitCode() = %d, want %d", got, tt.want)
			}
			if got := c.State(); got != StateExited {
				t.Errorf("State() = %s, want exited", got)
			}
			if got := c.PID(); got != 0 {
				t.Errorf("PID() = %d after exit, want 0", got)
			}
			if got, want := events.kinds(), "started exited finished"; got != want {
				t.Errorf("events %q, want %q", got, want)
			}
			last := events.all()[2]
			if last.ExitCode != tt.want || last.Stopped {
				t.Errorf("finished event %+v, want ExitCode %d and Stopped false", last, tt.want)
			}
		})
	}
}

func TestStopEndsAChildThatHandlesSIGTERM(t *testing.T) {
	logs, logger := newLogStore(t)
	events := &eventLog{}
	spec := helperSpec(t, "sleep")
	spec.OnEvent = events.add
	c, err := Start(context.Background(), spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	logs.waitLine(t, "sleep", "ready")
	if got := c.State(); got != StateRunning {
		t.Errorf("State() = %s while running, want running", got)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.ExitCode(); got != 143 {
		t.Errorf("ExitCode() = %d, want 143 (SIGTERM)", got)
	}
	ev := events.all()
	if got := events.kinds(); got != "started exited finished" {
		t.Fatalf("events %q, want \"started exited finished\"", got)
	}
	if !ev[1].Stopped || !ev[2].Stopped {
		t.Errorf("exit and finish events %+v, %+v; want both marked Stopped", ev[1], ev[2])
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("a second Stop: %v, want nil", err)
	}
}

func TestStopKillsAChildThatIgnoresSIGTERMAfterTheGracePeriod(t *testing.T) {
	logs, logger := newLogStore(t)
	spec := helperSpec(t, "ignore-term")
	spec.Grace = 100 * time.Millisecond
	c, err := Start(context.Background(), spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, c)
	logs.waitLine(t, "ignore-term", "ready") // SIGTERM is ignored from here on
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.ExitCode(); got != 137 {
		t.Errorf("ExitCode() = %d, want 137 (SIGKILL after the grace period)", got)
	}
	if len(logs.find(func(r logRec) bool { return strings.Contains(r.msg, "did not stop within the grace period") })) == 0 {
		t.Error("no log says the child was killed after the grace period")
	}
}

func TestStopKillsAtOnceWhenItsContextEnds(t *testing.T) {
	logs, logger := newLogStore(t)
	spec := helperSpec(t, "ignore-term")
	spec.Grace = time.Hour
	c, err := Start(context.Background(), spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, c)
	logs.waitLine(t, "ignore-term", "ready")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.ExitCode(); got != 137 {
		t.Errorf("ExitCode() = %d, want 137", got)
	}
}

func TestStopKillsTheWholeProcessGroup(t *testing.T) {
	logs, logger := newLogStore(t)
	c, err := Start(context.Background(), helperSpec(t, "grandchild"), logger)
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, c)
	gc := grandchildPID(t, logs.waitLine(t, "grandchild", "grandchild "))
	if dead(gc) {
		t.Fatalf("grandchild %d is not running before Stop", gc)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !dead(gc) {
		t.Errorf("grandchild %d is still running after Stop returned", gc)
	}
}

func TestAChildThatExitsLeavingProcessesBehindHasThemStopped(t *testing.T) {
	logs, logger := newLogStore(t)
	c, err := Start(context.Background(), helperSpec(t, "grandchild-exit"), logger)
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, c)
	waitExited(t, c)
	gc := grandchildPID(t, logs.waitLine(t, "grandchild-exit", "grandchild "))
	if !dead(gc) {
		t.Errorf("grandchild %d left by the child is still running after Exited()", gc)
	}
	if c.ExitCode() != 0 {
		t.Errorf("ExitCode() = %d, want 0", c.ExitCode())
	}
}

func grandchildPID(t *testing.T, line string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(line, "grandchild "))
	if err != nil {
		t.Fatalf("parsing %q: %v", line, err)
	}
	return pid
}

func TestSignalReachesTheChildAndForwardRelaysSignalsMeshexpGets(t *testing.T) {
	logs, logger := newLogStore(t)
	c, err := Start(context.Background(), helperSpec(t, "hup"), logger)
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, c)
	logs.waitLine(t, "hup", "ready")
	if err := c.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	logs.waitLine(t, "hup", "got hangup")

	stop, err := Forward(context.Background(), logger, []syscall.Signal{syscall.SIGHUP}, c)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	before := len(logs.find(func(r logRec) bool { return r.msg == "got hangup" }))
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the forwarded SIGHUP to reach the child", func() bool {
		return len(logs.find(func(r logRec) bool { return r.msg == "got hangup" })) > before
	})
}

func TestForwardRefusesTheShutdownSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGKILL} {
		if _, err := Forward(context.Background(), nil, []syscall.Signal{sig}); err == nil {
			t.Errorf("Forward(%s) succeeded, want an error", sig)
		}
	}
}

func TestStopAllStopsInReverseOrder(t *testing.T) {
	logs, logger := newLogStore(t)
	var order eventLog
	var children []*Child
	for _, name := range []string{"first", "second", "third"} {
		spec := helperSpec(t, "sleep")
		spec.Name = name
		spec.OnEvent = func(e Event) {
			if e.Kind == EventFinished {
				order.add(e)
			}
		}
		c, err := Start(context.Background(), spec, logger)
		if err != nil {
			t.Fatal(err)
		}
		stopOnCleanup(t, c)
		logs.waitLine(t, name, "ready")
		children = append(children, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := StopAll(ctx, append(children, nil)...); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range order.all() {
		got = append(got, e.Child)
	}
	if strings.Join(got, ",") != "third,second,first" {
		t.Errorf("finished in order %v, want third,second,first", got)
	}
}

func TestStartRefusesWhatCannotRun(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"a missing executable", Spec{Name: "x", Path: "/nonexistent/meshexp-test"}, "no such file"},
		{"a command not in PATH", Spec{Name: "x", Path: "meshexp-no-such-command"}, "finding \"meshexp-no-such-command\" in PATH"},
		{"a directory", Spec{Name: "x", Path: "/"}, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Start(context.Background(), tt.spec, nil)
			if err == nil {
				t.Fatalf("Start succeeded (pid %d), want an error", c.PID())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}
