package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/bootstrap"
	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/kube"
)

func init() { subcommands = append(subcommands, newWorkloadCmd) }

func newWorkloadCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workload",
		Short: "Describe this host to the cluster: ExternalWorkload, Service, RBAC",
		Long: `workload renders, applies and deletes the host's Linkerd ExternalWorkload
(workload.linkerd.io/v1beta1) and the ClusterIP Service that selects it, and
prints the least-privilege RBAC a host needs to register itself.

The settings are bootstrap's (WORKLOAD_NAME, WORKLOAD_NAMESPACE, trust
domain, cluster domain, ...; flags > environment > --config file):
meshTLS.identity is spiffe://<trust domain>/<name> and meshTLS.serverName is
<name>.<cluster domain>, exactly what the proxy presents. NODE_NAME is the
Lease holder; it defaults to the host name here.

What Linkerd's destination controller needs, and these objects satisfy: the
Service selects the ExternalWorkload by its workload_name label in the same
namespace; each Service targetPort names a port of the ExternalWorkload;
endpoints are ready only with status condition Ready=True, which apply writes
through the status subresource.

` + exitCodeHelp,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newWorkloadRenderCmd(g), newWorkloadApplyCmd(g), newWorkloadDeleteCmd(g), newWorkloadRBACCmd(g))
	return cmd
}

// workloadFlags bind the settings shared with bootstrap: names and
// identity, plus the ExternalWorkload's (IPs, ports, labels) when withSpec
// and the kubeconfig when withKube.
type workloadFlags struct {
	binding   *config.Binding
	scope     config.Scope
	lookupEnv func(string) (string, bool)
}

func bindWorkload(g *globals, cmd *cobra.Command, withSpec, withKube bool) *workloadFlags {
	scope := config.ScopeWorkload
	if withSpec {
		scope |= config.ScopeKubeSpec
	}
	if withKube {
		scope |= config.ScopeKubeAPI
	}
	return &workloadFlags{binding: config.Bind(cmd.Flags(), scope), scope: scope, lookupEnv: nodeNameFromHost(g.lookupEnv)}
}

// nodeNameFromHost lets the workload commands run without NODE_NAME, which
// only names the Lease holder here: the host name stands in.
func nodeNameFromHost(lookup func(string) (string, bool)) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := lookup(k)
		if k == "NODE_NAME" && !ok {
			if _, set := lookup("MESHEXP_NODE_NAME"); !set {
				if h, err := os.Hostname(); err == nil {
					return strings.ToLower(h), true
				}
			}
		}
		return v, ok
	}
}

// settings loads and validates the shared settings; problems are returned
// for the caller to add its own to.
func (f *workloadFlags) settings(g *globals) (*config.Config, config.Problems) {
	c, probs := f.binding.Load(f.lookupEnv)
	if c != nil {
		probs = append(probs, c.Validate(config.ValidateOptions{Scope: config.ScopeWorkload})...)
	}
	for _, w := range probs.Warnings() {
		g.logger.Warn(w.Message, "input", w.Input, "fix", w.Fix)
	}
	return c, probs
}

// load returns the shared settings or a UsageError listing every problem.
func (f *workloadFlags) load(g *globals) (*config.Config, error) {
	c, probs := f.settings(g)
	if err := probs.Err(); err != nil {
		return nil, &UsageError{Err: err}
	}
	return c, nil
}

// workload loads the settings and builds the host's Workload, reporting
// every bad input together (exit 2) before any API request.
func (f *workloadFlags) workload(g *globals) (*kube.Workload, *config.Config, error) {
	c, probs := f.settings(g)
	if c == nil {
		return nil, nil, &UsageError{Err: probs.Err()}
	}
	// Report the ExternalWorkload's own problems (ports, labels) with the
	// settings' ones; its whole-object check only when the settings parsed,
	// or it would repeat them.
	settingsBad := len(probs.Errors()) > 0
	w, more := bootstrap.KubeWorkload(c, g.logger)
	for _, p := range more {
		if !settingsBad || p.Input != "registration" {
			probs = append(probs, p)
		}
	}
	if err := probs.Err(); err != nil {
		return nil, nil, &UsageError{Err: err}
	}
	return w, c, nil
}

// client loads the kubeconfig and builds a client.
func client(c *config.Config) (*kube.Client, error) {
	cfg, err := kube.LoadConfig(c.Register.Kubeconfig, nil)
	if err != nil {
		return nil, &UsageError{Err: err}
	}
	return kube.NewClient(cfg)
}

func newWorkloadRenderCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print the ExternalWorkload and Service as YAML (for GitOps); no API calls",
		Args:  cobra.NoArgs,
	}
	f := bindWorkload(g, cmd, true, false)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		w, _, err := f.workload(g)
		if err != nil {
			return err
		}
		b, err := kube.RenderYAML(w)
		if err != nil {
			return err
		}
		_, err = g.stdout.Write(b)
		return err
	}
	return cmd
}

func newWorkloadApplyCmd(g *globals) *cobra.Command {
	var ready bool
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Server-side apply the ExternalWorkload and Service, then write Ready",
		Long: `apply creates or updates the ExternalWorkload and its Service with
server-side apply (field manager "meshexp") and then writes the Ready
condition through the status subresource (--ready, true by default for hand
use). Running it again with the same settings writes nothing. bootstrap
--register does the same and then keeps Ready in step with the proxy.`,
		Args: cobra.NoArgs,
	}
	f := bindWorkload(g, cmd, true, true)
	cmd.Flags().BoolVar(&ready, "ready", true, "the Ready condition to write: true makes the endpoints ready in Linkerd")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		w, settings, err := f.workload(g)
		if err != nil {
			return err
		}
		c, err := client(settings)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
		defer cancel()
		cur, err := c.ApplyWorkload(ctx, w)
		if err != nil {
			return err
		}
		if err := c.ApplyService(ctx, w); err != nil {
			return err
		}
		if _, err := c.SetReady(ctx, w, cur, ready, kube.ReasonManual, "set by meshexp workload apply"); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "externalworkload/%s and service/%s applied in namespace %s (Ready=%t)\n", w.Name, w.Name, w.Namespace, ready)
		return nil
	}
	return cmd
}

func newWorkloadDeleteCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Withdraw the host (Ready=False), then delete the ExternalWorkload, Service and Lease",
		Long: `delete takes the host out of the mesh the way bootstrap does on shutdown:
it first writes Ready=False, so Linkerd's destination controller stops
offering the host, and then deletes the ExternalWorkload, Service and Lease
that apply and bootstrap made. (Deleting a ready ExternalWorkload outright
leaves Linkerd offering it while its Service stays.) Objects already gone
are not an error.`,
		Args: cobra.NoArgs,
	}
	f := bindWorkload(g, cmd, false, true)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.load(g)
		if err != nil {
			return err
		}
		// Delete needs only the names: no IP detection, no ports.
		w := &kube.Workload{Name: c.WorkloadName, Namespace: c.WorkloadNamespace}
		cl, err := client(c)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
		defer cancel()
		if err := cl.Withdraw(ctx, w, kube.Withdrawal{
			Reason: kube.ReasonManual, Message: "withdrawn by meshexp workload delete",
			Delete: true, Logger: g.logger,
		}); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "externalworkload/%s, service/%s and lease/%s deleted from namespace %s\n", w.Name, w.Name, w.Name, w.Namespace)
		return nil
	}
	return cmd
}
