package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// killWait bounds how long Stop waits for a process group to vanish after
// SIGKILL; only a process stuck in the kernel (D state) takes longer.
const killWait = 10 * time.Second

// Child is one supervised program: the process of its current run, its
// process group, its restarts. One goroutine per Child owns waiting for the
// process (os.Process.Wait); everything else reads the state under mu.
type Child struct {
	spec   Spec
	logger *slog.Logger

	mu       sync.Mutex
	state    State
	proc     *os.Process // current process, nil when none is running
	pgid     int         // process group of the current run while any member lives
	restarts int
	exitCode int // last exit code, -1 before the first exit
	stopping bool
	escaped  bool    // processes of the latest run outlived its group
	cg       *cgroup // holds every process of the child; nil without one

	stopCh chan struct{} // closed by the first Stop
	exited chan struct{} // closed when finished for good
}

// noCgroupWarned: the warning that cgroups cannot be used is given once.
var noCgroupWarned atomic.Bool

// Start validates spec and starts the child: in its own process group, as
// spec.Credential, killed by the kernel if meshexp dies (see the package
// comment for how that survives Go's threads). ctx bounds the starting
// only; the child lives until it exits for good or Stop is called.
//
// An error means nothing was started.
func Start(ctx context.Context, spec Spec, logger *slog.Logger) (*Child, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", spec.Name, err)
	}
	spec, err := spec.normalize()
	if err != nil {
		return nil, fmt.Errorf("supervise: invalid spec: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Child{
		spec:     spec,
		logger:   logger.With("child", spec.Name),
		state:    StateStarting,
		exitCode: -1,
		stopCh:   make(chan struct{}),
		exited:   make(chan struct{}),
	}
	if spec.Cgroup != "" {
		cg, err := newCgroup(spec.Cgroup)
		if err != nil {
			level := slog.LevelDebug
			if !noCgroupWarned.Swap(true) { // once per meshexp: it holds for every child
				level = slog.LevelWarn
			}
			c.logger.Log(ctx, level, "child not contained in a cgroup: only its process group is stopped, and a process that leaves it (setsid, daemons) is not found", "err", err)
		} else {
			c.cg = cg
		}
	}
	r, err := c.launch()
	if err != nil {
		if c.cg != nil {
			_ = c.cg.close()
		}
		return nil, err
	}
	go c.supervise(r)
	return c, nil
}

// launch spawns a process, makes it the current run and says so.
func (c *Child) launch() (*run, error) {
	r, err := c.spawn()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.setRunLocked(r)
	c.mu.Unlock()
	c.emit(Event{Kind: EventStarted, PID: r.pid, Cgroup: c.Cgroup()})
	return r, nil
}

// Name is Spec.Name.
func (c *Child) Name() string { return c.spec.Name }

// State is the child's current state.
func (c *Child) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// PID is the pid of the running process, 0 when none runs (backoff,
// exited, or between the process's exit and the end of its group).
func (c *Child) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return 0
	}
	return c.proc.Pid
}

// Cgroup is the directory of the cgroup that holds the child's
// processes, "" when it has none.
func (c *Child) Cgroup() string {
	if c.cg == nil {
		return ""
	}
	return c.cg.dir
}

// Escaped reports whether processes of the latest run were still running
// outside its process group when it ended (it daemonized or called
// setsid). They were stopped; Escaped says the child misbehaved.
func (c *Child) Escaped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.escaped
}

// Restarts is how many times the child was restarted.
func (c *Child) Restarts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts
}

// ExitCode is the exit status of the latest run: the code it exited with,
// or 128+n when signal n killed it (as a shell reports it); -1 before the
// first exit. Once Exited() is closed it is the final status.
func (c *Child) ExitCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exitCode
}

// Exited is closed when the child is finished for good: it exited and the
// policy did not restart it, or Stop ended it.
func (c *Child) Exited() <-chan struct{} { return c.exited }

// Wait blocks until the child is finished for good and returns its final
// exit code, or returns ctx's error first.
func (c *Child) Wait(ctx context.Context) (int, error) {
	select {
	case <-c.exited:
		return c.ExitCode(), nil
	case <-ctx.Done():
		return -1, fmt.Errorf("waiting for %s to exit: %w", c.spec.Name, ctx.Err())
	}
}

// Signal sends sig to the child's process (not its group), for reloads
// (SIGHUP) and the like. The process is addressed through its pidfd, so a
// recycled pid can never receive it.
func (c *Child) Signal(sig syscall.Signal) error {
	c.mu.Lock()
	p, st := c.proc, c.state
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("signalling %s with %s: no process is running (state %s)", c.spec.Name, sig, st)
	}
	if err := p.Signal(sig); err != nil {
		return fmt.Errorf("signalling %s (pid %d) with %s: %w", c.spec.Name, p.Pid, sig, err)
	}
	return nil
}

// SignalGroup sends sig to every process in the child's process group.
func (c *Child) SignalGroup(sig syscall.Signal) error {
	c.mu.Lock()
	pgid, st := c.pgid, c.state
	c.mu.Unlock()
	if pgid == 0 {
		return fmt.Errorf("signalling %s's process group with %s: no process is running (state %s)", c.spec.Name, sig, st)
	}
	if err := signalGroup(pgid, sig); err != nil {
		return fmt.Errorf("signalling %s's process group %d with %s: %w", c.spec.Name, pgid, sig, err)
	}
	return nil
}

// Stop ends the child for good: no more restarts, StopSignal to its whole
// process group, then after Grace (or when ctx ends, whichever is first)
// SIGKILL to the group. It returns once the process and every other
// member of its group are gone, and the output was drained. Stopping a
// child in backoff cancels the restart. Stop on a finished child returns
// nil at once; concurrent calls are fine.
func (c *Child) Stop(ctx context.Context) error {
	c.mu.Lock()
	select {
	case <-c.exited:
		c.mu.Unlock()
		return nil
	default:
	}
	if !c.stopping {
		c.stopping = true
		close(c.stopCh)
		if c.state != StateBackoff {
			c.state = StateStopping
		}
	}
	pgid := c.pgid
	c.mu.Unlock()

	if pgid != 0 {
		c.logger.Debug("stopping child", "pgid", pgid, "signal", c.spec.StopSignal.String(), "grace", c.spec.Grace)
		c.sendGroup(pgid, c.spec.StopSignal)
	}
	if c.cg != nil {
		c.cg.signal(c.spec.StopSignal) // whatever left the group, too
	}
	grace := time.NewTimer(c.spec.Grace)
	defer grace.Stop()
	select {
	case <-c.exited:
		return nil
	case <-grace.C:
		c.logger.Warn("child did not stop within the grace period; killing its process group", "grace", c.spec.Grace)
	case <-ctx.Done():
		c.logger.Warn("stop deadline reached before the child stopped; killing its process group", "err", ctx.Err())
	}
	c.mu.Lock()
	pgid = c.pgid
	c.mu.Unlock()
	if pgid != 0 {
		c.sendGroup(pgid, syscall.SIGKILL)
	}
	if c.cg != nil {
		c.cg.signal(syscall.SIGKILL)
	}
	kill := time.NewTimer(killWait)
	defer kill.Stop()
	select {
	case <-c.exited:
		return nil
	case <-kill.C:
		return fmt.Errorf("stopping %s: process group %d still present %s after SIGKILL (stuck in the kernel?)", c.spec.Name, pgid, killWait)
	}
}

func (c *Child) sendGroup(pgid int, sig syscall.Signal) {
	if err := signalGroup(pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		c.logger.Warn("signalling process group failed", "pgid", pgid, "signal", sig.String(), "err", err)
	}
}

// setRunLocked records a freshly started run; if Stop came while it was
// being forked, the new run is told to stop at once.
func (c *Child) setRunLocked(r *run) {
	c.proc, c.pgid = r.proc, r.pid
	if c.stopping {
		c.sendGroup(r.pid, c.spec.StopSignal)
		return
	}
	c.state = StateRunning
}

func (c *Child) emit(e Event) {
	if c.spec.OnEvent == nil {
		return
	}
	e.Child = c.spec.Name
	if e.Kind != EventRestarting {
		e.Restarts = c.Restarts()
	}
	c.spec.OnEvent(e)
}
