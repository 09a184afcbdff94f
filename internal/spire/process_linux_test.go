//go:build linux

package spire

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

func shell(script string) Command {
	return Command{Name: "sh", Path: "/bin/sh", Args: []string{"-c", script}}
}

func TestExecStarterStopsWithSIGTERMFirst(t *testing.T) {
	logger, _ := testLogger(t)
	dir := shortDir(t)
	p, err := ExecStarter(logger, time.Minute)(context.Background(),
		shell(`trap 'echo term > `+dir+`/got; exit 0' TERM; touch `+dir+`/up; while :; do sleep 0.05; done`))
	if err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the shell to set its trap", func() bool {
		_, err := os.Stat(dir + "/up")
		return err == nil
	})
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if b, _ := os.ReadFile(dir + "/got"); strings.TrimSpace(string(b)) != "term" {
		t.Error("the process did not see SIGTERM")
	}
}

func TestExecStarterKillsAProcessThatIgnoresSIGTERMAndItsChildren(t *testing.T) {
	logger, _ := testLogger(t)
	dir := shortDir(t)
	// The shell ignores SIGTERM and starts a grandchild in its group.
	p, err := ExecStarter(logger, 300*time.Millisecond)(context.Background(), shell(`trap "" TERM; sleep 60 & echo $! > `+dir+`/child; wait`))
	if err != nil {
		t.Fatal(err)
	}
	var child int
	eventually.True(t, "the grandchild's pid", func() bool {
		b, err := os.ReadFile(dir + "/child")
		if err != nil || len(b) == 0 {
			return false
		}
		_, err = fmt.Sscan(string(b), &child)
		return err == nil
	})
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the grandchild to be gone", func() bool {
		return errors.Is(syscall.Kill(child, 0), syscall.ESRCH) || isZombie(child)
	})
}

func TestExecStarterRestartsOnlyWhenAsked(t *testing.T) {
	logger, _ := testLogger(t)
	exits := make(chan error, 10)
	c := shell("exit 3")
	c.Restart = true
	c.OnExit = func(err error) { exits <- err }
	p, err := ExecStarter(logger, time.Second)(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		select {
		case <-exits:
		case <-time.After(10 * time.Second):
			t.Fatal("no restart")
		}
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-p.Done()

	once := shell("exit 0")
	q, err := ExecStarter(logger, time.Second)(context.Background(), once)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-q.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a one-shot process was not reported done")
	}
}

func TestExecStarterGivesChildrenNoneOfItsEnvironment(t *testing.T) {
	t.Setenv("MESHEXP_SPIRE_JOIN_TOKEN", "leak")
	logger, _ := testLogger(t)
	dir := shortDir(t)
	p, err := ExecStarter(logger, time.Second)(context.Background(), shell("env > "+dir+"/env"))
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	b, err := os.ReadFile(dir + "/env")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "leak") {
		t.Errorf("the child saw meshexp's environment:\n%s", b)
	}
}

// isZombie reports whether pid has exited but is not reaped yet (its new
// parent, init, reaps it in its own time).
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}
