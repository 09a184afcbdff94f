// Package bootstrap is meshexp's main job: the ordered lifecycle that
// replaces the demo's bootstrap and run-proxy scripts.
//
//	validate → identity → interception → proxy → /ready → workload →
//	supervise → teardown (in reverse)
package bootstrap

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/netfilter"
	"github.com/meshexp/meshexp/internal/proxyenv"
	"github.com/meshexp/meshexp/internal/spire"
)

// Plan is everything bootstrap would do, computed without touching the host.
type Plan struct {
	Config   *config.Config
	ProxyEnv []proxyenv.Var
	Steps    []string
	// Sections are extra named blocks of the plan (SPIRE configs,
	// interception rules), in order.
	Sections []Section
}

// Section is a named block of text in a printed plan.
type Section struct {
	Title string
	Body  string
}

// NewPlan computes the plan for c. It reads the trust anchor but changes
// nothing.
func NewPlan(c *config.Config) (*Plan, error) {
	anchors, err := os.ReadFile(c.TrustAnchorPath())
	if err != nil {
		return nil, fmt.Errorf("bootstrap: reading trust anchor: %w", err)
	}
	env, err := proxyenv.Render(c, anchors, DualStack(c))
	if err != nil {
		return nil, err
	}
	p := &Plan{Config: c, ProxyEnv: env, Steps: steps(c)}
	for _, add := range []func(*config.Config) ([]Section, error){spireSections, ruleSections} {
		s, err := add(c)
		if err != nil {
			return nil, err
		}
		p.Sections = append(p.Sections, s...)
	}
	return p, nil
}

// spireSections are the SPIRE config files identity would write. They
// hold no secret: the join token goes to a separate 0600 file.
func spireSections(c *config.Config) ([]Section, error) {
	files, err := spire.RenderConfigs(SPIREOptions(c))
	if err != nil {
		return nil, fmt.Errorf("bootstrap: rendering SPIRE configs: %w", err)
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	out := make([]Section, len(paths))
	for i, p := range paths {
		out[i] = Section{Title: "SPIRE config " + p, Body: files[p]}
	}
	return out, nil
}

// ruleSections are the exact iptables-restore inputs interception would
// apply on a host without meshexp's rules.
func ruleSections(c *config.Config) ([]Section, error) {
	if !c.Intercept.Enabled {
		return nil, nil
	}
	rs, err := netfilter.Plan(InterceptOptions(c))
	if err != nil {
		return nil, fmt.Errorf("bootstrap: planning interception: %w", err)
	}
	var out []Section
	for i := range rs.Families {
		in, err := netfilter.InstallInput(&rs.Families[i], nil)
		if err != nil {
			return nil, err
		}
		out = append(out, Section{Title: fmt.Sprintf("interception rules, %s (restore --noflush input)", rs.Families[i].Family), Body: string(in)})
	}
	return out, nil
}

func steps(c *config.Config) []string {
	var s []string
	add := func(format string, args ...any) { s = append(s, fmt.Sprintf(format, args...)) }
	add("validate configuration (done: nothing on the host changed)")
	switch c.SPIRE.Mode {
	case config.SPIREEmbedded:
		upstream := c.TrustAnchorPath() + " (the root key: DEMO ONLY)"
		if c.SPIRE.UpstreamCert != "" {
			upstream = c.SPIRE.UpstreamCert + " (intermediate)"
		}
		add("start spire-server (embedded, DEMO ONLY) signing with %s; wait for its health", upstream)
		add("create a join token through the admin API; start spire-agent with it (token in a 0600 config file, not on the command line)")
	case config.SPIREExternal:
		add("start spire-agent joining %s:%d", c.SPIRE.ServerAddress, c.SPIRE.ServerPort)
	case config.SPIREExisting:
		add("use the running SPIRE agent at %s", c.SPIRE.SocketPath)
	}
	if c.SPIRE.Mode == config.SPIREEmbedded {
		add("register %s selecting unix:uid:%d (the proxy only)", c.SPIFFEID(), c.Proxy.User.UID)
	}
	add("wait (up to %s) for an X.509 SVID for %s on %s, verified against %s", c.SPIRE.SVIDTimeout, c.SPIFFEID(), c.SPIRE.SocketPath, c.TrustAnchorPath())
	if c.DNS.Enabled {
		add("start the DNS forwarder on %s: svc.%s. → %v, the rest → %s", c.DNS.Listen, c.ClusterDomain, c.DNS.ClusterDNS, upstreamsText(c))
		if c.DNS.PointResolver != "" {
			add("point %s at the forwarder (the original is kept and restored on exit)", c.DNS.PointResolver)
		}
	}
	if c.Intercept.Enabled {
		add("install interception rules (backend %s): inbound TCP → :%d, outbound TCP → 127.0.0.1:%d, except uid %d and mark %#x",
			c.Intercept.Backend, c.Proxy.InboundPort, c.Proxy.OutboundPort, c.Proxy.User.UID, c.Intercept.ControlMark)
	} else {
		add("interception disabled (--intercept=false)")
	}
	add("start %s as %s", c.Proxy.Bin, c.Proxy.User)
	add("wait (up to %s) for the proxy's http://127.0.0.1:%d/ready", c.ReadyTimeout, c.Proxy.AdminPort)
	add("start %s as %s (restart policy %s)", c.Workload, c.WorkloadUser, c.WorkloadRestart)
	if c.Register.Enabled {
		add("register ExternalWorkload %s/%s (server-side apply); Ready follows the proxy's /ready every %s; Lease renewed every %s; API connections carry mark %#x",
			c.WorkloadNamespace, c.WorkloadName, c.Register.ProbePeriod, c.Register.LeaseDuration/4, c.Intercept.ControlMark)
	}
	add("supervise; when the proxy dies, exit with its status")
	teardown := "teardown in reverse: "
	if c.Register.Enabled {
		keep := "kept"
		if c.Register.DeleteOnShutdown {
			keep = "deleted"
		}
		teardown += "Ready=False (ExternalWorkload then " + keep + "), "
	}
	add("%sworkload, proxy (SIGTERM, %s grace, SIGKILL), SPIRE, interception rules removed", teardown, c.ShutdownGrace)
	return s
}

// Write prints the plan for a person.
func (p *Plan) Write(w io.Writer) error {
	c := p.Config
	var b strings.Builder
	fmt.Fprintf(&b, "# meshexp bootstrap plan (dry run: nothing was changed)\n\n")
	fmt.Fprintf(&b, "workload:        %s/%s on node %s\n", c.WorkloadNamespace, c.WorkloadName, c.NodeName)
	fmt.Fprintf(&b, "identity:        %s\n", c.SPIFFEID())
	fmt.Fprintf(&b, "server name:     %s\n", c.ServerName())
	fmt.Fprintf(&b, "trust anchor:    %s\n", c.TrustAnchorPath())
	fmt.Fprintf(&b, "spire mode:      %s\n", c.SPIRE.Mode)
	fmt.Fprintf(&b, "proxy:           %s as %s\n", c.Proxy.Bin, c.Proxy.User)
	fmt.Fprintf(&b, "workload:        %s as %s\n", c.Workload, c.WorkloadUser)
	b.WriteString("\n## start order\n\n")
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "%2d. %s\n", i+1, s)
	}
	for _, s := range p.Sections {
		fmt.Fprintf(&b, "\n## %s\n\n%s", s.Title, s.Body)
		if !strings.HasSuffix(s.Body, "\n") {
			b.WriteString("\n")
		}
	}
	b.WriteString("\n## proxy environment\n\n")
	for _, v := range proxyenv.Redacted(p.ProxyEnv) {
		fmt.Fprintf(&b, "%s=%s\n", v.Name, v.Value)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func upstreamsText(c *config.Config) string {
	if len(c.DNS.Upstreams) == 0 {
		return "the nameservers of /etc/resolv.conf"
	}
	return fmt.Sprint(c.DNS.Upstreams)
}
