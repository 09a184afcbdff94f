package cli

import (
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/controller"
	"github.com/meshexp/meshexp/internal/trust"
)

// newCertsControllerCmd makes the controller's serving certificate: a leaf
// signed by the mesh's trust anchor (or an intermediate given as --ca-dir)
// that is an X.509-SVID for the controller's SPIFFE ID and carries the
// Service's DNS names, so hosts may verify either.
func newCertsControllerCmd(g *globals) *cobra.Command {
	var o certOut
	var caDir, namespace, trustDomain string
	var dnsNames []string
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Create the meshexp controller's serving certificate (controller.crt, controller.key), signed by the trust anchor",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			opts := controller.InstallOptions{Namespace: namespace, TrustDomain: trustDomain, Image: "-", Replicas: 1}
			if err := opts.Validate(); err != nil {
				return &UsageError{Err: err}
			}
			crt, key := filepath.Join(caDir, "ca.crt"), filepath.Join(caDir, "ca.key")
			_, findings := trust.CheckAnchor(crt, key, trust.CheckOptions{})
			if err := findingsError("--ca-dir", findings); err != nil {
				return err
			}
			ca, err := trust.LoadKeyPair(crt, key)
			if err != nil {
				return &UsageError{Err: err}
			}
			svc := controller.ServiceDNSName(namespace)
			names := append([]string{svc, svc + "." + "cluster.local"}, dnsNames...)
			kp, err := trust.NewLeaf(ca, controller.ControllerID(trustDomain, namespace), names, o.ttl)
			if err != nil {
				return err
			}
			return o.write(g, kp, "controller")
		},
	}
	o.flags(cmd, controller.Name, 90*24*time.Hour)
	cmd.Flags().StringVar(&caDir, "ca-dir", ".", "directory holding the trust anchor ca.crt and ca.key")
	cmd.Flags().StringVar(&namespace, "namespace", controller.DefaultNamespace, "the controller's namespace (in its SPIFFE ID and DNS names)")
	cmd.Flags().StringVar(&trustDomain, "trust-domain", trust.DefaultTrustDomain, "the mesh's SPIFFE trust domain")
	cmd.Flags().StringSliceVar(&dnsNames, "dns-name", nil, "an extra DNS name for the certificate (e.g. a load balancer's); repeatable")
	_ = cmd.Flags().MarkHidden("cn")
	return cmd
}
