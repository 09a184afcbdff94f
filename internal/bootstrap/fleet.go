package bootstrap

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/meshexp/meshexp/internal/admin"
	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/fleet"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/supervise"
)

// FleetAgent is the registration agent's command line when --controller-addr
// is set: meshexp itself with fleet.AgentArgs, to run as the proxy's uid.
// IPs are the workload IPs, detected from the default route like
// KubeWorkload does when none are given. readyURL is what the agent
// reports as the host's readiness; stateDir is where it publishes its
// registration state (registrationDir).
// A failed detection is a problem naming the setting, reported before
// anything on the host changes.
func FleetAgent(c *config.Config, readyURL, stateDir string, logger *slog.Logger) ([]string, config.Problems) {
	ips := append([]netip.Addr(nil), c.Register.WorkloadIPs...)
	if len(ips) == 0 {
		ip, err := kube.DetectIP()
		if err != nil {
			return nil, config.Problems{{Input: input(c, "workload-ip"), Message: err.Error(), Fix: "give the address the cluster reaches this host on"}}
		}
		logger.Info("workload IP detected from the default route", "ip", ip.String())
		ips = append(ips, ip)
	}
	o := fleet.AgentOptions{
		Socket:             c.SPIRE.SocketPath,
		ID:                 c.SPIFFEID(),
		TrustAnchor:        c.TrustAnchorPath(),
		ControllerAddr:     c.Fleet.ControllerAddr,
		ControllerIdentity: c.ControllerIdentity(),
		Group:              c.Fleet.Group,
		Namespace:          c.WorkloadNamespace,
		Name:               c.WorkloadName,
		ReadyURL:           readyURL,
		StateDir:           stateDir,
	}
	for _, ip := range ips {
		o.IPs = append(o.IPs, ip.String())
	}
	return append(append([]string{}, fleet.AgentArgs...), o.Args()...), nil
}

// fleetReadyURL is the readiness the agent reports: meshexp's own /ready
// (the proxy's /ready and the workload probes) when the admin endpoint is
// on, else the proxy's /ready.
func fleetReadyURL(c *config.Config, proxyReady string) string {
	if c.StatusAddr == "" || c.StatusAddr == config.StatusOff {
		return proxyReady
	}
	host, port, err := net.SplitHostPort(c.StatusAddr)
	if err != nil {
		return proxyReady
	}
	if a, err := netip.ParseAddr(host); err != nil || a.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/ready"
}

// fleetPhase supervises the registration agent (meshexp controller agent)
// as the proxy's uid: the SPIRE entry selecting that uid gives it the
// host's SVID, the workload's uid still gets none, and interception
// leaves that uid's traffic alone, so it reaches the controller directly.
// It restarts always, with backoff, and is never fatal: a failing agent
// never blocks the workload. Its stop is the lifecycle's teardown step.
// Workload probes, when configured, run here too and feed meshexp's
// /ready, which the agent reports.
func fleetPhase(c *config.Config, args []string, st *admin.State, state *stateFile, ns string, logger *slog.Logger) func(context.Context) (func(context.Context) error, error) {
	return func(context.Context) (func(context.Context) error, error) {
		self, err := os.Executable()
		if err != nil {
			logger.Error("registration agent not started: meshexp's own path", "err", err)
			return nil, nil
		}
		// Not the lifecycle's context: the agent is stopped by teardown.
		ctx, cancel := context.WithCancel(context.Background())
		probes := probeSet(c, logger) // nil without --probe (probes.go)
		probesDone := make(chan struct{})
		if probes != nil {
			adminRegistration(st, &kube.Options{}, probes) // the probes' results into /ready and /status
			go func() { probes.Run(ctx); close(probesDone) }()
		} else {
			close(probesDone)
		}
		if err := state.makeRegistrationDir(c.Proxy.User.UID, c.Proxy.User.GID); err != nil {
			logger.Warn("the registration agent's state will not be published (meshexp status and check will not show it)", "dir", state.regDir, "err", err)
		}
		agent, err := supervise.Start(ctx, state.track(supervise.Spec{
			Name:       "registration",
			Path:       self,
			Args:       args,
			Env:        baseEnv(),
			Credential: &syscall.Credential{Uid: c.Proxy.User.UID, Gid: c.Proxy.User.GID},
			Grace:      c.ShutdownGrace,
			Restart:    supervise.Policy{Mode: supervise.ModeAlways, MaxBackoff: 5 * time.Second},
		}, ns), logger)
		if err != nil {
			logger.Error("registration agent not started", "err", err)
			cancel()
			<-probesDone
			return nil, nil
		}
		if st != nil {
			st.AddChild("registration", agent) // its pid, restarts and last exit in /status
		}
		return func(stopCtx context.Context) error {
			err := agent.Stop(stopCtx)
			cancel()
			<-probesDone
			if err == nil {
				if rerr := os.RemoveAll(state.regDir); rerr != nil {
					logger.Warn("removing the registration state failed", "dir", state.regDir, "err", rerr)
				}
			}
			return err
		}, nil
	}
}

// controllerStatus is /status's view of the registration through the
// controller: what the agent last published (fleet.ReadState), or why
// there is nothing yet.
func controllerStatus(c *config.Config, dir string) func() admin.Controller {
	return func() admin.Controller {
		out := admin.Controller{Addr: c.Fleet.ControllerAddr, Group: c.WorkloadNamespace + "/" + c.Fleet.Group, State: string(fleet.PhaseConnecting)}
		s, err := fleet.ReadState(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out.Error = "the registration agent has published no state yet (bootstrap starts it once the workload runs)"
		case err != nil:
			out.Error = err.Error()
		default:
			out.State, out.ExternalWorkload, out.Error, out.AgentPID = string(s.State), s.ExternalWorkload, s.Error, s.PID
			out.LastRegistered, out.Ready, out.Changed = s.LastRegistered, s.Ready, s.Changed
		}
		return out
	}
}
