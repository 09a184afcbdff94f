package bootstrap

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/meshexp/meshexp/internal/admin"
	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/netfilter"
	"github.com/meshexp/meshexp/internal/probe"
	"github.com/meshexp/meshexp/internal/spire"
)

// newAdminState returns the admin endpoint's state, or nil when
// --status-addr is off.
func newAdminState(c *config.Config) *admin.State {
	if c.StatusAddr == "" || c.StatusAddr == config.StatusOff {
		return nil
	}
	st := admin.NewState()
	st.SetIdentity(c.SPIFFEID(), time.Time{})
	st.SetRegistration(func(r *admin.Registration) { r.Enabled = c.Register.Enabled })
	return st
}

// serveAdmin starts the admin endpoint for st (nil: nothing) and wraps
// lc's phases to record their durations, the children, the SVID's expiry
// and the rules installed. It fails, before anything on the host changed,
// when the address is taken.
func serveAdmin(ctx context.Context, c *config.Config, st *admin.State, lc *Lifecycle, readyURL string, identity func() (bool, string, string), logger *slog.Logger) (func(), error) {
	releaseStartGarbage(lc)
	if st == nil {
		return func() {}, nil
	}
	timed := func(name string, f func(context.Context) (func(context.Context) error, error), after func(context.Context)) func(context.Context) (func(context.Context) error, error) {
		if f == nil {
			return nil
		}
		return func(ctx context.Context) (func(context.Context) error, error) {
			t0 := time.Now()
			stop, err := f(ctx)
			st.PhaseDone(name, time.Since(t0), err)
			if err == nil && after != nil {
				after(ctx)
			}
			return stop, err
		}
	}
	child := func(name string, f func(context.Context) (Child, error)) func(context.Context) (Child, error) {
		if f == nil {
			return nil
		}
		return func(ctx context.Context) (Child, error) {
			t0 := time.Now()
			ch, err := f(ctx)
			st.PhaseDone(name, time.Since(t0), err)
			if info, ok := ch.(admin.ChildInfo); ok && err == nil {
				st.AddChild(name, info)
			}
			return ch, err
		}
	}
	svid := func(ctx context.Context) {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := spire.FetchSVID(fctx, spire.FetchOptions{SocketPath: c.SPIRE.SocketPath, ID: c.SPIFFEID(),
			UID: c.Proxy.User.UID, GID: c.Proxy.User.GID, TrustAnchorPath: c.TrustAnchorPath()})
		if err != nil {
			logger.Debug("admin: SVID expiry not read", "err", err)
			return
		}
		st.SetIdentity(c.SPIFFEID(), s.Certificates[0].NotAfter)
	}
	lc.Phases.Identity = timed("identity", lc.Phases.Identity, svid)
	lc.Phases.DNS = timed("dns", lc.Phases.DNS, nil)
	lc.Phases.Intercept = timed("intercept", lc.Phases.Intercept, func(ctx context.Context) { recordRules(ctx, c, st, logger) })
	lc.Phases.Proxy = child("proxy", lc.Phases.Proxy)
	if ready := lc.Phases.Ready; ready != nil {
		lc.Phases.Ready = func(ctx context.Context) error {
			t0 := time.Now()
			err := ready(ctx)
			st.PhaseDone("ready", time.Since(t0), err)
			return err
		}
	}
	lc.Phases.Workload = child("workload", lc.Phases.Workload)
	lc.Phases.Register = timed("register", lc.Phases.Register, nil)

	hc := &http.Client{Timeout: time.Second}
	// meshexp's /ready is what the ExternalWorkload's Ready is made of
	// (the fleet agent reports it): the proxy, the identity, the probes.
	st.SetReady(func() bool {
		if ProbeReady(context.Background(), hc, readyURL) != nil {
			return false
		}
		if ok, _, _ := identity(); !ok {
			return false
		}
		for _, p := range st.Probes() {
			if !p.Passing {
				return false
			}
		}
		return true
	})
	stop, _, err := admin.Serve(c.StatusAddr, st, logger.With("component", "admin"))
	if err != nil {
		return nil, err
	}
	// The SVID rotates: read its expiry again now and then.
	rctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(5 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				svid(rctx)
			}
		}
	}()
	return func() {
		cancel()
		sctx, c2 := context.WithTimeout(context.Background(), 2*time.Second)
		defer c2()
		_ = stop(sctx)
	}, nil
}

// recordRules reads the rules interception installed, per family.
func recordRules(ctx context.Context, c *config.Config, st *admin.State, logger *slog.Logger) {
	rs, err := netfilter.Plan(InterceptOptions(c))
	if err != nil {
		return
	}
	r, err := netfilter.NewRunner(ctx, rs.Backend, logger)
	if err != nil {
		return
	}
	sts, err := r.Show(ctx, rs)
	if err != nil {
		logger.Debug("admin: rules not read", "err", err)
		return
	}
	var out []admin.Rules
	for _, s := range sts {
		if s.Skipped == "" {
			out = append(out, admin.Rules{Family: s.Family.String(), Count: len(s.Installed)})
		}
	}
	st.SetRules(out)
}

// adminRegistration hooks the registrar's writes and the probes into st.
func adminRegistration(st *admin.State, opts *kube.Options, probes *probe.Set) {
	if st == nil {
		return
	}
	opts.OnWrite = func(cond kube.Condition, err error) {
		st.SetRegistration(func(r *admin.Registration) {
			if err != nil {
				r.LastError = err.Error()
				return
			}
			r.Ready, r.Reason, r.Message, r.LastWrite, r.LastError = cond.Status, cond.Reason, cond.Message, time.Now(), ""
		})
	}
	if probes != nil {
		st.SetProbes(func() []admin.Probe {
			var out []admin.Probe
			for _, r := range probes.Results() {
				out = append(out, admin.Probe{Probe: r.Probe, Passing: r.Passing, Message: r.Message, LastProbe: r.LastProbe})
			}
			return out
		})
	}
}

// releaseStartGarbage returns the start's garbage (SPIRE configs,
// certificates, rule dumps) to the OS once the workload has started,
// rather than at the scavenger's pace: the steady-state RSS drops by about
// 0.3 MiB (bench-bootstrap), which keeps bootstrap with its admin endpoint
// within 25 MiB.
func releaseStartGarbage(lc *Lifecycle) {
	wl := lc.Phases.Workload
	if wl == nil {
		return
	}
	lc.Phases.Workload = func(ctx context.Context) (Child, error) {
		ch, err := wl(ctx)
		debug.FreeOSMemory()
		return ch, err
	}
}
