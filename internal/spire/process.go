package spire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Command describes a SPIRE process to start. A Starter other than
// ExecStarter (the bootstrap's supervisor) must honour every field.
type Command struct {
	Name string   // for logs: "spire-server", "spire-agent"
	Path string   // absolute path of the executable
	Args []string // arguments after argv[0]; never secrets
	Env  []string // the complete environment
	// Stdout and Stderr receive the process's output (SPIRE logs to
	// stdout); they are line-oriented log forwarders.
	Stdout, Stderr io.Writer
	// Restart asks for the process to be started again when it exits
	// without Stop having been called.
	Restart bool
	// OnExit, if set, is called after every exit, including those followed
	// by a restart, with the reason (nil for a clean exit). Start uses it
	// to fail fast when a process dies before the identity is ready.
	OnExit func(err error)
}

// Process is a started Command.
type Process interface {
	// Pid is the current process id (it changes on restart), 0 if none.
	Pid() int
	// Done is closed when the process has exited and will not be
	// restarted.
	Done() <-chan struct{}
	// Stop ends the process for good: SIGTERM to its process group, then
	// SIGKILL after the grace period or when ctx ends, whichever is first.
	// It returns once the process has been reaped.
	Stop(ctx context.Context) error
}

// Starter starts a process. ctx bounds the starting only, not the
// process's life.
type Starter func(ctx context.Context, c Command) (Process, error)

// ExecStarter returns the default Starter: os/exec, each process in its own
// process group (so a stop reaches whatever it spawned), killed if meshexp
// dies (Linux parent-death signal), restarted with a capped backoff when
// Command.Restart is set. grace is the time between SIGTERM and SIGKILL.
func ExecStarter(logger *slog.Logger, grace time.Duration) Starter {
	if grace <= 0 {
		grace = DefaultStopGrace
	}
	return func(ctx context.Context, c Command) (Process, error) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("starting %s: %w", c.Name, err)
		}
		p := &execProcess{c: c, grace: grace, logger: logger, done: make(chan struct{}), stop: make(chan struct{})}
		cmd, err := p.startOnce()
		if err != nil {
			return nil, err
		}
		go p.run(cmd)
		return p, nil
	}
}

// Restart backoff: quick enough that a killed agent is back before the
// proxy's identity client gives up, capped so a crash loop stays cheap.
const (
	restartMinDelay = 100 * time.Millisecond
	restartMaxDelay = 5 * time.Second
	// restartResetAfter: a process that ran this long restarts at once
	// again.
	restartResetAfter = 30 * time.Second
)

type execProcess struct {
	c      Command
	grace  time.Duration
	logger *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool
	err      error

	done     chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
}

func (p *execProcess) startOnce() (*exec.Cmd, error) {
	cmd := exec.Command(p.c.Path, p.c.Args...)
	cmd.Env = p.c.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // never inherit meshexp's environment
	}
	cmd.Stdout, cmd.Stderr = p.c.Stdout, p.c.Stderr
	cmd.SysProcAttr = childSysProcAttr()
	// A grandchild holding the output pipe must not block Wait forever.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", p.c.Name, p.c.Path, err)
	}
	p.logger.Debug("started process", "name", p.c.Name, "pid", cmd.Process.Pid, "path", p.c.Path, "args", p.c.Args)
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
	return cmd, nil
}

// run owns Wait for every incarnation of the process.
func (p *execProcess) run(cmd *exec.Cmd) {
	delay := restartMinDelay
	for {
		began := time.Now()
		err := cmd.Wait()
		p.mu.Lock()
		stopping := p.stopping
		p.cmd = nil
		p.mu.Unlock()
		if p.c.OnExit != nil && !stopping {
			p.c.OnExit(err)
		}
		if stopping || !p.c.Restart {
			p.finish(err)
			return
		}
		if time.Since(began) > restartResetAfter {
			delay = restartMinDelay
		}
		p.logger.Warn("process exited; restarting", "name", p.c.Name, "pid", cmd.Process.Pid, "err", exitReason(err), "after", delay)
		select {
		case <-p.stop:
			p.finish(err)
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, restartMaxDelay)
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			p.finish(err)
			return
		}
		p.mu.Unlock()
		next, serr := p.startOnce()
		if serr != nil {
			p.logger.Error("restart failed", "name", p.c.Name, "err", serr)
			p.finish(serr)
			return
		}
		cmd = next
	}
}

func (p *execProcess) finish(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	close(p.done)
}

func (p *execProcess) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *execProcess) Done() <-chan struct{} { return p.done }

func (p *execProcess) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	p.stopOnce.Do(func() { close(p.stop) })

	p.signal(syscall.SIGTERM)
	grace := time.NewTimer(p.grace)
	defer grace.Stop()
	select {
	case <-p.done:
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	p.logger.Warn("process did not stop after SIGTERM; killing it", "name", p.c.Name, "pid", p.Pid())
	p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		// SIGKILL cannot be ignored; only an unkillable (D state) process
		// gets here.
		return fmt.Errorf("stopping %s: process %d did not exit after SIGKILL", p.c.Name, p.Pid())
	}
}

// signal sends sig to the current incarnation's process group.
func (p *execProcess) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	pid := p.cmd.Process.Pid
	// The group id is the pid (Setpgid); fall back to the pid alone if the
	// group is gone already.
	if err := syscall.Kill(-pid, sig); err != nil {
		_ = syscall.Kill(pid, sig)
	}
}

// exitReason is a short text for a Wait error, "" for a clean exit.
func exitReason(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exited 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String()
	default:
		return err.Error()
	}
}
