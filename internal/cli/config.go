package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/spire"
)

// settingsFlags binds the shared settings of scope to cmd and returns a
// function that loads and validates them when the command runs. Parse
// problems, validation problems and the problems extra finds in a config
// that parsed are reported together, as one UsageError (exit 2); warnings
// are logged.
func settingsFlags(g *globals, cmd *cobra.Command, scope config.Scope, extra ...func(c *config.Config, dryRun bool) config.Problems) func(dryRun bool) (*config.Config, error) {
	b := config.Bind(cmd.Flags(), scope)
	return func(dryRun bool) (*config.Config, error) {
		c, probs := b.Load(g.lookupEnv)
		if c != nil {
			probs = append(probs, c.Validate(config.ValidateOptions{Scope: scope, DryRun: dryRun})...)
			// A setting already refused is not blamed again by a check
			// that read its zero value.
			blamed := map[string]bool{}
			for _, p := range probs.Errors() {
				blamed[p.Setting], blamed[p.Input] = true, true
			}
			for _, check := range extra {
				for _, p := range check(c, dryRun) {
					if (p.Setting == "" || !blamed[p.Setting]) && !blamed[p.Input] {
						probs = append(probs, p)
					}
				}
			}
		}
		if err := report(g, probs); err != nil {
			return nil, err
		}
		return c, nil
	}
}

// inSettingNames restates a runtime error from the spire package that
// names an option by its Go field (SocketPath, DataDir, …) with the
// setting's flag. The error chain is kept, so exit codes still follow it.
func inSettingNames(err error) error {
	var oe *spire.OptionError
	if err == nil || !errors.As(err, &oe) {
		return err
	}
	f, ok := spireFlags[oe.Option]
	if !ok {
		return err
	}
	return &renamedError{err: err, msg: strings.Replace(err.Error(), oe.Describe(oe.Option), oe.Describe("--"+f), 1)}
}

type renamedError struct {
	err error
	msg string
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }
