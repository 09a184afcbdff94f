package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// StopAll stops children in reverse order — the last started first, as the
// bootstrap's teardown wants (workload, proxy, SPIRE agent, server) — each
// with its own grace period and all within ctx: once ctx ends, each
// remaining child gets SIGKILL without waiting its grace. Nil entries are
// skipped. It returns every error.
func StopAll(ctx context.Context, children ...*Child) error {
	var errs []error
	for i := len(children) - 1; i >= 0; i-- {
		if c := children[i]; c != nil {
			if err := c.Stop(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Forward relays sigs, when meshexp receives them, to the process of each
// child (Child.Signal), until ctx ends or stop is called; stop returns once
// relaying has ended. It is meant for SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH
// and the like. SIGTERM and SIGINT are refused: they start meshexp's own
// ordered shutdown, which stops children in order rather than all at once.
func Forward(ctx context.Context, logger *slog.Logger, sigs []syscall.Signal, children ...*Child) (stop func(), err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(sigs) == 0 {
		return nil, errors.New("forwarding signals: no signal given")
	}
	notify := make([]os.Signal, 0, len(sigs))
	for _, s := range sigs {
		switch s {
		case syscall.SIGTERM, syscall.SIGINT:
			return nil, fmt.Errorf("forwarding %s: it is meshexp's shutdown signal; cancel the context and stop the children in order instead", s)
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD:
			return nil, fmt.Errorf("forwarding %s: it cannot or must not be caught", s)
		}
		notify = append(notify, s)
	}
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, notify...)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-ch:
				sig, _ := s.(syscall.Signal)
				for _, c := range children {
					if err := c.Signal(sig); err != nil {
						logger.Info("signal not forwarded", "child", c.Name(), "signal", sig.String(), "err", err)
						continue
					}
					logger.Debug("signal forwarded", "child", c.Name(), "signal", sig.String())
				}
			}
		}
	}()
	return func() { cancel(); wg.Wait() }, nil
}
