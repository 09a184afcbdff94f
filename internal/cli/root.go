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
)

// Exit codes shared by every command, documented in `meshexp --help`.
const (
	ExitOK       = 0
	ExitFailure  = 1 // a runtime failure after validation passed
	ExitUsage    = 2 // invalid input: nothing on the host was changed
	exitCodeHelp = `Exit status:
  0  success (bootstrap: clean shutdown after SIGTERM/SIGINT)
  1  runtime failure
  2  invalid input (flag, variable, file); nothing on the host was changed
  bootstrap also exits with the proxy's status when the proxy dies, and with
  the workload's when the workload exits and the restart policy gives up.`
)

// UsageError marks an error caused by bad input; Execute maps it to exit 2.
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
	root.SetArgs(args)
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
	var usage *UsageError
	if errors.As(err, &usage) || isCobraUsageError(err) {
		return ExitUsage
	}
	return ExitFailure
}

// isCobraUsageError recognises cobra's own argument and flag errors, which
// are plain errors; they are bad input like any other.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "invalid argument", "flag needs an argument", "accepts ", "requires at least", "requires at most", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
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
