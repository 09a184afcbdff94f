package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/kube"
)

// defaultTokenTTL is how long a host's token from --kubeconfig-out lasts.
// TokenRequest tokens cannot be renewed by the host itself with this RBAC,
// so the default is long; rotate by running the command again.
const defaultTokenTTL = 365 * 24 * time.Hour

func newWorkloadRBACCmd(g *globals) *cobra.Command {
	var (
		out    string
		ttl    time.Duration
		routes bool
	)
	cmd := &cobra.Command{
		Use:   "rbac",
		Short: "Print the least-privilege RBAC a host needs, or apply it and write the host's kubeconfig",
		Long: `rbac prints the ServiceAccount meshexp-NAME, a Role and a RoleBinding that
let a host create, change and delete only its own ExternalWorkload (and its
status), Service and Lease, all named NAME in its namespace, and read nothing
else. --routes adds cluster-wide list of Nodes and ServiceCIDRs for
meshexp route add --from-cluster.

With --kubeconfig-out FILE, rbac applies the objects with the administrator's
kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config), asks the API server
for a token bound to the ServiceAccount (TokenRequest, valid --token-ttl, no
Secret created) and writes a kubeconfig for the host (mode 0600) that points
at the same API server. Copy it to the host and pass it to bootstrap
--register or workload apply.`,
		Args: cobra.NoArgs,
	}
	f := bindWorkload(g, cmd, false, true)
	cmd.Flags().StringVar(&out, "kubeconfig-out", "", "apply the RBAC and write the host's kubeconfig to this file")
	cmd.Flags().DurationVar(&ttl, "token-ttl", defaultTokenTTL, "lifetime of the token written with --kubeconfig-out")
	cmd.Flags().BoolVar(&routes, "routes", false, "also allow listing Nodes and ServiceCIDRs (meshexp route add --from-cluster)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.load(g)
		if err != nil {
			return err
		}
		if ttl < 10*time.Minute {
			return usageErrorf("--token-ttl %s: the API server refuses tokens shorter than 10m", ttl)
		}
		w := &kube.Workload{Name: c.WorkloadName, Namespace: c.WorkloadNamespace}
		rbac := kube.RenderRBAC(w)
		if routes {
			rbac.WithRouteReader()
		}
		if out == "" {
			b, err := rbac.YAML()
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(b)
			return err
		}
		cfg, err := kube.LoadConfig(c.Register.Kubeconfig, nil)
		if err != nil {
			return &UsageError{Err: err}
		}
		cl, err := kube.NewClient(cfg)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
		defer cancel()
		if err := cl.ApplyRBAC(ctx, rbac); err != nil {
			return err
		}
		token, expires, err := cl.RequestToken(ctx, rbac, ttl)
		if err != nil {
			return err
		}
		kc, err := kube.HostKubeconfig(cfg, w.Namespace, kube.RBACName(w), token)
		if err != nil {
			return err
		}
		if err := os.WriteFile(out, kc, 0o600); err != nil {
			return fmt.Errorf("write the host's kubeconfig: %w", err)
		}
		fmt.Fprintf(g.stdout, "RBAC for %s/%s applied; kubeconfig written to %s (token expires %s)\n", w.Namespace, w.Name, out, expires.Format(time.RFC3339))
		return nil
	}
	return cmd
}
