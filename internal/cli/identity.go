package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/bootstrap"
	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/spire"
)

func init() { subcommands = append(subcommands, newIdentityCmd) }

func newIdentityCmd(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Run only the identity phase: get the proxy's SVID from SPIRE, verify it, print it",
		Long: `identity runs bootstrap's identity phase alone, with the same settings: it
starts what the SPIRE mode needs (embedded: server and agent, DEMO ONLY;
external: an agent joining a remote server; existing: nothing), waits until a
process running as the proxy's uid receives an X.509 SVID for
spiffe://<trust domain>/<workload name>, verifies its chain against the
trust anchor and its URI SAN, prints it, and stops what it started.

Use it to check a host's SPIRE setup before running bootstrap. With
--dry-run it prints the SPIRE configs it would write and changes nothing.

` + exitCodeHelp,
		Args: cobra.NoArgs,
	}
	load := settingsFlags(g, cmd, config.ScopeWorkload|config.ScopeSPIRE)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the SPIRE configs that would be written; change nothing")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := load(dryRun)
		if err != nil {
			return err
		}
		opts := bootstrap.SPIREOptions(c)
		if dryRun {
			files, err := spire.RenderConfigs(opts)
			if err != nil {
				return spireUsageError(err)
			}
			return writeConfigs(g.stdout, files)
		}
		if err := opts.Validate(); err != nil {
			return spireUsageError(err)
		}
		id, err := spire.Start(cmd.Context(), opts, g.logger)
		if err != nil {
			return err
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), opts.StopGrace+30*time.Second)
		defer cancel()
		printSVID(g.stdout, id)
		return id.Stop(stopCtx)
	}
	cmd.AddCommand(newFetchSVIDCmd(g))
	return cmd
}

// newFetchSVIDCmd is what spire.Start re-executes as the proxy's uid
// (spire.FetcherArgs): it prints the SVID's certificates, never its key.
func newFetchSVIDCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:                "fetch-svid",
		Short:              "internal: fetch the SVID as the current user (run by identity and bootstrap)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := spire.RunFetcher(args, g.stdout, g.stderr); code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
}

// spireFlags names the setting behind each spire.Options field.
var spireFlags = map[string]string{
	"Mode": "spire-mode", "TrustDomain": "trust-domain", "WorkloadName": "workload-name",
	"TrustAnchorPath": "trust-anchor-dir", "ProxyUID": "proxy-uid", "BinDir": "spire-bin-dir",
	"DataDir": "spire-data-dir", "SocketPath": "spire-socket", "Timeout": "spire-svid-timeout",
	"UpstreamCertPath": "spire-upstream-cert", "UpstreamKeyPath": "spire-upstream-key",
	"UpstreamBundlePath": "spire-upstream-bundle", "ServerAddress": "spire-server-address",
	"ServerPort": "spire-server-port", "TrustBundlePath": "spire-trust-bundle",
	"JoinToken": "spire-join-token", "JoinTokenFile": "spire-join-token-file",
	"X509PopCertPath": "spire-x509pop-cert", "X509PopKeyPath": "spire-x509pop-key",
}

// spireUsageError restates the spire package's option errors with the
// flags a user sets, as a usage error (exit 2).
func spireUsageError(err error) error {
	var msgs []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var oe *spire.OptionError
		if errors.As(e, &oe) {
			name := oe.Option
			if f, ok := spireFlags[name]; ok {
				name = "--" + f
			}
			msgs = append(msgs, errors.New(oe.Describe(name)))
			return
		}
		msgs = append(msgs, e)
	}
	walk(err)
	return &UsageError{Err: errors.Join(msgs...)}
}

func writeConfigs(w io.Writer, files map[string]string) error {
	if len(files) == 0 {
		_, err := fmt.Fprintln(w, "# existing mode: meshexp writes no SPIRE config")
		return err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if _, err := fmt.Fprintf(w, "### %s\n%s\n", p, files[p]); err != nil {
			return err
		}
	}
	return nil
}

func printSVID(w io.Writer, id *spire.Identity) {
	svid := id.SVID()
	leaf := svid.Certificates[0]
	fmt.Fprintf(w, "spiffe_id:  %s\n", svid.ID)
	fmt.Fprintf(w, "socket:     unix://%s\n", id.SocketPath())
	fmt.Fprintf(w, "serial:     %x\n", leaf.SerialNumber)
	fmt.Fprintf(w, "not_before: %s\n", leaf.NotBefore.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "not_after:  %s\n", leaf.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintln(w, "chain:")
	for _, c := range svid.Certificates {
		fmt.Fprintf(w, "  - subject %q, issuer %q\n", c.Subject.String(), c.Issuer.String())
	}
	fmt.Fprintln(w, "verified:   chain and URI SAN against the trust anchor")
}
