package cli

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshexp/meshexp/internal/admin"
	"github.com/meshexp/meshexp/internal/config"
)

func init() { subcommands = append(subcommands, newStatusCmd) }

func newStatusCmd(g *globals) *cobra.Command {
	var addr, output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Summarise a running meshexp: phases, children, identity, rules, registration, probes",
		Long: `status reads /status from the admin endpoint of a running meshexp bootstrap
(--status-addr, 127.0.0.1:4192 by default) and prints a summary: the phases
of the last start and how long each took, the children with their pid,
uptime and restarts, the identity and its SVID's expiry, the rules
installed, the ExternalWorkload's Ready as last written, and the probes.`,
		Args: cobra.NoArgs,
	}
	def := config.Lookup("status-addr")
	cmd.Flags().StringVar(&addr, "status-addr", "", "address of meshexp's admin endpoint [env MESHEXP_STATUS_ADDR] (default \""+def.Default+"\")")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if output != "text" && output != "json" {
			return usageErrorf("--output %q: want text or json", output)
		}
		if addr == "" {
			if v, ok := g.lookupEnv("MESHEXP_STATUS_ADDR"); ok && v != "" {
				addr = v
			} else {
				addr = def.Default
			}
		}
		if addr == config.StatusOff {
			return usageErrorf("--status-addr off: the admin endpoint is off; give the address bootstrap serves it on")
		}
		st, err := admin.Fetch(cmd.Context(), &http.Client{Timeout: 5 * time.Second}, addr)
		if err != nil {
			return err
		}
		if output == "json" {
			enc := json.NewEncoder(g.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		admin.WriteText(g.stdout, st, time.Now())
		return nil
	}
	return cmd
}
