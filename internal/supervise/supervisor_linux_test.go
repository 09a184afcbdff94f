//go:build linux

package supervise

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// supervisor is the helper of the kill -9 test. It starts a child from
// a goroutine that locked its OS thread and then exits, which terminates
// that thread (runtime.LockOSThread): had the child been forked from that
// thread, its parent-death signal would fire now. Once the thread is gone
// it checks with a SIGHUP round trip that the child still lives (a
// SIGKILL already sent would be acted on first), prints the child's pid,
// and waits to be killed.
func supervisor() int {
	// The main thread is never terminated (it is wedged instead), so keep
	// the main goroutine on it and the goroutine below off it; see init.
	out := &outputWatch{}
	spec := Spec{
		Name:   "victim",
		Path:   os.Args[0],
		Env:    helperEnv("hup"),
		Stdout: out,
		Stderr: os.Stderr,
	}
	type started struct {
		c   *Child
		tid int
		err error
	}
	ch := make(chan started)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		c, err := Start(context.Background(), spec, nil)
		ch <- started{c, syscall.Gettid(), err}
	}()
	s := <-ch
	if s.err != nil {
		fmt.Fprintln(os.Stderr, s.err)
		return 1
	}
	deadline := time.Now().Add(wait)
	for _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", s.tid)); err == nil; _, err = os.Stat(fmt.Sprintf("/proc/self/task/%d", s.tid)) {
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "the locked thread never ended")
			return 1
		}
		time.Sleep(time.Millisecond)
	}
	if !out.wait("ready", deadline, s.c.Exited()) {
		fmt.Fprintln(os.Stderr, "the child died with the thread that started it, or never got ready; exit code", s.c.ExitCode())
		return 1
	}
	if err := s.c.Signal(syscall.SIGHUP); err != nil {
		fmt.Fprintln(os.Stderr, "the child died with the thread that started it:", err, "exit code", s.c.ExitCode())
		return 1
	}
	if !out.wait("got hangup", deadline, s.c.Exited()) {
		fmt.Fprintln(os.Stderr, "the child never answered SIGHUP; exit code", s.c.ExitCode())
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]int{"child": s.c.PID()}); err != nil {
		return 1
	}
	block()
	return 0
}

// init pins the main goroutine to the main thread in the supervisor
// helper (runtime.LockOSThread: called from init, main runs there).
func init() {
	if os.Getenv(envHelper) == "supervisor" {
		runtime.LockOSThread()
	}
}

// outputWatch is a writer whose content can be waited for.
type outputWatch struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *outputWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// wait polls until s has been written; it gives up when deadline passes
// or the writer's process is finished (gone is closed).
func (w *outputWatch) wait(s string, deadline time.Time, gone <-chan struct{}) bool {
	for time.Now().Before(deadline) {
		select {
		case <-gone:
			return false
		default:
		}
		w.mu.Lock()
		ok := strings.Contains(w.buf.String(), s)
		w.mu.Unlock()
		if ok {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}
