package supervise

import (
	"fmt"
	"os"
	"syscall"
	"time"
)

// run is one process of a child: the process, when it started, and the
// goroutines copying its output.
type run struct {
	proc    *os.Process
	pid     int
	started time.Time
	out     *outputs
}

// spawn starts one process of the child.
func (c *Child) spawn() (*run, error) {
	out, err := openOutputs(c.spec)
	if err != nil {
		return nil, fmt.Errorf("starting %s: preparing its output: %w", c.spec.Name, err)
	}
	argv := append([]string{c.spec.Path}, c.spec.Args...)
	attr := &os.ProcAttr{Dir: c.spec.Dir, Env: c.spec.Env, Files: out.files, Sys: sysProcAttr(c.spec, c.cg)}
	proc, err := startProcess(c.spec.Path, argv, attr, c.cg)
	out.closeChildEnds() // the child has its copies now (or never will)
	if err != nil {
		out.abort()
		return nil, fmt.Errorf("starting %s (%s): %w", c.spec.Name, c.spec.Path, err)
	}
	r := &run{proc: proc, pid: proc.Pid, started: time.Now(), out: out}
	out.start(c.logger, r.pid)
	c.logger.Info("child started", "pid", r.pid, "path", c.spec.Path, "args", c.spec.Args)
	return r, nil
}

// supervise is the goroutine that owns the child: it alone waits for each
// process, cleans up its group, and decides about restarts.
func (c *Child) supervise(r *run) {
	defer close(c.exited)
	consecutive := 0 // restarts since the last healthy run, for the backoff
	var startErr error
	for {
		code, pid, ran := 127, 0, time.Duration(0)
		if r != nil {
			code, ran, pid = c.await(r), time.Since(r.started), r.pid
		}
		c.mu.Lock()
		c.exitCode = code
		stopping := c.stopping
		restarts := c.restarts
		c.mu.Unlock()
		if startErr != nil {
			c.logger.Error("child could not be restarted", "err", startErr)
		} else {
			c.logExit(pid, code, ran, stopping)
		}
		c.emit(Event{Kind: EventExited, PID: pid, ExitCode: code, Err: startErr, Ran: ran, Stopped: stopping})

		p := c.spec.Restart
		c.mu.Lock()
		escaped := c.escaped
		c.mu.Unlock()
		switch {
		case stopping:
			c.finish(true)
			return
		case !p.Mode.restarts(code) && !(escaped && p.Mode == ModeOnFailure):
			c.finish(false)
			return
		case p.MaxRestarts > 0 && restarts >= p.MaxRestarts:
			c.logger.Warn("child reached its restart limit; giving up", "restarts", restarts, "exit_code", code)
			c.finish(false)
			return
		}
		if ran >= p.ResetAfter {
			consecutive = 0
		}
		delay := p.backoff(consecutive)
		consecutive++
		if !c.enterBackoff() {
			c.finish(true)
			return
		}
		c.logger.Info("restarting child", "after", delay, "restart", restarts+1, "restart_policy", string(p.Mode))
		c.emit(Event{Kind: EventRestarting, Restarts: restarts + 1, Backoff: delay})
		if !c.sleep(delay) {
			c.finish(true)
			return
		}
		r, startErr = c.restartOnce()
		if r == nil && startErr == nil { // Stop came during the backoff
			c.finish(true)
			return
		}
	}
}

// await waits for r's process, then for the rest of its process group,
// then for its output, and returns the exit code.
func (c *Child) await(r *run) int {
	st, err := r.proc.Wait()
	code := exitCode(st, err)
	if err != nil {
		c.logger.Error("waiting for child failed", "pid", r.pid, "err", err)
	}
	c.mu.Lock()
	c.proc = nil
	c.mu.Unlock()
	c.settleGroup(r.pid)
	c.settleTree(r.pid)
	r.out.drain()
	c.mu.Lock()
	c.pgid = 0
	c.mu.Unlock()
	return code
}

// settleGroup makes sure nothing of the process group outlives its
// leader: a leader that exits on its own may leave children behind, which
// would hold ports and files the next run needs. They get StopSignal,
// Grace, then SIGKILL; when Stop is in charge it does the signalling.
func (c *Child) settleGroup(pgid int) {
	if !groupAlive(pgid) {
		return
	}
	c.mu.Lock()
	stopping := c.stopping
	c.mu.Unlock()
	if !stopping {
		c.logger.Warn("child exited but left processes in its group; stopping them", "pgid", pgid)
		c.sendGroup(pgid, c.spec.StopSignal)
		if waitGroupGone(pgid, c.spec.Grace) {
			return
		}
		c.logger.Warn("leftover processes did not stop within the grace period; killing them", "pgid", pgid)
		c.sendGroup(pgid, syscall.SIGKILL)
	}
	waitGroupGone(pgid, -1)
}

// settleTree makes sure nothing of the child's cgroup outlives the run. A
// process still there once the process group is gone left the group
// (setsid, a daemon's double fork): that is the child escaping
// supervision, reported in plain words and counted as a failure.
func (c *Child) settleTree(pgid int) {
	c.mu.Lock()
	c.escaped = false
	stopping := c.stopping
	c.mu.Unlock()
	if c.cg == nil {
		return
	}
	left := c.cg.procs()
	if len(left) == 0 {
		return
	}
	c.mu.Lock()
	c.escaped = true
	c.mu.Unlock()
	c.logger.Error(fmt.Sprintf("%s left processes running outside its process group (it daemonized or called setsid); stopping them. Run it in the foreground so meshexp can supervise it", c.spec.Name),
		"pgid", pgid, "pids", left, "cgroup", c.cg.dir)
	if !stopping {
		c.cg.signal(c.spec.StopSignal)
		deadline := time.Now().Add(c.spec.Grace)
		for len(c.cg.procs()) > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := KillCgroup(c.cg.dir); err != nil {
		c.logger.Error("stopping escaped processes failed", "err", err)
	}
}

func (c *Child) enterBackoff() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return false
	}
	c.state = StateBackoff
	return true
}

// sleep waits d unless Stop comes first; it reports whether to go on.
func (c *Child) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.stopCh:
		return false
	}
}

// restartOnce starts the next process. It returns (nil, nil) when Stop
// came first, and (nil, err) when the process could not be started, which
// the loop treats as a failed run.
func (c *Child) restartOnce() (*run, error) {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return nil, nil
	}
	c.state = StateStarting
	c.restarts++
	c.mu.Unlock()
	return c.launch()
}

func (c *Child) finish(stopped bool) {
	if c.cg != nil {
		if err := c.cg.close(); err != nil {
			c.logger.Warn("removing the child's cgroup failed", "err", err)
		}
	}
	c.mu.Lock()
	c.state = StateExited
	code := c.exitCode
	c.mu.Unlock()
	c.emit(Event{Kind: EventFinished, ExitCode: code, Stopped: stopped})
}

func (c *Child) logExit(pid, code int, ran time.Duration, stopping bool) {
	attrs := []any{"pid", pid, "exit_code", code, "ran", ran.Round(time.Millisecond)}
	switch {
	case stopping:
		c.logger.Info("child stopped", attrs...)
	case code == 0:
		c.logger.Info("child exited", attrs...)
	default:
		c.logger.Warn("child exited", attrs...)
	}
}

// exitCode turns a wait result into a shell-style status: the exit code,
// or 128+n for death by signal n.
func exitCode(st *os.ProcessState, err error) int {
	if st == nil || err != nil {
		return 255 // Wait itself failed; the status is unknowable
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
