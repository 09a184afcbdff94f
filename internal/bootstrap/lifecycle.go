package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Child is a supervised process as the lifecycle sees it.
type Child interface {
	// Exited is closed when the child is finished for good (its restart
	// policy, if any, gave up).
	Exited() <-chan struct{}
	// ExitCode is the child's status once Exited is closed; 128+n when a
	// signal n ended it.
	ExitCode() int
	// Stop ends the child: stop signal, grace period, then SIGKILL.
	Stop(ctx context.Context) error
}

// escaper is a Child that can tell that processes left its tree (a
// workload that daemonized); the lifecycle counts that as a failure.
type escaper interface{ Escaped() bool }

// Phases are the steps of the lifecycle. Each start returns what undoes it;
// the lifecycle undoes them in reverse order on every exit path.
type Phases struct {
	// Identity makes the proxy's SVID available (SPIRE) and returns when a
	// verified SVID is there. Its stop ends what it started.
	Identity func(ctx context.Context) (stop func(context.Context) error, err error)
	// DNS starts the cluster DNS forwarder (optional), before the proxy,
	// which resolves the control plane's names through it.
	DNS func(ctx context.Context) (stop func(context.Context) error, err error)
	// Intercept installs the interception rules; remove deletes them.
	Intercept func(ctx context.Context) (remove func(context.Context) error, err error)
	// Proxy starts linkerd2-proxy.
	Proxy func(ctx context.Context) (Child, error)
	// Ready returns when the proxy reports ready.
	Ready func(ctx context.Context) error
	// Workload starts the workload.
	Workload func(ctx context.Context) (Child, error)
	// Register tells the cluster about the workload (optional). It runs
	// in the background until ctx ends; stop withdraws it.
	Register func(ctx context.Context) (stop func(context.Context) error, err error)
}

// Lifecycle runs the phases in order and tears down in reverse.
type Lifecycle struct {
	Phases       Phases
	ReadyTimeout time.Duration
	// TeardownTimeout bounds the whole teardown; each step gets what is left.
	TeardownTimeout time.Duration
	Logger          *slog.Logger
}

// ExitError says that the proxy or the workload ended the run. Status is
// what meshexp exits with.
type ExitError struct {
	Who  string
	Code int
	// Escaped: processes of the child's tree outlived it (it daemonized).
	Escaped bool
}

func (e *ExitError) Error() string {
	switch {
	case e.Escaped:
		return fmt.Sprintf("%s exited with status %d but left processes running outside its process group (it daemonized or used setsid); they were stopped. Run it in the foreground (no fork-and-exit, no setsid) so meshexp can supervise it", e.Who, e.Code)
	case e.Who == "proxy":
		return fmt.Sprintf("the proxy exited with status %d without being asked to stop; the workload cannot run without it", e.Code)
	}
	return fmt.Sprintf("%s exited with status %d", e.Who, e.Code)
}

// Exit statuses meshexp keeps for itself; a child's status equal to one of
// them is reported as ExitFailure instead, so that 2 always means invalid
// input (see the README's exit-code table).
const (
	ExitFailure = 1
	ExitUsage   = 2
	ExitBusy    = 3
)

// Status is meshexp's exit status for this end of the run:
//   - the proxy ending is always a failure (meshexp did not ask for it):
//     its status, or 1 when it exited 0;
//   - a workload that escaped its tree is a failure: 1 unless its own
//     status already says failure;
//   - otherwise the child's status (0 when the workload finished well,
//     128+n after signal n), except 2 and 3, meshexp's own, which become 1.
func (e *ExitError) Status() int {
	code := e.Code
	switch {
	case code == ExitUsage || code == ExitBusy:
		return ExitFailure
	case code == 0 && (e.Who == "proxy" || e.Escaped):
		return ExitFailure
	}
	return code
}

// phase is one step: start returns its undo (nil when there is nothing to
// undo) even when it fails, so that a half-done step is undone too.
type phase struct {
	name  string
	log   string
	start func(context.Context) (func(context.Context) error, error)
}

type step struct {
	name string
	f    func(context.Context) error
}

// Run executes the lifecycle. It returns nil after a clean shutdown (ctx
// cancelled by SIGTERM/SIGINT, whatever phase was running), an *ExitError
// when the proxy or the workload ended the run, and any other error when a
// phase failed. No phase starts once ctx is done; teardown runs on every
// path, with its own deadline, after ctx is already done.
func (l *Lifecycle) Run(ctx context.Context) (err error) {
	var undo []step
	var cancels []func()
	defer func() {
		if terr := l.teardown(undo); terr != nil {
			err = errors.Join(err, terr)
		}
		for _, c := range cancels {
			c()
		}
	}()
	var proxy, workload Child
	for _, p := range l.phases(&proxy, &workload) {
		if ctx.Err() != nil {
			l.Logger.Info("shutting down", "reason", context.Cause(ctx), "before", p.name)
			return nil
		}
		if exited(proxy) {
			return l.childEnded("proxy", proxy)
		}
		l.Logger.Info("phase: " + p.log)
		// The phase ends early when the proxy dies under it. What it
		// leaves running keeps its context until teardown is over.
		pctx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		if proxy != nil {
			cancels = append(cancels, watchExit(proxy, cancel))
		}
		u, perr := p.start(pctx)
		if u != nil {
			undo = append(undo, step{p.name, u})
		}
		switch {
		case ctx.Err() != nil:
			// The phase's error, if any, is the cancellation's consequence.
			if perr != nil {
				l.Logger.Debug("phase ended by the shutdown", "phase", p.name, "err", perr)
			}
			l.Logger.Info("shutting down", "reason", context.Cause(ctx), "during", p.name)
			return nil
		case exited(proxy):
			return l.childEnded("proxy", proxy)
		case perr != nil:
			return fmt.Errorf("%s: %w", p.name, perr)
		}
	}

	l.Logger.Info("running")
	select {
	case <-ctx.Done():
		l.Logger.Info("shutting down", "reason", context.Cause(ctx))
		return nil
	case <-proxy.Exited():
		// The demo's contract: when the proxy dies, meshexp ends.
		return l.childEnded("proxy", proxy)
	case <-workload.Exited():
		if ctx.Err() != nil {
			return nil
		}
		return l.childEnded("workload", workload)
	}
}

// phases lists the steps in order, skipping the optional ones not set.
func (l *Lifecycle) phases(proxy, workload *Child) []phase {
	ps := []phase{{"identity", "identity", l.Phases.Identity}}
	if l.Phases.DNS != nil {
		ps = append(ps, phase{"dns", "dns", l.Phases.DNS})
	}
	if l.Phases.Intercept != nil {
		ps = append(ps, phase{"interception", "interception", l.Phases.Intercept})
	}
	ps = append(ps,
		phase{"proxy", "proxy", childPhase(l.Phases.Proxy, proxy)},
		phase{"proxy readiness", "waiting for proxy readiness", func(ctx context.Context) (func(context.Context) error, error) {
			rctx, cancel := context.WithTimeout(ctx, l.ReadyTimeout)
			defer cancel()
			if err := l.Phases.Ready(rctx); err != nil {
				return nil, fmt.Errorf("waited %s for /ready: %w", l.ReadyTimeout, err)
			}
			return nil, nil
		}},
		phase{"workload", "workload", childPhase(l.Phases.Workload, workload)},
	)
	if l.Phases.Register != nil {
		ps = append(ps, phase{"registration", "registration", l.Phases.Register})
	}
	return ps
}

// childPhase turns a child's start into a phase whose undo stops it.
func childPhase(start func(context.Context) (Child, error), out *Child) func(context.Context) (func(context.Context) error, error) {
	return func(ctx context.Context) (func(context.Context) error, error) {
		c, err := start(ctx)
		if err != nil || c == nil {
			return nil, err
		}
		*out = c
		return c.Stop, nil
	}
}

// childEnded is the run's end when a child exits without being asked.
func (l *Lifecycle) childEnded(who string, c Child) error {
	e := &ExitError{Who: who, Code: c.ExitCode()}
	if esc, ok := c.(escaper); ok {
		e.Escaped = esc.Escaped()
	}
	return e
}

func exited(c Child) bool {
	if c == nil {
		return false
	}
	select {
	case <-c.Exited():
		return true
	default:
		return false
	}
}

// watchExit calls f when c exits, until stop is called.
func watchExit(c Child, f func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-c.Exited():
			f()
		case <-done:
		}
	}()
	return func() { close(done) }
}

func (l *Lifecycle) teardown(undo []step) error {
	if len(undo) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.TeardownTimeout)
	defer cancel()
	var errs []error
	for i := len(undo) - 1; i >= 0; i-- {
		s := undo[i]
		l.Logger.Info("teardown", "step", s.name)
		if err := s.f(ctx); err != nil {
			l.Logger.Error("teardown step failed", "step", s.name, "err", err)
			errs = append(errs, fmt.Errorf("teardown %s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}
