package cli

import (
	"errors"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/bootstrap"
	"github.com/meshexp/meshexp/internal/config"
)

func init() { subcommands = append(subcommands, newBootstrapCmd) }

func newBootstrapCmd(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Run the workload in the mesh: identity, interception, proxy, workload",
		Long: `bootstrap is the container entrypoint (or VM service) that replaces the
mesh-expansion demo's bootstrap and run-proxy scripts. It validates every
setting first and changes nothing on the host when one is wrong.

The demo's variables WORKLOAD_NAME, WORKLOAD_NAMESPACE and NODE_NAME and its
trust anchor mount at /opt/spire/certs work unchanged. Every other setting
has a flag and a MESHEXP_* variable (listed below); flags override the
environment, which overrides the --config file.

` + exitCodeHelp,
		Args: noArgs,
	}
	// What the domain packages check (SPIRE's binaries, the forwarder's
	// options, the ExternalWorkload's rules) is reported with the rest.
	load := settingsFlags(g, cmd, config.ScopeBootstrap, func(c *config.Config, dryRun bool) config.Problems {
		probs := bootstrap.ValidateSPIRE(c, dryRun)
		if c.DNS.Enabled {
			probs = append(probs, bootstrap.ValidateDNS(c)...)
		}
		_, pp := bootstrap.WorkloadProbes(c)
		probs = append(probs, pp...)
		if c.Register.Enabled {
			// Run builds it again and logs what it detects then.
			_, kp := bootstrap.KubeWorkload(c, slog.New(slog.DiscardHandler))
			probs = append(probs, kp.Errors()...)
		}
		return probs
	})
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and print the plan (SPIRE configs, rules, proxy environment, start order); change nothing")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := load(dryRun)
		if err != nil {
			return err
		}
		if dryRun {
			plan, err := bootstrap.NewPlan(c)
			if err != nil {
				return err
			}
			return plan.Write(g.stdout)
		}
		err = inSettingNames(bootstrap.Run(cmd.Context(), c, g.logger))
		var exit *bootstrap.ExitError
		if errors.As(err, &exit) {
			// The proxy's or the workload's end becomes meshexp's status
			// (never 2 or 3, which are meshexp's own; see Status).
			if st := exit.Status(); st != ExitOK {
				return &ExitError{Code: st, Err: err}
			}
			g.logger.Info("the workload finished", "exit_code", exit.Code)
			return nil
		}
		return err
	}
	return cmd
}

// report logs the warnings among probs and returns the rest as one
// UsageError (exit 2), or nil.
func report(g *globals, probs config.Problems) error {
	for _, w := range probs.Warnings() {
		g.logger.Warn(w.Message, "input", w.Input, "fix", w.Fix)
	}
	if err := probs.Err(); err != nil {
		return &UsageError{Err: err}
	}
	return nil
}
