package cli

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/bootstrap"
	"github.com/meshexp/meshexp/internal/check"
	"github.com/meshexp/meshexp/internal/config"
)

func init() { subcommands = append(subcommands, newCheckCmd) }

func newCheckCmd(g *globals) *cobra.Command {
	var pre bool
	var output string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that this host can run meshexp (--pre) or that it is healthy",
		Long: `check runs ordered checks in three categories — host, identity, cluster —
and prints each as it finishes: ✓ passed, ‼ warning, × failed, with a hint
for what to do. It reads the same settings as bootstrap and changes nothing
on the host.

--pre asks "can this host run meshexp?" before the first start; without it,
check asks "is the running host healthy?" (the proxy's ports held by
meshexp's children, the rules installed, the SVID issued, the
ExternalWorkload matching this host).

Exit status: 0 when no check failed (warnings allowed), 1 when one did,
2 for invalid input.`,
		Args: cobra.NoArgs,
	}
	load := settingsFlags(g, cmd, config.ScopeBootstrap)
	cmd.Flags().BoolVar(&pre, "pre", false, "check before the first start: can this host run meshexp?")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if output != "text" && output != "json" {
			return usageErrorf("--output %q: want text or json", output)
		}
		c, err := load(true)
		if err != nil {
			return err
		}
		w, probs := bootstrap.KubeWorkload(c, slog.New(slog.DiscardHandler))
		if c.Register.Enabled && probs.Err() != nil {
			return &UsageError{Err: probs.Err()}
		}
		var report func(check.Result)
		if output == "text" {
			report = check.TextPrinter(g.stdout)
		}
		results, failed := check.Run(cmd.Context(), bootstrap.Checks(c, w, pre, g.logger), report)
		if output == "json" {
			if err := check.WriteJSON(g.stdout, results, failed); err != nil {
				return err
			}
		} else {
			check.Summary(g.stdout, results, failed)
		}
		if failed {
			return &ExitError{Code: ExitFailure}
		}
		return nil
	}
	return cmd
}
