package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Prober reports whether the workload is ready; bootstrap passes one that
// GETs the proxy's admin /ready.
type Prober func(ctx context.Context) error

// Options tune a Registrar. Zero values take the defaults named below,
// which follow kubelet's readiness probe (periodSeconds 10, timeoutSeconds
// 1, successThreshold 1, failureThreshold 3: k8s.io/api/core/v1 Probe) and
// node lease (leaseDurationSeconds 40, renewed every quarter of it:
// pkg/kubelet/kubelet.go, nodeLeaseRenewIntervalFraction 0.25).
type Options struct {
	ProbePeriod      time.Duration // default 10s
	ProbeTimeout     time.Duration // default 1s
	SuccessThreshold int           // default 1
	FailureThreshold int           // default 3
	LeaseDuration    time.Duration // default 40s
	RenewInterval    time.Duration // default LeaseDuration/4
	// ResyncPeriod re-applies the ExternalWorkload, Service and condition,
	// repairing hand edits and deletions; an unchanged apply is not
	// written to etcd. Default 5m.
	ResyncPeriod   time.Duration
	RequestTimeout time.Duration // per API request; default 10s
	MinBackoff     time.Duration // first retry after an API error; default 1s
	MaxBackoff     time.Duration // default 30s
	// Holder is the Lease's holderIdentity; default the host name.
	Holder string
	// SkipService leaves the Service to someone else (GitOps).
	SkipService bool
	// DeleteOnShutdown deletes the ExternalWorkload, Service and Lease
	// after writing Ready=False; otherwise they stay, not ready.
	DeleteOnShutdown bool
	// ShutdownTimeout bounds the graceful path. Default 10s.
	ShutdownTimeout time.Duration
	// Gate, when set, is a second readiness source beside the proxy (the
	// workload's own probes, with their own thresholds): Ready is True
	// only while the proxy is ready and Gate is ok; while Gate is not,
	// its reason and message are written. GateChanged wakes the
	// registrar on Gate's transitions, so Ready follows at once.
	Gate        func() (ok bool, reason, message string)
	GateChanged <-chan struct{}
	// OnWrite, when set, hears every Ready write (err nil) and every
	// failed one, for status reporting.
	OnWrite func(c Condition, err error)
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ProbePeriod, 10*time.Second)
	def(&o.ProbeTimeout, time.Second)
	def(&o.LeaseDuration, 40*time.Second)
	def(&o.RenewInterval, o.LeaseDuration/4)
	def(&o.ResyncPeriod, 5*time.Minute)
	def(&o.RequestTimeout, 10*time.Second)
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.ShutdownTimeout, 10*time.Second)
	if o.SuccessThreshold <= 0 {
		o.SuccessThreshold = 1
	}
	if o.FailureThreshold <= 0 {
		o.FailureThreshold = 3
	}
	if o.Holder == "" {
		o.Holder, _ = os.Hostname()
	}
}

// Reasons written on the Ready condition.
const (
	ReasonProxyReady    = "ProxyReady"
	ReasonProxyNotReady = "ProxyNotReady"
	ReasonShutdown      = "Shutdown"
	ReasonManual        = "SetByHand"
)

// Registrar keeps one host's registration true while the workload runs.
type Registrar struct {
	c      *Client
	w      Workload
	probe  Prober
	opts   Options
	logger *slog.Logger
	lease  leaseKeeper

	// probe state
	ready            bool
	successes, fails int
	want             Condition // status, reason, message; written on change
	proxyWant        Condition // what the proxy's probe alone says

	// what the API server is known to hold
	registered bool
	written    *Condition
	leaseDue   bool
	backoff    time.Duration
}

// NewRegistrar returns a Registrar for w. It checks w before any request.
func NewRegistrar(c *Client, w Workload, probe Prober, opts Options, logger *slog.Logger) (*Registrar, error) {
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("register workload: %w", err)
	}
	if probe == nil {
		return nil, errors.New("register workload: no readiness probe given")
	}
	opts.setDefaults()
	r := &Registrar{c: c, w: w, probe: probe, opts: opts, logger: logger.With("workload", w.Namespace+"/"+w.Name)}
	r.lease = leaseKeeper{c: c, w: &r.w, holder: opts.Holder, duration: opts.LeaseDuration}
	r.proxyWant = Condition{Type: ConditionReady, Status: "False", Reason: ReasonProxyNotReady,
		Message: "waiting for the first successful readiness probe"}
	r.want = r.proxyWant
	r.leaseDue = true
	return r, nil
}

// Run registers the host and keeps its Ready condition and Lease current
// until ctx is cancelled, then takes the graceful path: Ready=False, then
// delete or keep as configured, within ShutdownTimeout. API errors never
// end Run: they are logged and retried with backoff while the workload
// keeps running, and the condition catches up when the API answers again.
// The returned error is the graceful path's.
func (r *Registrar) Run(ctx context.Context) error {
	probeTick := time.NewTicker(r.opts.ProbePeriod)
	defer probeTick.Stop()
	renewTimer := time.NewTimer(jittered(r.opts.RenewInterval))
	defer renewTimer.Stop()
	resyncTick := time.NewTicker(r.opts.ResyncPeriod)
	defer resyncTick.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	retrying := false

	sync := func() {
		if retrying {
			return // the retry timer owns the next attempt
		}
		if err := r.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			d := r.nextBackoff()
			r.logger.Warn("kubernetes API request failed; the workload keeps running, retrying", "retry_in", d.Round(time.Millisecond), "err", err)
			retry.Reset(d)
			retrying = true
			return
		}
		if r.backoff != 0 {
			r.logger.Info("kubernetes API reachable again; registration is current")
		}
		r.backoff = 0
	}

	r.probeOnce(ctx)
	sync()
	for {
		select {
		case <-ctx.Done():
			return r.shutdown(context.WithoutCancel(ctx))
		case <-probeTick.C:
			r.probeOnce(ctx)
			sync()
		case <-r.opts.GateChanged:
			r.applyGate()
			sync()
		case <-renewTimer.C:
			renewTimer.Reset(jittered(r.opts.RenewInterval))
			r.leaseDue = true
			sync()
		case <-resyncTick.C:
			r.registered = false
			sync()
		case <-retry.C:
			retrying = false
			sync()
		}
	}
}

// probeOnce runs the probe and moves the wanted condition on a transition.
func (r *Registrar) probeOnce(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, r.opts.ProbeTimeout)
	err := r.probe(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	defer r.applyGate()
	if err == nil {
		r.successes++
		r.fails = 0
		if !r.ready && r.successes >= r.opts.SuccessThreshold {
			r.ready = true
			r.proxyWant = Condition{Type: ConditionReady, Status: "True", Reason: ReasonProxyReady,
				Message: "the proxy's readiness probe succeeded"}
			r.logger.Info("workload ready", "successes", r.successes)
		}
		return
	}
	r.fails++
	r.successes = 0
	if r.ready && r.fails >= r.opts.FailureThreshold {
		r.ready = false
		r.proxyWant = Condition{Type: ConditionReady, Status: "False", Reason: ReasonProxyNotReady,
			Message: fmt.Sprintf("the proxy's readiness probe failed %d times in a row: %v", r.fails, err)}
		r.logger.Warn("workload not ready", "failures", r.fails, "err", err)
	} else {
		r.logger.Debug("readiness probe failed", "failures", r.fails, "err", err)
	}
}

// applyGate combines the proxy's verdict with the Gate's into want.
func (r *Registrar) applyGate() {
	r.want = r.proxyWant
	if r.opts.Gate == nil || !r.ready {
		return
	}
	if ok, reason, message := r.opts.Gate(); !ok {
		r.want = Condition{Type: ConditionReady, Status: "False", Reason: reason, Message: message}
	}
}

// sync brings the API server up to date: registration, condition, lease.
func (r *Registrar) sync(ctx context.Context) error {
	if !r.registered {
		if err := r.register(ctx); err != nil {
			return err
		}
	}
	if err := r.writeCondition(ctx, r.want); err != nil {
		return err
	}
	if r.leaseDue {
		rctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
		defer cancel()
		if err := r.lease.renew(rctx, time.Now()); err != nil {
			return err
		}
		r.leaseDue = false
	}
	return nil
}

// register applies the ExternalWorkload and Service and learns the Ready
// condition the API server holds, so a restart of meshexp does not rewrite
// a condition that is already right.
func (r *Registrar) register(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
	defer cancel()
	cur, err := r.c.ApplyWorkload(rctx, &r.w)
	if err != nil {
		return err
	}
	if !r.opts.SkipService {
		if err := r.c.ApplyService(rctx, &r.w); err != nil {
			return err
		}
	}
	r.written = nil
	if cur.Status != nil {
		if c := ReadyCondition(cur.Status.Conditions); c != nil {
			cc := *c
			r.written = &cc
		}
	}
	r.registered = true
	return nil
}

// writeCondition writes want unless the API server already holds it.
func (r *Registrar) writeCondition(ctx context.Context, want Condition) error {
	next, changed := nextCondition(r.written, want.Status == "True", want.Reason, want.Message, time.Now())
	if !changed {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
	defer cancel()
	if _, err := r.c.ApplyReady(rctx, &r.w, next); err != nil {
		if r.opts.OnWrite != nil {
			r.opts.OnWrite(next, err)
		}
		return err
	}
	if r.opts.OnWrite != nil {
		r.opts.OnWrite(next, nil)
	}
	r.written = &next
	r.logger.Info("wrote Ready condition", "status", next.Status, "reason", next.Reason)
	return nil
}

// shutdown withdraws the host (Client.Withdraw: Ready=False, then delete
// or keep), retrying each step until ShutdownTimeout.
func (r *Registrar) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.ShutdownTimeout)
	defer cancel()
	step := func(ctx context.Context, what string, f func(context.Context) error) error {
		r.backoff = 0
		for {
			rctx, rcancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
			err := f(rctx)
			rcancel()
			if err == nil {
				return nil
			}
			d := r.nextBackoff()
			r.logger.Warn("graceful deregistration: request failed, retrying", "step", what, "retry_in", d.Round(time.Millisecond), "err", err)
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s before the %s shutdown deadline: %w", what, r.opts.ShutdownTimeout, err)
			case <-time.After(d):
			}
		}
	}
	mark := func(ctx context.Context, down Condition) (bool, error) {
		if !r.registered {
			// Registration never reached the API server, or a resync is
			// pending: learn what it holds without creating anything.
			cur, err := r.c.GetWorkload(ctx, &r.w)
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			r.written = nil
			if cur.Status != nil {
				if c := ReadyCondition(cur.Status.Conditions); c != nil {
					cc := *c
					r.written = &cc
				}
			}
			r.registered = true
		}
		return false, r.writeCondition(ctx, down)
	}
	return r.c.Withdraw(ctx, &r.w, Withdrawal{
		Reason: ReasonShutdown, Message: "meshexp is stopping the workload",
		Delete: r.opts.DeleteOnShutdown, KeepService: r.opts.SkipService,
		MarkNotReady: mark, Step: step, Logger: r.logger,
	})
}

// jittered adds up to 4% to d, as kubelet's lease controller does
// (wait.JitterUntil with factor 0.04), so hosts started together drift
// apart instead of renewing in bursts.
func jittered(d time.Duration) time.Duration {
	return d + time.Duration(0.04*rand.Float64()*float64(d))
}

// nextBackoff doubles the delay up to MaxBackoff, with ±20% jitter so that
// many hosts that lost the API server together do not return in lockstep.
func (r *Registrar) nextBackoff() time.Duration {
	switch {
	case r.backoff == 0:
		r.backoff = r.opts.MinBackoff
	default:
		r.backoff = min(2*r.backoff, r.opts.MaxBackoff)
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(r.backoff) * jitter)
}
