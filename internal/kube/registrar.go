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
	r.want = Condition{Type: ConditionReady, Status: "False", Reason: ReasonProxyNotReady,
		Message: "waiting for the first successful readiness probe"}
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
	if err == nil {
		r.successes++
		r.fails = 0
		if !r.ready && r.successes >= r.opts.SuccessThreshold {
			r.ready = true
			r.want = Condition{Type: ConditionReady, Status: "True", Reason: ReasonProxyReady,
				Message: "the proxy's readiness probe succeeded"}
			r.logger.Info("workload ready", "successes", r.successes)
		}
		return
	}
	r.fails++
	r.successes = 0
	if r.ready && r.fails >= r.opts.FailureThreshold {
		r.ready = false
		r.want = Condition{Type: ConditionReady, Status: "False", Reason: ReasonProxyNotReady,
			Message: fmt.Sprintf("the proxy's readiness probe failed %d times in a row: %v", r.fails, err)}
		r.logger.Warn("workload not ready", "failures", r.fails, "err", err)
	} else {
		r.logger.Debug("readiness probe failed", "failures", r.fails, "err", err)
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
		return err
	}
	r.written = &next
	r.logger.Info("wrote Ready condition", "status", next.Status, "reason", next.Reason)
	return nil
}

// shutdown writes Ready=False and then deletes or keeps the objects,
// retrying until ShutdownTimeout.
func (r *Registrar) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.ShutdownTimeout)
	defer cancel()
	down := Condition{Type: ConditionReady, Status: "False", Reason: ReasonShutdown,
		Message: "meshexp is stopping the workload"}
	step := func(what string, f func(context.Context) error) error {
		r.backoff = 0
		for {
			err := f(ctx)
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
	gone := false
	if err := step("mark the ExternalWorkload not ready", func(ctx context.Context) error {
		if !r.registered {
			// Registration never reached the API server, or a resync is
			// pending: learn what it holds without creating anything.
			rctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
			cur, err := r.c.GetWorkload(rctx, &r.w)
			cancel()
			if apierrors.IsNotFound(err) {
				gone = true
				return nil
			}
			if err != nil {
				return err
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
		return r.writeCondition(ctx, down)
	}); err != nil {
		return err
	}
	if gone {
		r.logger.Info("no ExternalWorkload to withdraw")
	} else {
		r.logger.Info("marked the ExternalWorkload not ready for shutdown")
	}
	if !r.opts.DeleteOnShutdown {
		return nil
	}
	if err := step("delete the ExternalWorkload, Service and Lease", func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, r.opts.RequestTimeout)
		defer cancel()
		return r.c.deleteWorkload(rctx, &r.w, !r.opts.SkipService)
	}); err != nil {
		return err
	}
	r.logger.Info("deleted the ExternalWorkload for shutdown")
	return nil
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
