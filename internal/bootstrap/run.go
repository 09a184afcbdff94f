package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/instance"
	"github.com/meshexp/meshexp/internal/netfilter"
	"github.com/meshexp/meshexp/internal/proxyenv"
	"github.com/meshexp/meshexp/internal/spire"
	"github.com/meshexp/meshexp/internal/supervise"
)

// secretEnv are meshexp's own variables that no child inherits.
var secretEnv = []string{"MESHEXP_SPIRE_JOIN_TOKEN"}

// Run is `meshexp bootstrap`: the whole lifecycle for a validated config.
// Before it changes anything it takes the network namespace for itself
// (an *instance.HeldError names the meshexp that has it) and ends what a
// crashed predecessor left there.
func Run(ctx context.Context, c *config.Config, logger *slog.Logger) error {
	relay := startSignalRelay(ctx, logger)
	defer relay.stop()
	anchors, err := os.ReadFile(c.TrustAnchorPath())
	if err != nil {
		return fmt.Errorf("bootstrap: reading trust anchor: %w", err)
	}
	env, err := proxyenv.Render(c, anchors, DualStack(c))
	if err != nil {
		return err
	}
	lock, err := instance.Acquire(ctx, "bootstrap", "starting a second bootstrap")
	if err != nil {
		return err
	}
	defer lock.Release()
	ns, err := netnsID()
	if err != nil {
		return err
	}
	state := newStateFile(ns, logger)
	if err := state.recoverLeftovers(); err != nil {
		return err
	}
	// Removed only after the lifecycle's teardown ran to the end.
	defer state.remove()
	// As PID 1 (a container) orphans are ours to reap; elsewhere the
	// reaper makes meshexp a child subreaper so its children's orphans come
	// to it rather than to the host's init.
	if r, err := supervise.StartReaper(ctx, logger); err != nil {
		logger.Warn("not reaping orphaned processes", "err", err)
	} else {
		defer r.Stop()
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	ident := watchIdentity(watchCtx, c, logger) // identity.go
	grace := c.ShutdownGrace
	st := newAdminState(c) // nil with --status-addr off (admin.go)
	lc := &Lifecycle{
		ReadyTimeout: c.ReadyTimeout,
		// Every child gets its grace period, plus room for SPIRE and rules.
		TeardownTimeout: 4*grace + 30*time.Second,
		Logger:          logger,
	}
	lc.Phases.Identity = func(ctx context.Context) (func(context.Context) error, error) {
		o := SPIREOptions(c)
		o.Starter = supervisedStarter(logger, grace, state, ns)
		id, err := spire.Start(ctx, o, logger)
		if err != nil {
			return nil, err
		}
		return id.Stop, nil
	}
	if c.DNS.Enabled {
		lc.Phases.DNS = dnsPhase(c, st, logger)
	}
	if c.Intercept.Enabled {
		lc.Phases.Intercept = func(ctx context.Context) (func(context.Context) error, error) {
			return installRules(ctx, c, logger)
		}
	}
	lc.Phases.Proxy = func(ctx context.Context) (Child, error) {
		return supervise.Start(ctx, state.track(supervise.Spec{
			Name:       "proxy",
			Path:       c.Proxy.Bin,
			Env:        append(baseEnv(), proxyenv.Environ(env)...),
			Credential: &syscall.Credential{Uid: c.Proxy.User.UID, Gid: c.Proxy.User.GID},
			Grace:      grace,
			LineLevel:  proxyLineLevel,
		}, ns), logger)
	}
	readyURL := fmt.Sprintf("http://127.0.0.1:%d/ready", c.Proxy.AdminPort)
	lc.Phases.Ready = func(ctx context.Context) error { return WaitReady(ctx, readyURL) }
	lc.Phases.Workload = func(ctx context.Context) (Child, error) {
		w, err := supervise.Start(ctx, state.track(supervise.Spec{
			Name:       "workload",
			Path:       c.Workload,
			Env:        baseEnv(),
			Credential: &syscall.Credential{Uid: c.WorkloadUser.UID, Gid: c.WorkloadUser.GID},
			Grace:      grace,
			Restart:    supervise.Policy{Mode: supervise.Mode(c.WorkloadRestart)},
		}, ns), logger)
		if err != nil {
			return nil, err
		}
		relay.set(w)
		return w, nil
	}
	if c.Register.Enabled {
		w, probs := KubeWorkload(c, logger)
		if err := probs.Err(); err != nil {
			return err
		}
		lc.Phases.Register = registerPhase(c, w, readyURL, st, ident.Readiness, logger)
	}
	if c.Fleet.ControllerAddr != "" { // exclusive with --register (config)
		args, probs := FleetAgent(c, fleetReadyURL(c, readyURL), state.regDir, logger)
		if err := probs.Err(); err != nil {
			return err
		}
		lc.Phases.Register = fleetPhase(c, args, st, state, ns, logger) // fleet.go
		if st != nil {
			st.SetController(controllerStatus(c, state.regDir)) // the agent's published state in /status
		}
	}
	stopAdmin, err := serveAdmin(ctx, c, st, lc, readyURL, ident.Readiness, logger) // admin.go
	if err != nil {
		return err
	}
	defer stopAdmin()
	return lc.Run(ctx)
}

// installRules plans and installs the interception rules, and returns
// their removal.
func installRules(ctx context.Context, c *config.Config, logger *slog.Logger) (func(context.Context) error, error) {
	o := InterceptOptions(c)
	if c.SPIRE.Mode == config.SPIREExternal {
		// The agent is a separate binary meshexp cannot mark; its server
		// is exempted by address instead.
		if d, err := spireServerDestination(ctx, c); err == nil {
			o.ExemptDestinations = append(o.ExemptDestinations, d...)
		} else {
			logger.Warn("SPIRE server not exempted from interception", "err", err)
		}
	}
	rs, err := netfilter.Plan(o)
	if err != nil {
		return nil, err
	}
	r, err := netfilter.NewRunner(ctx, rs.Backend, logger)
	if err != nil {
		return nil, err
	}
	if err := r.Install(ctx, rs); err != nil {
		return nil, err
	}
	return r.Remove, nil
}

// baseEnv is meshexp's environment without its secrets, for children.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		secret := false
		for _, s := range secretEnv {
			secret = secret || k == s
		}
		if !secret {
			out = append(out, kv)
		}
	}
	return out
}

// supervisedStarter runs SPIRE's processes under the supervisor, so they
// share its process groups, parent-death signal, output attribution and
// restart backoff.
func supervisedStarter(logger *slog.Logger, grace time.Duration, state *stateFile, ns string) spire.Starter {
	return func(ctx context.Context, cmd spire.Command) (spire.Process, error) {
		env := cmd.Env
		if env == nil {
			env = []string{} // SPIRE never inherits meshexp's environment
		}
		spec := supervise.Spec{
			Name:   cmd.Name,
			Path:   cmd.Path,
			Args:   cmd.Args,
			Env:    env,
			Stdout: cmd.Stdout,
			Stderr: cmd.Stderr,
			Grace:  grace,
		}
		if cmd.Restart {
			spec.Restart = supervise.Policy{Mode: supervise.ModeAlways, MaxBackoff: 5 * time.Second}
		}
		if cmd.OnExit != nil {
			spec.OnEvent = func(e supervise.Event) {
				if e.Kind != supervise.EventExited {
					return
				}
				var err error
				switch {
				case e.Err != nil:
					err = e.Err
				case e.ExitCode != 0:
					err = fmt.Errorf("%s exited with status %d", cmd.Name, e.ExitCode)
				}
				cmd.OnExit(err)
			}
		}
		ch, err := supervise.Start(ctx, state.track(spec, ns), logger)
		if err != nil {
			return nil, err
		}
		return supervisedProcess{ch}, nil
	}
}

type supervisedProcess struct{ c *supervise.Child }

func (p supervisedProcess) Pid() int                       { return p.c.PID() }
func (p supervisedProcess) Done() <-chan struct{}          { return p.c.Exited() }
func (p supervisedProcess) Stop(ctx context.Context) error { return p.c.Stop(ctx) }

// spireServerDestination resolves the external SPIRE server's address,
// before interception is installed, into the destinations to exempt.
func spireServerDestination(ctx context.Context, c *config.Config) ([]netip.AddrPort, error) {
	host := c.SPIRE.ServerAddress
	if host == "" {
		return nil, errors.New("no SPIRE server address")
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(a, c.SPIRE.ServerPort)}, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolving SPIRE server %s: %w", host, err)
	}
	out := make([]netip.AddrPort, len(addrs))
	for i, a := range addrs {
		out[i] = netip.AddrPortFrom(a.Unmap(), c.SPIRE.ServerPort)
	}
	return out, nil
}
