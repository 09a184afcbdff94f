package bootstrap

import (
	"log/slog"
	"strings"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/netfilter"
	"github.com/meshexp/meshexp/internal/probe"
)

// WorkloadProbes parses the --probe settings; every bad probe is a
// problem naming the setting. Probes without --register warn: only the
// ExternalWorkload's Ready reads them.
func WorkloadProbes(c *config.Config) ([]probe.Spec, config.Problems) {
	var probs config.Problems
	specs, err := probe.ParseAll(c.Probes.List)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			probs = append(probs, config.Problem{Input: input(c, "probe"), Message: line,
				Fix: "write http://HOST:PORT/PATH, tcp://HOST:PORT, grpc://HOST:PORT[/SERVICE] or exec:/COMMAND [ARG...]"})
		}
	}
	if len(c.Probes.List) > 0 && !c.Register.Enabled && c.Fleet.ControllerAddr == "" {
		probs = append(probs, config.Problem{Input: input(c, "probe"), Warning: true,
			Message: "workload probes only feed the ExternalWorkload's Ready, and neither --register nor --controller-addr is set", Fix: "add --register or --controller-addr"})
	}
	return specs, probs
}

// probeSet returns the running set of workload probes, or nil when none
// are configured. HTTP, TCP and gRPC probes carry the control mark, so
// interception never sends them through the proxy; exec probes run as
// the workload's user.
func probeSet(c *config.Config, logger *slog.Logger) *probe.Set {
	specs, _ := WorkloadProbes(c)
	if len(specs) == 0 {
		return nil
	}
	return probe.NewSet(specs, probe.Timing{
		Period:           c.Probes.Period,
		Timeout:          c.Probes.Timeout,
		SuccessThreshold: c.Probes.SuccessThreshold,
		FailureThreshold: c.Probes.FailureThreshold,
		InitialDelay:     c.Probes.InitialDelay,
	}, probe.Runner{Dial: netfilter.ControlDialer(c.Intercept.ControlMark).DialContext, UID: c.WorkloadUser.UID, GID: c.WorkloadUser.GID}, logger.With("component", "probes"))
}

// gate adapts a probe set to the registrar's Gate.
func gate(s *probe.Set) func() (bool, string, string) {
	return func() (bool, string, string) {
		ok, reason, message, _ := s.Status()
		return ok, reason, message
	}
}

// allGates is one gate from several: the first that is not ok speaks;
// nil ones are skipped, and none at all is no gate.
func allGates(gates ...func() (bool, string, string)) func() (bool, string, string) {
	var set []func() (bool, string, string)
	for _, g := range gates {
		if g != nil {
			set = append(set, g)
		}
	}
	if len(set) == 0 {
		return nil
	}
	return func() (bool, string, string) {
		for _, g := range set {
			if ok, reason, message := g(); !ok {
				return false, reason, message
			}
		}
		return true, "", ""
	}
}
