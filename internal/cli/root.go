// Package cli holds meshexp's cobra commands. Each command lives in its own
// file and turns flags into a call into a domain package; no domain logic
// lives here.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/instance"
)

// Exit codes shared by every command, documented in `meshexp --help` and
// the README's table.
const (
	ExitOK       = 0
	ExitFailure  = 1 // a runtime failure after validation passed
	ExitUsage    = 2 // invalid input: nothing on the host was changed
	ExitBusy     = 3 // another meshexp owns this network namespace: nothing was changed
	exitCodeHelp = `Exit status:
  0    success (bootstrap: clean shutdown after SIGTERM, SIGINT or SIGQUIT,
       or the workload finished with status 0)
  1    runtime failure (bootstrap: also the proxy ending unasked with
       status 0, a workload leaving processes outside its process group,
       and a child's status 2 or 3)
  2    invalid input (flag, variable, file); nothing on the host was changed
  3    another meshexp bootstrap runs in this network namespace (its pid is
       named); nothing was changed
  n    bootstrap: the proxy's or the workload's status n when it ended the run
  128+n  bootstrap: that child was killed by signal n (137: SIGKILL)
  134  meshexp itself crashed (a bug: Go runtime error, aborts with SIGABRT)`
)

// UsageError marks an error caused by bad input, found before anything on
// the host changed; Execute maps it to exit 2. Nothing else is exit 2:
// errors are typed, never recognised by their text.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usageErrorf returns a UsageError with a formatted message.
func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitError carries a specific exit status (a child's) out of a command.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// globals are the options every command shares.
type globals struct {
	logLevel  string
	logFormat string
	stdout    io.Writer
	stderr    io.Writer
	logger    *slog.Logger
	// lookupEnv reads the environment; tests replace it.
	lookupEnv func(string) (string, bool)
}

// Execute runs the command line args and returns the process exit code.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return execute(ctx, args, os.LookupEnv, stdout, stderr)
}

func execute(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr, lookupEnv: lookupEnv}
	root := newRootCmd(g)
	markRuntime(root)
	root.SetArgs(joinBoolValues(root, args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var exitErr *ExitError
	if errors.As(err, &exitErr) {
		if exitErr.Err != nil {
			fmt.Fprintf(stderr, "meshexp: %v\n", exitErr.Err)
		}
		return exitErr.Code
	}
	fmt.Fprintf(stderr, "meshexp: %v\n", err)
	return exitCode(err)
}

// joinBoolValues lets a boolean flag take its value as the next word,
// `--intercept false` as well as `--intercept=false`. pflag lets a boolean
// flag stand alone (meaning true), so without this the "false" would be
// read as a stray argument and the command would refuse it with
// "unknown command". Only a word that reads as a boolean is joined
// (config.ParseBool: true/false, yes/no, on/off, 1/0).
func joinBoolValues(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, isFlag := strings.CutPrefix(a, "--")
		if isFlag && !strings.Contains(name, "=") && i+1 < len(args) {
			f := cmd.Flags().Lookup(name)
			if f == nil {
				f = cmd.InheritedFlags().Lookup(name)
			}
			if f != nil && f.Value.Type() == "bool" && f.NoOptDefVal != "" {
				if _, err := config.ParseBool(args[i+1]); err == nil {
					out = append(out, a+"="+args[i+1])
					i++
					continue
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// noArgs refuses positional arguments in words that point at the likely
// cause: a flag value written after a space where the flag takes none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	arg := args[0]
	if len(arg) > 64 {
		arg = arg[:64] + "…"
	}
	return usageErrorf("%s takes no arguments, but got %q; a flag's value goes after '=' or a space (--intercept=false, --workload-name web), and a flag alone means true", cmd.CommandPath(), arg)
}

// exitCode classifies an error by its type: a UsageError is invalid input;
// another meshexp holding the namespace is ExitBusy; any other error a
// command's run returned is a runtime failure; an error that no command's
// run returned comes from parsing the command line (cobra: unknown
// command or flag, bad flag value, wrong number of arguments) and is
// invalid input too.
func exitCode(err error) int {
	var usage *UsageError
	var held *instance.HeldError
	var run *runError
	switch {
	case errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &held):
		return ExitBusy
	case errors.As(err, &run):
		return ExitFailure
	}
	return ExitUsage
}

// runError marks an error returned by a command's run, after the command
// line was parsed.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// markRuntime wraps the run of c and of every command below it so that
// the errors they return are told apart from cobra's parsing errors.
func markRuntime(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return &runError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRuntime(sub)
	}
}

func newRootCmd(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "meshexp",
		Short: "Bring workloads outside Kubernetes into a Linkerd mesh",
		Long: `meshexp brings a workload that runs outside Kubernetes (a VM, bare metal,
a podman/docker container) into a Linkerd service mesh: SPIFFE identity from
SPIRE chained to the mesh's trust anchor, traffic interception, the
linkerd2-proxy beside the workload, DNS and routes to the cluster, and an
ExternalWorkload that tells the control plane about it.

` + exitCodeHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			l, err := newLogger(g.stderr, g.logLevel, g.logFormat)
			if err != nil {
				return err
			}
			g.logger = l
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.AddCommand(newVersionCmd(g))
	for _, add := range subcommands {
		root.AddCommand(add(g))
	}
	return root
}

// subcommands is filled by each command's file in init, so that files for
// separate commands never edit the same list.
var subcommands []func(*globals) *cobra.Command

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, usageErrorf("--log-format %q: want text or json", format)
	}
}
