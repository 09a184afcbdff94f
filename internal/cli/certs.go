package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/trust"
)

// maxCertTTL bounds --ttl: far beyond any sane validity, short of the
// durations that overflow.
const maxCertTTL = 100 * 365 * 24 * time.Hour

func init() { subcommands = append(subcommands, newCertsCmd) }

func newCertsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create and inspect the mesh's trust anchor, issuer and SPIRE intermediate",
		Long: `certs creates Linkerd-compatible certificates (ECDSA P-256, as Linkerd
requires) and inspects existing ones the way bootstrap's validation sees them.

  meshexp certs root --out-dir DIR                  trust anchor: DIR/ca.crt, DIR/ca.key
  meshexp certs issuer --ca-dir DIR --out-dir DIR   control-plane issuer: issuer.crt, issuer.key
  meshexp certs intermediate --ca-dir DIR --out-dir DIR
                                                    CA for a SPIRE server, so hosts need not hold
                                                    the root key: intermediate.crt, intermediate.key
  meshexp certs controller --ca-dir DIR --out-dir DIR
                                                    the meshexp controller's serving certificate:
                                                    controller.crt, controller.key
  meshexp certs inspect FILE...                     print what validation sees

Keys are written with mode 0600. Existing files are not replaced without --force.`,
	}
	cmd.AddCommand(newCertsRootCmd(g), newCertsSignedCmd(g, "issuer"), newCertsSignedCmd(g, "intermediate"), newCertsControllerCmd(g), newCertsInspectCmd(g))
	return cmd
}

type certOut struct {
	dir   string
	force bool
	ttl   time.Duration
	cn    string
}

func (o *certOut) flags(cmd *cobra.Command, defaultCN string, defaultTTL time.Duration) {
	cmd.Flags().StringVar(&o.dir, "out-dir", ".", "directory to write the certificate and key into")
	cmd.Flags().BoolVar(&o.force, "force", false, "replace existing files")
	cmd.Flags().DurationVar(&o.ttl, "ttl", defaultTTL, "validity period")
	cmd.Flags().StringVar(&o.cn, "cn", defaultCN, "subject common name")
}

// write checks the target first, so a refusal leaves nothing half-written.
func (o *certOut) write(g *globals, kp *trust.KeyPair, base string) error {
	crt, key := filepath.Join(o.dir, base+".crt"), filepath.Join(o.dir, base+".key")
	if fi, err := os.Stat(o.dir); err != nil || !fi.IsDir() {
		return usageErrorf("--out-dir %s: not an existing directory (fix: create it first)", o.dir)
	}
	if !o.force {
		for _, p := range []string{crt, key} {
			if _, err := os.Stat(p); err == nil {
				return usageErrorf("%s already exists (fix: choose another --out-dir, or --force to replace it)", p)
			}
		}
	}
	if err := kp.WriteFiles(crt, key); err != nil {
		return err
	}
	g.logger.Info("wrote certificate", "cert", crt, "key", key, "subject", kp.Cert.Subject.CommonName, "expires", kp.Cert.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(g.stdout, "%s\n%s\n", crt, key)
	return nil
}

func (o *certOut) validate() error {
	if o.ttl <= 0 || o.ttl > maxCertTTL {
		return usageErrorf("--ttl %s: must be positive and at most %s (100 years)", o.ttl, maxCertTTL)
	}
	if strings.TrimSpace(o.cn) == "" {
		return usageErrorf("--cn: must not be empty")
	}
	return nil
}

func newCertsRootCmd(g *globals) *cobra.Command {
	var o certOut
	cmd := &cobra.Command{
		Use:   "root",
		Short: "Create a trust anchor (ca.crt, ca.key)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			kp, err := trust.NewRoot(o.cn, o.ttl)
			if err != nil {
				return err
			}
			return o.write(g, kp, "ca")
		},
	}
	o.flags(cmd, trust.DefaultTrustDomain, trust.DefaultRootTTL)
	return cmd
}

func newCertsSignedCmd(g *globals, kind string) *cobra.Command {
	var o certOut
	var caDir string
	cn, ttl, short := trust.DefaultIssuerCN, trust.DefaultIssuerTTL, "Create the Linkerd control plane's identity issuer, signed by the trust anchor"
	make := trust.NewIssuer
	if kind == "intermediate" {
		cn, ttl = "spire."+trust.DefaultTrustDomain, 90*24*time.Hour
		short = "Create an intermediate CA for a SPIRE server (UpstreamAuthority disk), signed by the trust anchor"
		make = trust.NewIntermediate
	}
	cmd := &cobra.Command{
		Use:   kind,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			crt, key := filepath.Join(caDir, "ca.crt"), filepath.Join(caDir, "ca.key")
			if err := plainFiles("--ca-dir", crt, key); err != nil {
				return err
			}
			_, findings := trust.CheckAnchor(crt, key, trust.CheckOptions{})
			if err := findingsError("--ca-dir", findings); err != nil {
				return err
			}
			root, err := trust.LoadKeyPair(crt, key)
			if err != nil {
				return &UsageError{Err: err}
			}
			kp, err := make(root, o.cn, o.ttl)
			if err != nil {
				return err
			}
			if kp.Cert.NotAfter.After(root.Cert.NotAfter) {
				g.logger.Warn("certificate outlives the trust anchor; it stops verifying when the anchor expires", "anchor-expires", root.Cert.NotAfter.UTC().Format(time.RFC3339))
			}
			return o.write(g, kp, kind)
		},
	}
	o.flags(cmd, cn, ttl)
	cmd.Flags().StringVar(&caDir, "ca-dir", ".", "directory holding the trust anchor ca.crt and ca.key")
	return cmd
}

// plainFiles refuses, before reading, files that are not regular (a FIFO
// would block forever) and encrypted keys; the first path may be a key.
func plainFiles(input string, paths ...string) error {
	var msgs []string
	for i, p := range paths {
		if p == "" {
			continue
		}
		if msg, fix := config.FileProblem(p, i == 0 || strings.HasSuffix(p, ".key")); msg != "" {
			msgs = append(msgs, fmt.Sprintf("%s: %s (fix: %s)", p, msg, fix))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return usageErrorf("%s: %s", input, strings.Join(msgs, "; "))
}

// findingsError turns blocking findings into a UsageError naming the input.
func findingsError(input string, findings []trust.Finding) error {
	var msgs []string
	for _, f := range findings {
		if f.Severity == trust.Error {
			msgs = append(msgs, fmt.Sprintf("%s: %s (fix: %s)", f.File, f.Message, f.Fix))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return usageErrorf("%s: %s", input, strings.Join(msgs, "; "))
}

func newCertsInspectCmd(g *globals) *cobra.Command {
	var keyPath, trustDomain string
	cmd := &cobra.Command{
		Use:   "inspect FILE...",
		Short: "Print what validation sees in certificate files",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := plainFiles("certs inspect", append([]string{keyPath}, args...)...); err != nil {
				return err
			}
			bad := 0
			for i, path := range args {
				key := ""
				if i == 0 {
					key = keyPath
				}
				certs, findings := trust.CheckAnchor(path, key, trust.CheckOptions{TrustDomain: trustDomain, ExpiryWarning: 30 * 24 * time.Hour})
				fmt.Fprintf(g.stdout, "== %s\n", path)
				for j, c := range certs {
					if len(certs) > 1 {
						fmt.Fprintf(g.stdout, "-- certificate %d\n", j+1)
					}
					fmt.Fprint(g.stdout, trust.Describe(c))
				}
				for _, f := range findings {
					if f.Severity == trust.Error {
						bad++
					}
					fmt.Fprintf(g.stdout, "%s: %s: %s (fix: %s)\n", f.Severity, f.File, f.Message, f.Fix)
				}
				if len(findings) == 0 {
					fmt.Fprintln(g.stdout, "ok: a valid trust anchor for Linkerd")
				}
			}
			if bad > 0 {
				return &ExitError{Code: ExitUsage, Err: errors.New("certs inspect: " + plural(bad, "problem") + " found")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key to check against the first certificate")
	cmd.Flags().StringVar(&trustDomain, "trust-domain", trust.DefaultTrustDomain, "trust domain the subject is compared with")
	return cmd
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
