package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

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

// workloadFlags are the settings shared with bootstrap plus the ones only
// registration reads.
type workloadFlags struct {
	binding     *config.Binding
	lookupEnv   func(string) (string, bool)
	ips         []string
	ports       []string
	labels      []string
	servicePort int
	kubeconfig  string
}

// defaultPorts is the demo's template: port 8000 named http behind a
// Service on port 80.
const (
	defaultPorts       = "http:8000"
	defaultServicePort = 80
)

// bindWorkload binds the shared settings, the registration flags when
// withSpec (render, apply) and --kubeconfig when withKube.
func bindWorkload(g *globals, cmd *cobra.Command, withSpec, withKube bool) *workloadFlags {
	f := &workloadFlags{binding: config.Bind(cmd.Flags(), config.ScopeWorkload), lookupEnv: nodeNameFromHost(g.lookupEnv)}
	fs := cmd.Flags()
	if withKube {
		fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
	}
	if !withSpec {
		return f
	}
	fs.StringArrayVar(&f.ips, "workload-ip", nil, "an address the cluster reaches this host on; repeat for IPv4 and IPv6 (default: the source address of the default route) [env MESHEXP_WORKLOAD_IPS, comma-separated]")
	fs.StringArrayVar(&f.ports, "port", nil, "a port of the workload, NAME:PORT[/TCP|UDP]; repeatable (default "+defaultPorts+") [env MESHEXP_PORTS=http:8000,admin:9000]")
	fs.StringArrayVar(&f.labels, "label", nil, "an extra label KEY=VALUE on the ExternalWorkload; repeatable [env MESHEXP_LABELS, comma-separated]")
	fs.IntVar(&f.servicePort, "service-port", 0, "the Service's port for the first --port (default: 80 with the default ports, else the first port's number) [env MESHEXP_SERVICE_PORT]")
	return f
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

// listInput returns a repeatable flag's values, else the comma-separated
// environment variable's, and the name of the input they came from.
func listInput(g *globals, cmd *cobra.Command, flag string, vals []string, env string) ([]string, string) {
	if cmd.Flags().Changed(flag) {
		return vals, "--" + flag
	}
	if v, ok := g.lookupEnv(env); ok && strings.TrimSpace(v) != "" {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, env
	}
	return nil, ""
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
func (f *workloadFlags) workload(g *globals, cmd *cobra.Command) (*kube.Workload, *config.Config, error) {
	c, probs := f.settings(g)
	if c == nil {
		return nil, nil, &UsageError{Err: probs.Err()}
	}
	w := &kube.Workload{
		Name:       c.WorkloadName,
		Namespace:  c.WorkloadNamespace,
		Identity:   c.SPIFFEID(),
		ServerName: c.ServerName(),
		Labels:     map[string]string{},
	}
	bad := func(input, fix string, err error) {
		probs = append(probs, config.Problem{Input: input, Message: err.Error(), Fix: fix})
	}

	ips, in := listInput(g, cmd, "workload-ip", f.ips, "MESHEXP_WORKLOAD_IPS")
	for _, s := range ips {
		ip, err := parseIP(s)
		if err != nil {
			bad(in, "give an IPv4 and/or an IPv6 address of this host", err)
			continue
		}
		w.IPs = append(w.IPs, ip)
	}
	if in == "" {
		ip, err := kube.DetectIP()
		if err != nil {
			bad("--workload-ip", "give the address the cluster reaches this host on", err)
		} else {
			g.logger.Info("workload IP detected from the default route", "ip", ip.String())
			w.IPs = append(w.IPs, ip)
		}
	}

	ports, in := listInput(g, cmd, "port", f.ports, "MESHEXP_PORTS")
	defaultedPorts := in == ""
	if defaultedPorts {
		ports, in = []string{defaultPorts}, "default"
	}
	for _, s := range ports {
		p, err := kube.ParsePort(s)
		if err != nil {
			bad(in, "", err)
			continue
		}
		w.Ports = append(w.Ports, p)
	}

	labels, in := listInput(g, cmd, "label", f.labels, "MESHEXP_LABELS")
	for _, s := range labels {
		k, v, err := kube.ParseLabel(s)
		if err != nil {
			bad(in, "write KEY=VALUE with a Kubernetes label key and value", err)
			continue
		}
		w.Labels[k] = v
	}

	switch {
	case cmd.Flags().Changed("service-port"):
		w.ServicePort = int32(f.servicePort)
		if f.servicePort < 1 || f.servicePort > 65535 {
			bad("--service-port", "give a port 1-65535", fmt.Errorf("%d is out of range", f.servicePort))
		}
	default:
		if v, ok := g.lookupEnv("MESHEXP_SERVICE_PORT"); ok && v != "" {
			var n int
			if _, err := fmt.Sscanf(v, "%d", &n); err != nil || fmt.Sprint(n) != v || n < 1 || n > 65535 {
				bad("MESHEXP_SERVICE_PORT", "give a port 1-65535", fmt.Errorf("%q is not a port number", v))
			}
			w.ServicePort = int32(n)
		} else if defaultedPorts {
			w.ServicePort = defaultServicePort
		}
	}

	// The checks the ExternalWorkload and Service add on top of the
	// settings (a Service name is a DNS-1035 label, at most two IPs, ...);
	// only meaningful once every input parsed.
	if len(probs.Errors()) == 0 {
		if err := w.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				probs = append(probs, config.Problem{Input: "registration", Message: line})
			}
		}
	}
	if err := probs.Err(); err != nil {
		return nil, nil, &UsageError{Err: err}
	}
	return w, c, nil
}

// client loads the kubeconfig and builds a client.
func (f *workloadFlags) client() (*kube.Client, error) {
	cfg, err := kube.LoadConfig(f.kubeconfig, nil)
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
		w, _, err := f.workload(g, cmd)
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
		w, _, err := f.workload(g, cmd)
		if err != nil {
			return err
		}
		c, err := f.client()
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
		Short: "Delete the ExternalWorkload, Service and Lease that apply and bootstrap made",
		Args:  cobra.NoArgs,
	}
	f := bindWorkload(g, cmd, false, true)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.load(g)
		if err != nil {
			return err
		}
		// Delete needs only the names: no IP detection, no ports.
		w := &kube.Workload{Name: c.WorkloadName, Namespace: c.WorkloadNamespace}
		cl, err := f.client()
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
		defer cancel()
		if err := cl.DeleteWorkload(ctx, w); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "externalworkload/%s, service/%s and lease/%s deleted from namespace %s\n", w.Name, w.Name, w.Name, w.Namespace)
		return nil
	}
	return cmd
}
