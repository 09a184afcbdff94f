package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/bootstrap"
	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/instance"
	"github.com/meshexp/meshexp/internal/netfilter"
)

func init() { subcommands = append(subcommands, newInterceptCmd) }

func newInterceptCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "intercept",
		Short: "Install, remove or show the rules that send TCP traffic through the proxy",
		Long: `intercept manages the nat rules that send this host's TCP traffic through
linkerd2-proxy, as Linkerd's proxy-init does in a pod: chain
PROXY_INIT_REDIRECT (from PREROUTING) sends inbound TCP addressed to this
host to the proxy's inbound port (connections the host forwards, to
containers or VMs or published with DNAT, are left alone), chain
PROXY_INIT_OUTPUT (from OUTPUT) sends this host's outbound TCP to its
outbound port. Not redirected: the proxy's own uid (never root), packets
carrying meshexp's control mark, loopback, the skipped ports and subnets and
the exempt destinations. bootstrap installs and removes the same rules.

install is one iptables-restore transaction per address family: running it
again, or after a crash, leaves exactly one copy. remove deletes exactly the
rules meshexp wrote. show compares what is installed with the plan.

` + exitCodeHelp,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newInterceptInstallCmd(g), newInterceptRemoveCmd(g), newInterceptShowCmd(g))
	return cmd
}

// interceptFlags are the shared interception settings.
type interceptFlags struct {
	load func(dryRun bool) (*config.Config, error)
}

func bindIntercept(g *globals, cmd *cobra.Command) *interceptFlags {
	return &interceptFlags{load: settingsFlags(g, cmd, config.ScopeIntercept)}
}

// plan loads and validates the settings and plans the rules. Every bad
// setting comes back in one UsageError (exit 2), before anything runs.
func (f *interceptFlags) plan(g *globals, cmd *cobra.Command, dryRun bool) (*netfilter.Ruleset, error) {
	c, err := f.load(dryRun)
	if err != nil {
		return nil, err
	}
	o := bootstrap.InterceptOptions(c)
	var inv *netfilter.InvalidOptionsError
	if err := o.Validate(); errors.As(err, &inv) {
		var probs config.Problems
		for _, p := range inv.Problems {
			in := c.Origin(p.Setting)
			if in == "default" {
				in = "--" + p.Setting
			}
			probs = append(probs, config.Problem{Input: in, Message: p.Message})
		}
		return nil, &UsageError{Err: probs.Err()}
	}
	return netfilter.Plan(o)
}

func newInterceptInstallCmd(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the interception rules (idempotent; replaces meshexp's stale rules)",
		Args:  cobra.NoArgs,
	}
	f := bindIntercept(g, cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the exact iptables-restore input instead of applying it")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		rs, err := f.plan(g, cmd, dryRun)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if dryRun {
			return printInstallInputs(ctx, g, rs)
		}
		// A running bootstrap owns these rules; installing over them
		// would change its interception under it.
		lock, err := instance.Acquire(ctx, "intercept install", "intercept install")
		if err != nil {
			return err
		}
		defer lock.Release()
		r, err := netfilter.NewRunner(ctx, rs.Backend, g.logger)
		if err != nil {
			return err
		}
		if err := r.Install(ctx, rs); err != nil {
			return err
		}
		// A report, not output asked for: it obeys --log-level.
		b, why := r.Backend()
		g.logger.Info("interception installed", "backend", b, "why", why)
		return nil
	}
	return cmd
}

// printInstallInputs prints what install would feed iptables-restore. It
// reads the current rules when it can (root) to include the deletion of
// stale ones; otherwise it prints the input for a namespace without them.
func printInstallInputs(ctx context.Context, g *globals, rs *netfilter.Ruleset) error {
	r, err := netfilter.NewRunner(ctx, rs.Backend, g.logger)
	var inputs []netfilter.Input
	if err == nil {
		inputs, err = r.InstallInputs(ctx, rs)
	}
	var foreign *netfilter.ForeignRulesError
	if errors.As(err, &foreign) {
		return err
	}
	if err != nil {
		g.logger.Warn("cannot read the current rules; printing the input for a table without meshexp's rules", "err", err)
		inputs = nil
		for i := range rs.Families {
			in, _ := netfilter.InstallInput(&rs.Families[i], nil)
			inputs = append(inputs, netfilter.Input{Family: rs.Families[i].Family, Command: "iptables-restore --noflush", Input: in})
		}
	} else {
		b, why := r.Backend()
		fmt.Fprintf(g.stdout, "# backend %s (%s)\n", b, why)
	}
	for _, in := range inputs {
		fmt.Fprintf(g.stdout, "# %s: %s\n", in.Family, in.Command)
		if _, err := g.stdout.Write(in.Input); err != nil {
			return err
		}
	}
	return nil
}

func newInterceptRemoveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove exactly the rules meshexp installed; other rules stay",
		Long: `remove deletes every rule carrying meshexp's comment and then its two chains,
in both address families; with iptables-nft also the nat table and base
chains install created, unless another tool's rules are in them. With
--intercept-backend auto it looks in both iptables-legacy and iptables-nft,
so rules installed with either go. Removing when nothing is installed does
nothing.`,
		Args: cobra.NoArgs,
	}
	f := bindIntercept(g, cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		rs, err := f.plan(g, cmd, false)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		// Removing a running bootstrap's rules would leave it running
		// with no interception.
		lock, err := instance.Acquire(ctx, "intercept remove", "intercept remove")
		if err != nil {
			return err
		}
		defer lock.Release()
		backends := []netfilter.Backend{rs.Backend}
		if rs.Backend == netfilter.BackendAuto {
			backends = []netfilter.Backend{netfilter.BackendLegacy, netfilter.BackendNFT}
		}
		var errs []error
		removed := 0
		for _, b := range backends {
			r, err := netfilter.NewRunner(ctx, b, g.logger)
			if err != nil {
				if rs.Backend == netfilter.BackendAuto {
					g.logger.Debug("backend not available", "backend", b, "err", err)
					continue
				}
				return err
			}
			if err := r.Remove(ctx); err != nil {
				errs = append(errs, err)
				continue
			}
			removed++
		}
		if removed == 0 && len(errs) == 0 {
			return errors.New("intercept remove: neither iptables-legacy nor iptables-nft is installed; install the iptables package")
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		g.logger.Info("interception removed")
		return nil
	}
	return cmd
}

func newInterceptShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the installed interception rules and whether they match the plan",
		Args:  cobra.NoArgs,
	}
	f := bindIntercept(g, cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		rs, err := f.plan(g, cmd, true)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		r, err := netfilter.NewRunner(ctx, rs.Backend, g.logger)
		if err != nil {
			return err
		}
		sts, err := r.Show(ctx, rs)
		if err != nil {
			return err
		}
		b, why := r.Backend()
		return writeStatus(g.stdout, b, why, sts)
	}
	return cmd
}

func writeStatus(w io.Writer, b netfilter.Backend, why string, sts []netfilter.Status) error {
	fmt.Fprintf(w, "backend: %s (%s)\n", b, why)
	for _, st := range sts {
		st.Write(w)
	}
	return nil
}
