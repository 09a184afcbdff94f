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

// ExitError carries a child's exit status out of Run.
type ExitError struct {
	Who  string
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("%s exited with status %d", e.Who, e.Code) }

// Run executes the lifecycle. It returns nil after a clean shutdown (ctx
// cancelled by SIGTERM/SIGINT), an *ExitError when the proxy or the workload
// ended the run, and any other error when a phase failed. Teardown runs on
// every path, with its own deadline, after ctx is already done.
func (l *Lifecycle) Run(ctx context.Context) (err error) {
	var undo []step
	defer func() {
		if terr := l.teardown(undo); terr != nil {
			err = errors.Join(err, terr)
		}
	}()
	push := func(name string, f func(context.Context) error) {
		if f != nil {
			undo = append(undo, step{name, f})
		}
	}

	l.Logger.Info("phase: identity")
	stopIdentity, err := l.Phases.Identity(ctx)
	push("identity", stopIdentity)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}

	if l.Phases.DNS != nil {
		l.Logger.Info("phase: dns")
		stop, err := l.Phases.DNS(ctx)
		push("dns", stop)
		if err != nil {
			return fmt.Errorf("dns: %w", err)
		}
	}

	if l.Phases.Intercept != nil {
		l.Logger.Info("phase: interception")
		remove, err := l.Phases.Intercept(ctx)
		push("interception", remove)
		if err != nil {
			return fmt.Errorf("interception: %w", err)
		}
	}

	l.Logger.Info("phase: proxy")
	proxy, err := l.Phases.Proxy(ctx)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	push("proxy", proxy.Stop)

	l.Logger.Info("phase: waiting for proxy readiness", "timeout", l.ReadyTimeout)
	if err := l.waitReady(ctx, proxy); err != nil {
		return err
	}

	l.Logger.Info("phase: workload")
	workload, err := l.Phases.Workload(ctx)
	if err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	push("workload", workload.Stop)

	if l.Phases.Register != nil {
		l.Logger.Info("phase: registration")
		stop, err := l.Phases.Register(ctx)
		push("registration", stop)
		if err != nil {
			return fmt.Errorf("registration: %w", err)
		}
	}

	l.Logger.Info("running")
	select {
	case <-ctx.Done():
		l.Logger.Info("shutting down", "reason", context.Cause(ctx))
		return nil
	case <-proxy.Exited():
		// The demo's contract: when the proxy dies, the container exits.
		return &ExitError{Who: "proxy", Code: proxy.ExitCode()}
	case <-workload.Exited():
		return &ExitError{Who: "workload", Code: workload.ExitCode()}
	}
}

// waitReady waits for the proxy's readiness, failing early if the proxy
// exits or the deadline passes.
func (l *Lifecycle) waitReady(ctx context.Context, proxy Child) error {
	rctx, cancel := context.WithTimeout(ctx, l.ReadyTimeout)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- l.Phases.Ready(rctx) }()
	select {
	case err := <-ready:
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return nil // shutting down; teardown follows
		}
		return fmt.Errorf("proxy readiness: waited %s for /ready: %w", l.ReadyTimeout, err)
	case <-proxy.Exited():
		return &ExitError{Who: "proxy", Code: proxy.ExitCode()}
	}
}

type step struct {
	name string
	f    func(context.Context) error
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
