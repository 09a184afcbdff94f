package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/trust"
)

func init() { subcommands = append(subcommands, newControllerCmd) }

func newControllerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the cluster-side controller that registers hosts by their SPIFFE identity",
		Long: `controller runs meshexp's fleet controller: hosts connect over mutual TLS with
their X.509-SVID and join an ExternalGroup; the controller writes their
ExternalWorkloads from the group's template and keeps Ready true to what they
report, marks silent hosts not ready and deletes them later.

Inside a cluster it uses the pod's service account; outside, --kubeconfig.
--tls-dir holds controller.crt and controller.key (meshexp certs controller)
and ca.crt, the mesh's trust anchor that hosts' SVIDs chain to.

  meshexp controller install --replicas 2 | kubectl apply -f -

Every setting has a flag and a MESHEXP_CONTROLLER_* variable (the trust and
cluster domains and the kubeconfig are bootstrap's); flags override the
environment, which overrides the --config file.

` + exitCodeHelp,
		Args: noArgs,
	}
	var id controllerIdentity
	load := settingsFlags(g, cmd, config.ScopeControllerCommand, func(c *config.Config, _ bool) config.Problems {
		var probs config.Problems
		id, probs = loadControllerIdentity(c, g.lookupEnv)
		return probs
	})
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := load(false)
		if err != nil {
			return err
		}
		return runController(cmd.Context(), g, c, id)
	}
	cmd.AddCommand(newControllerInstallCmd(g), newControllerAgentCmd(g))
	return cmd
}

// controllerIdentity is what --tls-dir holds, and the address other
// replicas reach this one on.
type controllerIdentity struct {
	svid      *x509svid.SVID
	bundle    *x509bundle.Bundle
	advertise string
}

// loadControllerIdentity reads the certificates and derives the advertised
// address, naming the setting behind each problem.
func loadControllerIdentity(c *config.Config, getenv func(string) (string, bool)) (controllerIdentity, config.Problems) {
	o := c.Controller
	var id controllerIdentity
	var probs config.Problems
	bad := func(setting, fix, format string, args ...any) {
		probs = append(probs, config.Problem{Setting: setting, Input: c.Input(setting), Message: fmt.Sprintf(format, args...), Fix: fix})
	}
	td, tdErr := spiffeid.TrustDomainFromString(c.TrustDomain)
	if o.TLSDir != "" {
		svid, err := x509svid.Load(filepath.Join(o.TLSDir, "controller.crt"), filepath.Join(o.TLSDir, "controller.key"))
		switch {
		case err != nil:
			bad("controller-tls-dir", "make them with `meshexp certs controller` (or mount the Secret "+controller.TLSSecret+" there)",
				"%s: controller.crt/controller.key: %v", o.TLSDir, err)
		case tdErr == nil && svid.ID.TrustDomain() != td:
			bad("controller-tls-dir", "make the certificate for the mesh's trust domain, or fix --trust-domain",
				"%s: controller.crt is for %s, not in the trust domain %s", o.TLSDir, svid.ID, td.Name())
		default:
			id.svid = svid
		}
		if tdErr == nil {
			bundle, err := x509bundle.Load(td, filepath.Join(o.TLSDir, "ca.crt"))
			if err != nil {
				bad("controller-tls-dir", "copy the mesh's trust anchor there as ca.crt", "%s: ca.crt: %v", o.TLSDir, err)
			}
			id.bundle = bundle
		}
	}
	id.advertise = o.AdvertiseAddr
	if id.advertise == "" {
		host, port, err := net.SplitHostPort(o.Listen)
		ip, _ := getenv("POD_IP")
		switch {
		case err != nil: // refused with --listen
		case ip != "":
			id.advertise = net.JoinHostPort(ip, port)
		case host != "" && port != "0":
			id.advertise = o.Listen
		default:
			bad("controller-advertise-addr", "give this replica's HOST:PORT, or a --listen with a host",
				"not set, and neither POD_IP nor a --listen host to derive it from")
		}
	}
	return id, probs
}

func runController(ctx context.Context, g *globals, c *config.Config, id controllerIdentity) error {
	o := c.Controller
	cfg, err := restConfig(c.Register.Kubeconfig)
	if err != nil {
		return &UsageError{Err: fmt.Errorf("%s: %w", c.Input("kubeconfig"), err)}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build Kubernetes client: %w", err)
	}
	lis, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("%s %s: %w", c.Input("controller-listen"), o.Listen, err)
	}
	defer lis.Close()
	var ml net.Listener
	if o.MetricsAddr != "" {
		if ml, err = net.Listen("tcp", o.MetricsAddr); err != nil {
			return fmt.Errorf("%s %s: %w", c.Input("controller-metrics-addr"), o.MetricsAddr, err)
		}
		defer ml.Close()
		g.logger.Info("controller metrics", "url", "http://"+ml.Addr().String()+"/metrics")
	}
	ctl, err := controller.New(dyn, controller.Options{
		Namespace: o.Namespace, AdvertiseAddr: id.advertise, SVID: id.svid, ID: id.svid.ID, Bundle: id.bundle, ClusterDomain: c.ClusterDomain,
		ReleaseOnCancel: true, LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
		MetricsListener: ml,
	}, g.logger)
	if err != nil {
		return err
	}
	g.logger.Info("controller serving", "listen", lis.Addr().String(), "advertise", id.advertise, "identity", id.svid.ID.String())
	return ctl.Run(ctx, lis)
}

// restConfig is the in-cluster configuration inside a pod (no
// --kubeconfig), else the kubeconfig.
func restConfig(path string) (*rest.Config, error) {
	if path == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes config: %w", err)
		}
		return tuneRESTConfig(cfg), nil
	}
	cfg, err := kube.LoadConfig(path, nil)
	if err != nil {
		return nil, err
	}
	return tuneRESTConfig(cfg), nil
}

// tuneRESTConfig lifts client-go's default client-side limit (5 QPS): a
// cold start of thousands of hosts is three requests each, and the API
// server's own priority and fairness protects it.
func tuneRESTConfig(cfg *rest.Config) *rest.Config {
	cfg.UserAgent = controller.Name
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.Timeout = 30 * time.Second
	return cfg
}

func newControllerInstallCmd(g *globals) *cobra.Command {
	o := controller.InstallOptions{}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Print the controller's manifests for kubectl apply -f -",
		Long: `install prints the namespace, service account, least-privilege RBAC, the
ExternalGroup CRD, the Deployment, its Service and PodDisruptionBudget:

  meshexp controller install --replicas 2 | kubectl apply -f -

The Deployment mounts the Secret ` + controller.TLSSecret + ` (see the first lines of the output).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.LogLevel = g.logLevel
			b, err := controller.RenderInstall(o)
			if err != nil {
				return &UsageError{Err: err}
			}
			_, err = g.stdout.Write(b)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Namespace, "namespace", controller.DefaultNamespace, "namespace to install into")
	fl.StringVar(&o.Image, "image", "ghcr.io/meshexp/meshexp:"+version, "meshexp's image (the same as bootstrap's)")
	fl.IntVar(&o.Replicas, "replicas", 2, "replicas; any serves hosts, one leader writes")
	fl.StringVar(&o.TrustDomain, "trust-domain", trust.DefaultTrustDomain, "the mesh's SPIFFE trust domain")
	return cmd
}
