package cli

import (
	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/config"
)

// settingsFlags binds the shared settings of scope to cmd and returns a
// function that loads and validates them when the command runs. Parse
// problems and validation problems are reported together, as one
// UsageError (exit 2); warnings are logged.
func settingsFlags(g *globals, cmd *cobra.Command, scope config.Scope) func(dryRun bool) (*config.Config, error) {
	b := config.Bind(cmd.Flags(), scope)
	return func(dryRun bool) (*config.Config, error) {
		c, probs := b.Load(g.lookupEnv)
		if c != nil {
			probs = append(probs, c.Validate(config.ValidateOptions{Scope: scope, DryRun: dryRun})...)
		}
		if err := report(g, probs); err != nil {
			return nil, err
		}
		return c, nil
	}
}
