package bootstrap

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// forwardedSignals go from meshexp to the workload (as with docker kill -s
// HUP). SIGTERM, SIGINT and SIGQUIT start the shutdown (cmd/meshexp); every
// other catchable signal is ignored there, so none ends meshexp by its
// default action.
var forwardedSignals = []os.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// signalRelay forwards the reload-style signals to the workload while it
// runs, and says plainly that they are ignored before it exists and once
// the shutdown began.
type signalRelay struct {
	ctx    context.Context
	logger *slog.Logger
	ch     chan os.Signal
	mu     sync.Mutex
	target interface {
		Signal(syscall.Signal) error
	}
	done chan struct{}
}

func startSignalRelay(ctx context.Context, logger *slog.Logger) *signalRelay {
	r := &signalRelay{ctx: ctx, logger: logger, ch: make(chan os.Signal, 8), done: make(chan struct{})}
	signal.Notify(r.ch, forwardedSignals...)
	go r.loop()
	return r
}

// set makes the workload the signals' target.
func (r *signalRelay) set(t interface{ Signal(syscall.Signal) error }) {
	r.mu.Lock()
	r.target = t
	r.mu.Unlock()
}

func (r *signalRelay) loop() {
	defer close(r.done)
	for s := range r.ch {
		sig, _ := s.(syscall.Signal)
		r.mu.Lock()
		t := r.target
		r.mu.Unlock()
		switch {
		case r.ctx.Err() != nil:
			r.logger.Info("signal ignored: meshexp is shutting down", "signal", sig.String())
		case t == nil:
			r.logger.Info("signal ignored: the workload is not running yet", "signal", sig.String())
		default:
			if err := t.Signal(sig); err != nil {
				r.logger.Info("signal not forwarded", "signal", sig.String(), "err", err)
			} else {
				r.logger.Debug("signal forwarded to the workload", "signal", sig.String())
			}
		}
	}
}

// stop ends relaying; the signals stay caught (and ignored) by main.
func (r *signalRelay) stop() {
	signal.Stop(r.ch)
	close(r.ch)
	<-r.done
}
