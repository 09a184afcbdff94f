package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// shutdownSignals end meshexp cleanly: its context is cancelled and every
// command undoes what it did (bootstrap: teardown in reverse, exit 0).
var shutdownSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT}

// ignoredSignals would otherwise end meshexp by their default action
// (terminate, or dump goroutines and exit 2 for SIGQUIT), skipping every
// teardown. They are caught for meshexp's whole life and ignored here;
// bootstrap forwards SIGHUP, SIGUSR1, SIGUSR2 and SIGWINCH to its workload.
// Catching SIGPIPE also makes a write to a closed stdout or stderr (the
// reader of `meshexp ... | tee` killed) return EPIPE instead of killing
// meshexp; a lost log line never stops the lifecycle.
//
// Left to the Go runtime: the fault signals (SIGSEGV, SIGBUS, SIGFPE,
// SIGILL, SIGTRAP, SIGSYS) and SIGABRT, which mean a crash; and job
// control (SIGTSTP, SIGTTIN, SIGTTOU), which only pauses meshexp.
var ignoredSignals = func() []os.Signal {
	s := []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE,
		syscall.SIGALRM, syscall.SIGVTALRM, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGIO,
		syscall.SIGWINCH}
	return append(s, platformSignals()...)
}()

// ShutdownContext installs meshexp's signal policy for the rest of the
// process's life and returns a context cancelled by the first shutdown
// signal (its cause names the signal). Later shutdown signals are ignored:
// the teardown already running has its own deadline.
func ShutdownContext(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, append(append([]os.Signal{}, shutdownSignals...), ignoredSignals...)...)
	go func() {
		for s := range ch {
			for _, sd := range shutdownSignals {
				if s == sd {
					cancel(fmt.Errorf("received %s", s))
				}
			}
		}
	}()
	// The signals stay caught after stop: until the process exits none
	// may take its default action.
	return ctx, func() { cancel(context.Canceled) }
}
