package bootstrap

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/meshexp/meshexp/internal/admin"
	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/netfilter"
)

// defaultServicePort is the demo's Service port in front of its http:8000.
const defaultServicePort = 80

// KubeWorkload maps the configuration onto the host's ExternalWorkload and
// Service: identity and server name from the same functions as the proxy's
// environment, IPs detected from the default route when none are given.
// Every bad input is returned as a problem; nothing is sent anywhere.
func KubeWorkload(c *config.Config, logger *slog.Logger) (*kube.Workload, config.Problems) {
	w := &kube.Workload{
		Name:       c.WorkloadName,
		Namespace:  c.WorkloadNamespace,
		Identity:   c.SPIFFEID(),
		ServerName: c.ServerName(),
		Labels:     map[string]string{},
		IPs:        append([]netip.Addr(nil), c.Register.WorkloadIPs...),
		// What Linkerd reads about the host's proxy: its inbound port (the
		// opaque-transport port) and its opaque ports.
		ProxyInboundPort: int32(c.Proxy.InboundPort),
		OpaquePorts:      joinPortRanges(c.Proxy.OpaquePorts),
	}
	var probs config.Problems
	bad := func(setting, fix string, err error) {
		probs = append(probs, config.Problem{Input: input(c, setting), Message: err.Error(), Fix: fix})
	}
	if len(w.IPs) == 0 {
		ip, err := kube.DetectIP()
		if err != nil {
			bad("workload-ip", "give the address the cluster reaches this host on", err)
		} else {
			logger.Info("workload IP detected from the default route", "ip", ip.String())
			w.IPs = append(w.IPs, ip)
		}
	}
	for _, s := range c.Register.Ports {
		p, err := kube.ParsePort(s)
		if err != nil {
			bad("port", "write NAME:PORT[/TCP|UDP], e.g. http:8000", err)
			continue
		}
		w.Ports = append(w.Ports, p)
	}
	for _, s := range c.Register.Labels {
		k, v, err := kube.ParseLabel(s)
		if err != nil {
			bad("label", "write KEY=VALUE with a Kubernetes label key and value", err)
			continue
		}
		w.Labels[k] = v
	}
	switch {
	case c.Register.ServicePort != 0:
		w.ServicePort = int32(c.Register.ServicePort)
	case c.Origin("port") == "default":
		w.ServicePort = defaultServicePort
	}
	// What the ExternalWorkload and Service add on top of the settings (a
	// Service name is a DNS-1035 label, at most two IPs, ...), once every
	// input parsed.
	if len(probs.Errors()) == 0 {
		if err := w.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				probs = append(probs, config.Problem{Input: "registration", Message: line})
			}
		}
	}
	return w, probs
}

// joinPortRanges writes port ranges as Linkerd's opaque-ports annotation
// does: "25,587,4000-4100".
func joinPortRanges(rs []config.PortRange) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

// input names a setting for a message: where it came from, or its flag.
func input(c *config.Config, setting string) string {
	if o := c.Origin(setting); o != "default" {
		return o
	}
	return "--" + setting
}

// registerPhase starts the registrar in the background. Its stop cancels
// it and waits for the graceful path (Ready=False, then delete or keep).
// The API connections carry the control mark, so interception lets them
// through.
func registerPhase(c *config.Config, w *kube.Workload, readyURL string, st *admin.State, readiness func() (bool, string, string), logger *slog.Logger) func(context.Context) (func(context.Context) error, error) {
	return func(context.Context) (func(context.Context) error, error) {
		cfg, err := kube.LoadConfig(c.Register.Kubeconfig, netfilter.ControlDialer(c.Intercept.ControlMark).DialContext)
		if err != nil {
			return nil, err
		}
		cl, err := kube.NewClient(cfg)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client: %w", err)
		}
		opts := kube.Options{
			Holder:           c.NodeName,
			DeleteOnShutdown: c.Register.DeleteOnShutdown,
			ProbePeriod:      c.Register.ProbePeriod,
			LeaseDuration:    c.Register.LeaseDuration,
		}
		probes := probeSet(c, logger) // nil without --probe (probes.go)
		// Beside the proxy, one gate: the identity (an expired SVID or
		// trust anchor), then every workload probe.
		gates := []func() (bool, string, string){readiness}
		if probes != nil {
			gates = append(gates, gate(probes))
			opts.GateChanged = probes.Changed()
		}
		opts.Gate = allGates(gates...)
		adminRegistration(st, &opts, probes) // admin.go
		r, err := kube.NewRegistrar(cl, *w, kube.HTTPProbe(readyURL, nil), opts, logger)
		if err != nil {
			return nil, err
		}
		// Not the lifecycle's context: SIGTERM must not cut the registrar
		// off before its graceful path runs in teardown.
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		probesDone := make(chan struct{})
		if probes != nil {
			go func() { probes.Run(ctx); close(probesDone) }()
		} else {
			close(probesDone)
		}
		return func(stopCtx context.Context) error {
			cancel()
			select {
			case err := <-done:
				cl.Close()
				<-probesDone // exec probes end with ctx (CommandContext)
				return err
			case <-stopCtx.Done():
				return fmt.Errorf("registration did not finish its graceful path: %w", stopCtx.Err())
			}
		}, nil
	}
}
