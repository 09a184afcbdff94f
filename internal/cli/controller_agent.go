package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/fleet"
)

// newControllerAgentCmd is the host's registration agent, which bootstrap
// starts as the proxy's uid (fleet.AgentArgs); see fleet.AgentOptions for
// why that uid. Users set its inputs through bootstrap's settings
// (--controller-addr, --controller-identity, --group).
func newControllerAgentCmd(g *globals) *cobra.Command {
	var o fleet.AgentOptions
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "internal: keep this host registered with the controller (run by bootstrap as the proxy's uid)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var errs []error
			for flag, v := range map[string]string{"--socket": o.Socket, "--id": o.ID, "--trust-anchor": o.TrustAnchor,
				"--controller-addr": o.ControllerAddr, "--controller-identity": o.ControllerIdentity, "--group": o.Group,
				"--namespace": o.Namespace, "--ready-url": o.ReadyURL} {
				if v == "" {
					errs = append(errs, errors.New(flag+": required"))
				}
			}
			if err := errors.Join(errs...); err != nil {
				return &UsageError{Err: err}
			}
			err := fleet.RunAgent(cmd.Context(), o, g.logger, nil)
			if cmd.Context().Err() != nil {
				return nil // stopped by a signal: a clean exit
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Socket, "socket", "", "the SPIRE agent's Workload API socket")
	fl.StringVar(&o.ID, "id", "", "the host's SPIFFE ID")
	fl.StringVar(&o.TrustAnchor, "trust-anchor", "", "the mesh's trust anchor (PEM)")
	fl.StringVar(&o.ControllerAddr, "controller-addr", "", "the controller's host:port")
	fl.StringVar(&o.ControllerIdentity, "controller-identity", "", "the controller's SPIFFE ID or TLS name")
	fl.StringVar(&o.Group, "group", "", "the ExternalGroup to join")
	fl.StringVar(&o.Namespace, "namespace", "", "the ExternalGroup's namespace")
	fl.StringVar(&o.Name, "name", "", "the ExternalWorkload name the host expects")
	fl.StringSliceVar(&o.IPs, "ip", nil, "an address of the host; repeatable")
	fl.StringVar(&o.ReadyURL, "ready-url", "", "the proxy's /ready URL")
	fl.DurationVar(&o.SVIDTimeout, "svid-timeout", 0, "how long to wait for the first SVID (0: until stopped)")
	fl.StringVar(&o.StateDir, "state-dir", "", "where to publish the registration state, for meshexp's status and check (bootstrap makes it)")
	_ = fl.MarkHidden("state-dir")
	return cmd
}
