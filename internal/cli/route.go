package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/route"
)

func init() { subcommands = append(subcommands, newRouteCmd) }

func newRouteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "route",
		Short: "Route the cluster's pod and service CIDRs via its nodes",
		Long: fmt.Sprintf(`route adds, removes and shows routes from this host to the cluster: each
node's pod CIDR(s) via that node's InternalIP (--from-cluster reads Nodes, and
ServiceCIDRs for the service range), or routes given by hand. The nodes'
InternalIPs must be on a network this host is directly attached to.

Routes go into the main table through netlink with protocol %d, meshexp's
mark: add is idempotent and refuses a destination someone else routes;
remove deletes only meshexp's routes. add and remove need root
(CAP_NET_ADMIN).

`, route.Protocol) + exitCodeHelp,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newRouteAddCmd(g), newRouteRemoveCmd(g), newRouteShowCmd(g))
	return cmd
}

func newRouteAddCmd(g *globals) *cobra.Command {
	var (
		fromCluster  bool
		serviceCIDRs bool
		prune        bool
		selector     string
		kubeconfig   string
		vias, cidrs  []string
	)
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add routes to every node's pod CIDRs (and service CIDRs), or to given CIDRs",
		Example: `  meshexp route add --from-cluster
  meshexp route add --via 192.168.1.11 --cidr 10.244.1.0/24 --via 192.168.1.12 --cidr 10.244.2.0/24
  meshexp route add --via 192.168.1.11 --cidr 10.96.0.0/12 --cidr 10.244.0.0/16`,
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	fs.BoolVar(&fromCluster, "from-cluster", false, "read the nodes' pod CIDRs and InternalIPs (and ServiceCIDRs) from the cluster")
	fs.BoolVar(&serviceCIDRs, "service-cidrs", true, "with --from-cluster, also route each ServiceCIDR via the first node")
	fs.StringVar(&selector, "node-selector", "", "with --from-cluster, only nodes matching this label selector")
	fs.BoolVar(&prune, "prune", false, "also remove meshexp's routes to destinations no longer wanted (nodes that left)")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file for --from-cluster (default: $KUBECONFIG, else ~/.kube/config)")
	fs.StringArrayVar(&vias, "via", nil, "gateway (a node's InternalIP) for --cidr; give one for all, or one per --cidr in order")
	fs.StringArrayVar(&cidrs, "cidr", nil, "a destination CIDR routed via --via; repeatable")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		given, err := pairRoutes(vias, cidrs)
		if err != nil {
			return err
		}
		if !fromCluster && len(given) == 0 {
			return usageErrorf("nothing to route: give --from-cluster or --via IP --cidr CIDR")
		}
		if !fromCluster && (cmd.Flags().Changed("node-selector") || cmd.Flags().Changed("service-cidrs")) {
			return usageErrorf("--node-selector and --service-cidrs apply only with --from-cluster")
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
		defer cancel()
		routes := given
		if fromCluster {
			cfg, err := kube.LoadConfig(kubeconfig, nil)
			if err != nil {
				return &UsageError{Err: err}
			}
			cl, err := kube.NewClient(cfg)
			if err != nil {
				return err
			}
			found, notes, err := route.FromCluster(ctx, cl.Dynamic, route.ClusterOptions{NodeSelector: selector, ServiceCIDRs: serviceCIDRs})
			if err != nil {
				return err
			}
			for _, n := range notes {
				g.logger.Warn(n)
			}
			routes = append(found, given...)
		}
		m, err := route.NewManager(g.logger)
		if err != nil {
			return err
		}
		defer m.Close()
		if err := m.Add(ctx, routes); err != nil {
			return privilegeHint(err)
		}
		if prune {
			if _, err := m.Prune(ctx, routes); err != nil {
				return privilegeHint(err)
			}
		}
		fmt.Fprintf(g.stdout, "%d route(s) in place\n", len(routes))
		return nil
	}
	return cmd
}

// pairRoutes turns --via/--cidr into routes: one --via for every --cidr,
// or one --via per --cidr in the order given.
func pairRoutes(vias, cidrs []string) ([]route.Route, error) {
	switch {
	case len(cidrs) == 0 && len(vias) == 0:
		return nil, nil
	case len(cidrs) == 0:
		return nil, usageErrorf("--via %s: give the destinations with --cidr", strings.Join(vias, ","))
	case len(vias) == 0:
		return nil, usageErrorf("--cidr %s: give the gateway with --via (a node's InternalIP)", strings.Join(cidrs, ","))
	case len(vias) != 1 && len(vias) != len(cidrs):
		return nil, usageErrorf("%d --via for %d --cidr: give one --via for all, or one per --cidr", len(vias), len(cidrs))
	}
	var routes []route.Route
	var errs []string
	for i, c := range cidrs {
		via := vias[0]
		if len(vias) > 1 {
			via = vias[i]
		}
		r, err := route.NewRoute(c, via, "flag")
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		routes = append(routes, r)
	}
	if len(errs) > 0 {
		return nil, usageErrorf("--via/--cidr: %s", strings.Join(errs, "; "))
	}
	return routes, nil
}

func newRouteRemoveCmd(g *globals) *cobra.Command {
	var cidrs []string
	cmd := &cobra.Command{
		Use:   "remove",
		Short: "Remove meshexp's routes (all, or those to --cidr); others' routes are never touched",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().StringArrayVar(&cidrs, "cidr", nil, "remove only meshexp's route to this CIDR; repeatable")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var dsts []netip.Prefix
		for _, c := range cidrs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return usageErrorf("--cidr %q: %v", c, err)
			}
			dsts = append(dsts, p)
		}
		m, err := route.NewManager(g.logger)
		if err != nil {
			return err
		}
		defer m.Close()
		removed, err := m.Remove(cmd.Context(), dsts)
		if err != nil {
			return privilegeHint(err)
		}
		fmt.Fprintf(g.stdout, "%d route(s) removed\n", len(removed))
		return nil
	}
	return cmd
}

func newRouteShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show",
		Short: "List meshexp's routes",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		m, err := route.NewManager(g.logger)
		if err != nil {
			return err
		}
		defer m.Close()
		routes, err := m.List(cmd.Context())
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DESTINATION\tVIA")
		for _, r := range routes {
			fmt.Fprintf(tw, "%s\t%s\n", r.Dst, r.Via)
		}
		return tw.Flush()
	}
	return cmd
}

// privilegeHint names the fix for the most common failure.
func privilegeHint(err error) error {
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("%w (changing routes needs root or CAP_NET_ADMIN)", err)
	}
	return err
}
