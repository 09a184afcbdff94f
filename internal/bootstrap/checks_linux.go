//go:build linux

package bootstrap

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"os/user"
	"strconv"
	"time"

	"github.com/meshexp/meshexp/internal/check"
	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/fleet"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/netfilter"
	"github.com/meshexp/meshexp/internal/probe"
	"github.com/meshexp/meshexp/internal/route"
	"github.com/meshexp/meshexp/internal/spire"
)

// Checks maps the configuration onto the ordered list `meshexp check`
// runs: host, identity, cluster. pre asks "can this host run meshexp?"
// (nothing is running yet); otherwise "is the running host healthy?".
// w is the host's ExternalWorkload as configured. Nothing here changes
// the host: kube clients are created lazily by the checks that need them.
func Checks(c *config.Config, w *kube.Workload, pre bool, logger *slog.Logger) []check.Check {
	var out []check.Check
	add := func(cat, desc, hint string, warning bool, run func(context.Context) (string, error)) {
		out = append(out, check.Check{Category: cat, Description: desc, Hint: hint, Warning: warning, Run: run})
	}
	needs := func(desc string) { out[len(out)-1].Needs = desc }
	now := time.Now
	mark := c.Intercept.ControlMark

	// host
	add(check.Host, "meshexp has the NET_ADMIN capability", "run meshexp as root or grant it CAP_NET_ADMIN (docker/podman: --cap-add NET_ADMIN)", false, check.NetAdmin)
	backend := netfilter.Backend(c.Intercept.Backend)
	if c.Intercept.Enabled {
		add(check.Host, "the nat table takes owner-match and REDIRECT rules", "load the kernel modules iptable_nat/nft_nat, xt_owner and xt_REDIRECT, or pick the other --intercept-backend", false,
			func(ctx context.Context) (string, error) {
				if backend == netfilter.BackendAuto {
					backend, _ = netfilter.Detect(ctx, logger)
				}
				return check.NATProbe(restoreTool(backend), c.Proxy.User.UID, c.Proxy.InboundPort)(ctx)
			})
		add(check.Host, "the iptables backend has no conflicting rules", "keep one backend and one set of PROXY_INIT chains (`meshexp intercept remove --intercept-backend <other>`); restart meshexp after Docker restarts", false,
			func(ctx context.Context) (string, error) {
				if backend == netfilter.BackendAuto {
					backend, _ = netfilter.Detect(ctx, logger)
				}
				return check.Conflicts(check.BackendDumps(ctx), string(backend), !pre)
			})
	}
	ports := []check.Port{
		{Name: "proxy inbound", Proto: "tcp", Port: c.Proxy.InboundPort},
		{Name: "proxy outbound", Proto: "tcp", Port: c.Proxy.OutboundPort},
		{Name: "proxy admin", Proto: "tcp", Port: c.Proxy.AdminPort},
		{Name: "proxy control", Proto: "tcp", Port: c.Proxy.ControlPort},
	}
	if c.DNS.Enabled {
		if _, p, err := net.SplitHostPort(c.DNS.Listen); err == nil {
			n, _ := strconv.ParseUint(p, 10, 16)
			ports = append(ports, check.Port{Name: "DNS", Proto: "udp", Port: uint16(n)}, check.Port{Name: "DNS", Proto: "tcp", Port: uint16(n)})
		}
	}
	var owner func(check.Holder) bool
	if !pre {
		owner = check.DescendantOf("meshexp")
	}
	add(check.Host, "the proxy's and DNS ports are free or meshexp's own", "stop what holds the port or choose other ports (--inbound-port, --outbound-port, --admin-port, --control-port, --dns-listen)", false, check.PortsFree(ports, owner))
	add(check.Host, "IPv6 matches --intercept-ipv6", "set --intercept-ipv6 auto, or on only where IPv6 is enabled", false, check.IPv6State(c.Intercept.IPv6))
	kc := &lazyKube{c: c}
	add(check.Host, "the clock agrees with the Kubernetes API server", "synchronise the clock (chrony, systemd-timesyncd)", false,
		func(ctx context.Context) (string, error) {
			cfg, hc, err := kc.http()
			if err != nil {
				return "", check.Skipf("no Kubernetes API server to compare with: %v", err)
			}
			return check.ClockSkew(hc, cfg.Host+"/version")(ctx)
		})

	// identity
	add(check.Identity, "the trust anchor is valid", "renew the trust anchor (`meshexp certs root`) and roll it out with the control plane", false, check.TrustAnchor(c.TrustAnchorPath(), c.TrustDomain, now))
	running := !pre || c.SPIRE.Mode == config.SPIREExisting
	if running {
		add(check.Identity, "only the proxy can reach the Workload API socket", "give the socket a directory only the proxy's uid may enter (owner the proxy uid, mode 0700)", false,
			check.SocketAccess(c.SPIRE.SocketPath, cred("the proxy", c.Proxy.User), cred("the workload", c.WorkloadUser)))
		add(check.Identity, "the proxy gets a valid SVID", "look at the SPIRE agent's log; check the entry selects unix:uid:<proxy uid> and the agent's trust bundle is the trust anchor", false,
			check.SVID(spire.FetchOptions{SocketPath: c.SPIRE.SocketPath, ID: c.SPIFFEID(), UID: c.Proxy.User.UID, GID: c.Proxy.User.GID, TrustAnchorPath: c.TrustAnchorPath()}, now))
	}
	if c.SPIRE.Mode == config.SPIREExternal {
		addr := net.JoinHostPort(c.SPIRE.ServerAddress, strconv.Itoa(int(c.SPIRE.ServerPort)))
		add(check.Identity, "the SPIRE server is reachable", "check --spire-server-address/--spire-server-port and the firewall between this host and the server", false, check.TCPReach(addr, mark))
	}
	so := SPIREOptions(c)
	add(check.Identity, "the proxy and SPIRE agent versions work together", "use a proxy and agent known to work together", true,
		check.Versions(
			func(ctx context.Context) (string, error) { return check.BinaryVersion(ctx, c.Proxy.Bin, "--version") },
			func(ctx context.Context) (string, error) {
				if c.SPIRE.Mode == config.SPIREExisting {
					return "", fmt.Errorf("the agent is not meshexp's (--spire-mode existing)")
				}
				bin, err := so.Binary("spire-agent")
				if err != nil {
					return "", err
				}
				return check.BinaryVersion(ctx, bin, "--version")
			}))

	// cluster
	for _, s := range []struct{ name, addr, id string }{
		{"destination", c.DestinationAddr, c.DestinationIdentity},
		{"policy", c.PolicyAddr, c.PolicyIdentity},
	} {
		resolves := "the " + s.name + " address resolves"
		reachable := "the " + s.name + " service is reachable with the control mark"
		add(check.Cluster, resolves, "run the DNS forwarder (--dns with --cluster-dns) or give --"+s.name+"-addr as IP:PORT", false, check.Resolve(s.addr))
		add(check.Cluster, reachable, "route the cluster's pod network to this host (`meshexp route add`) and open the firewall", false, check.TCPReach(s.addr, mark))
		needs(resolves)
		add(check.Cluster, "the "+s.name+" service's certificate chains to the trust anchor and names "+s.id, "the control plane must use this trust anchor; check --trust-anchor-dir and --"+s.name+"-identity", false,
			check.TLSIdentity(s.addr, s.id, c.TrustAnchorPath(), mark, now))
		needs(reachable)
	}
	add(check.Cluster, "every node's pod CIDR is routed via its node", "add the routes: `meshexp route add`", false,
		check.Routes(func(ctx context.Context) ([]route.Route, error) {
			cl, err := kc.client()
			if err != nil {
				return nil, check.Skipf("no Kubernetes API server to list nodes from: %v", err)
			}
			rs, _, err := route.FromCluster(ctx, cl.Dynamic, route.ClusterOptions{})
			return rs, err
		}))
	if specs, _ := WorkloadProbes(c); !pre && len(specs) > 0 {
		r := probe.Runner{Dial: netfilter.ControlDialer(mark).DialContext, UID: c.WorkloadUser.UID, GID: c.WorkloadUser.GID}
		timeout := c.Probes.Timeout
		add(check.Cluster, "the workload's probes pass", "look at the workload: the probe's error says what it answered", false,
			func(ctx context.Context) (string, error) {
				for _, sp := range specs {
					pctx, cancel := context.WithTimeout(ctx, timeout)
					err := r.Once(pctx, sp)
					cancel()
					if err != nil {
						return "", err
					}
				}
				return fmt.Sprintf("%d probes", len(specs)), nil
			})
	}
	if !pre && c.Register.Enabled {
		// Ready is the proxy's /ready and every probe: meshexp's own /ready
		// says both when its admin endpoint is on.
		readyURL := fmt.Sprintf("http://127.0.0.1:%d/ready", c.Proxy.AdminPort)
		if c.StatusAddr != "" && c.StatusAddr != config.StatusOff {
			readyURL = "http://" + c.StatusAddr + "/ready"
		}
		add(check.Cluster, "the ExternalWorkload matches this host and its Ready agrees with meshexp", "restart meshexp with --register, or compare the ExternalWorkload with `meshexp workload render`", false,
			check.ExternalWorkload(func(ctx context.Context) (*kube.ExternalWorkload, error) {
				cl, err := kc.client()
				if err != nil {
					return nil, err
				}
				return cl.GetWorkload(ctx, w)
			}, *w, func(ctx context.Context) error {
				return ProbeReady(ctx, &http.Client{}, readyURL)
			}))
	}
	if !pre && c.Fleet.ControllerAddr != "" {
		add(check.Cluster, "this host is registered with the controller", "do what the controller's message says (the ExternalGroup's spec.identities, --group, --controller-identity, the trust anchor); while it retries, check --controller-addr and the path to the controller; `meshexp status` follows the state", false,
			check.Registration(func() (fleet.Published, error) {
				ns, err := netnsID()
				if err != nil {
					return fleet.Published{}, err
				}
				return fleet.ReadState(registrationDir(ns))
			}))
	}
	return out
}

func restoreTool(b netfilter.Backend) string {
	name := string(b) + "-restore"
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return "iptables-restore"
}

func cred(who string, u config.User) check.Cred {
	cr := check.Cred{Name: fmt.Sprintf("%s (uid %d)", who, u.UID), UID: u.UID, Groups: []uint32{u.GID}}
	if usr, err := user.LookupId(strconv.Itoa(int(u.UID))); err == nil {
		if gids, err := usr.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil {
					cr.Groups = append(cr.Groups, uint32(n))
				}
			}
		}
	}
	return cr
}
