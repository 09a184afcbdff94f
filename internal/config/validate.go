package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/meshexp/meshexp/internal/trust"
)

// ValidateOptions says how strict Validate is.
type ValidateOptions struct {
	Scope Scope
	// DryRun reports host-dependent problems (binaries not installed) as
	// warnings, so a plan can be shown on a laptop.
	DryRun bool
	// Now is when certificates must be valid; zero means time.Now().
	Now time.Time
}

// maxSocketPath is the room in sockaddr_un.sun_path (108 bytes on Linux,
// including the terminating NUL).
const maxSocketPath = 107

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	trustDomain  = regexp.MustCompile(`^[a-z0-9._-]+$`)
)

// Validate checks everything it can without changing the host and returns
// every problem at once.
func (c *Config) Validate(opts ValidateOptions) Problems {
	v := &validator{c: c, opts: opts}
	s := opts.Scope
	if s&ScopeWorkload != 0 {
		v.names()
	}
	if s&(ScopeProxy|ScopeSPIRE) != 0 {
		v.trustAnchor()
	}
	if s&(ScopeProxy|ScopeIntercept) != 0 {
		v.proxyPorts()
		v.proxyUser()
	}
	if s&ScopeProxy != 0 {
		v.controlPlane()
	}
	if s&ScopeSPIRE != 0 {
		v.spire()
	}
	if s&ScopeRun != 0 {
		v.run()
	}
	if s&ScopeDNS != 0 && c.DNS.Enabled && len(c.DNS.ClusterDNS) == 0 {
		v.add("cluster-dns", "give kube-dns's address as the cluster sees it, e.g. a node IP and kube-dns's NodePort", "--dns needs at least one cluster DNS server")
	}
	return v.probs
}

type validator struct {
	c     *Config
	opts  ValidateOptions
	probs Problems
}

func (v *validator) add(setting, fix, format string, args ...any) {
	v.probs = append(v.probs, Problem{Input: v.c.input(setting), Message: fmt.Sprintf(format, args...), Fix: fix})
}

func (v *validator) warn(setting, fix, format string, args ...any) {
	v.probs = append(v.probs, Problem{Input: v.c.input(setting), Message: fmt.Sprintf(format, args...), Fix: fix, Warning: true})
}

// hostDependent is an error normally and a warning in dry-run.
func (v *validator) hostDependent(setting, fix, format string, args ...any) {
	if v.opts.DryRun {
		v.warn(setting, fix, format, args...)
		return
	}
	v.add(setting, fix, format, args...)
}

func (v *validator) names() {
	c := v.c
	// The name becomes an ExternalWorkload and Service name, a SPIFFE ID
	// path segment and a DNS label in the TLS server name.
	for _, n := range []struct{ setting, value string }{
		{"workload-name", c.WorkloadName}, {"workload-namespace", c.WorkloadNamespace},
	} {
		if n.value != "" && !IsDNS1123Label(n.value) {
			v.add(n.setting, "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
				"%q is not a valid Kubernetes name (DNS-1123 label)", n.value)
		}
	}
	if c.NodeName != "" && !IsDNS1123Subdomain(c.NodeName) {
		v.add("node-name", "use lowercase letters, digits, '-' and '.', at most 253 characters", "%q is not a valid node name (DNS-1123 subdomain)", c.NodeName)
	}
	if !trustDomain.MatchString(c.TrustDomain) || len(c.TrustDomain) > 255 {
		v.add("trust-domain", "use lowercase letters, digits, '.', '-' and '_' (e.g. root.linkerd.cluster.local)", "%q is not a valid SPIFFE trust domain", c.TrustDomain)
	}
	if !IsDNS1123Subdomain(c.ClusterDomain) {
		v.add("cluster-domain", "use a DNS name such as cluster.local", "%q is not a valid DNS domain", c.ClusterDomain)
	}
}

func (v *validator) trustAnchor() {
	c := v.c
	if c.TrustAnchorDir == "" {
		v.add("trust-anchor-dir", "point it at the directory holding ca.crt", "is empty")
		return
	}
	keyPath := ""
	if c.SPIRE.Mode == SPIREEmbedded && c.SPIRE.UpstreamCert == "" && v.opts.Scope&ScopeSPIRE != 0 {
		// Demo compatibility: the embedded server signs with the root key.
		keyPath = c.TrustAnchorKeyPath()
	}
	_, findings := trust.CheckAnchor(c.TrustAnchorPath(), keyPath, trust.CheckOptions{
		TrustDomain:   c.TrustDomain,
		Now:           v.opts.Now,
		ExpiryWarning: 30 * 24 * time.Hour,
	})
	for _, f := range findings {
		v.probs = append(v.probs, Problem{
			Input:   fmt.Sprintf("%s (from %s)", f.File, v.c.input("trust-anchor-dir")),
			Message: f.Message, Fix: f.Fix, Warning: f.Severity == trust.Warning,
		})
	}
}

func (v *validator) proxyPorts() {
	p := v.c.Proxy
	seen := map[uint16]string{}
	for _, port := range []struct {
		setting string
		value   uint16
	}{{"inbound-port", p.InboundPort}, {"outbound-port", p.OutboundPort}, {"admin-port", p.AdminPort}, {"control-port", p.ControlPort}} {
		if port.value == 0 {
			continue // already reported by the parser
		}
		if other, dup := seen[port.value]; dup {
			v.add(port.setting, "give each proxy listener its own port", "port %d is also the %s", port.value, other)
			continue
		}
		seen[port.value] = port.setting
	}
}

func (v *validator) proxyUser() {
	u := v.c.Proxy.User
	if u.Spec != "" && u.UID == 0 {
		v.add("proxy-uid", "use a dedicated non-root uid such as 2102: the proxy's uid bypasses interception and owns the SVID",
			"the proxy must not run as root (uid 0)")
	}
}

func (v *validator) controlPlane() {
	// linkerd2-proxy linkerd/app/src/env.rs parse_default_policy: the
	// cluster-* policies are refused when no cluster networks are set.
	if strings.HasPrefix(v.c.Proxy.InboundDefaultPolicy, "cluster-") && len(v.c.Proxy.ClusterNetworks) == 0 {
		v.add("inbound-default-policy", "set --cluster-networks or choose an all-* policy", "%s needs cluster networks", v.c.Proxy.InboundDefaultPolicy)
	}
	for _, s := range []struct{ setting, value string }{{"destination-addr", v.c.DestinationAddr}, {"policy-addr", v.c.PolicyAddr}} {
		host, port, err := net.SplitHostPort(s.value)
		if err != nil || host == "" {
			v.add(s.setting, "use host:port, e.g. linkerd-dst-headless.linkerd.svc.cluster.local.:8086", "%q is not host:port", s.value)
			continue
		}
		if _, err := ParsePort(port); err != nil {
			v.add(s.setting, "use a port from 1 to 65535", "%q: %v", s.value, err)
		}
	}
	for _, s := range []struct{ setting, value string }{{"destination-identity", v.c.DestinationIdentity}, {"policy-identity", v.c.PolicyIdentity}} {
		if !IsDNS1123Subdomain(s.value) {
			v.add(s.setting, "use the control plane's identity name, e.g. linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local", "%q is not a DNS name", s.value)
		}
	}
}

func (v *validator) spire() {
	s := v.c.SPIRE
	if len(s.SocketPath) > maxSocketPath {
		v.add("spire-socket", "use a shorter path", "socket path is %d bytes; Unix sockets allow at most %d", len(s.SocketPath), maxSocketPath)
	}
	if !filepath.IsAbs(s.SocketPath) {
		v.add("spire-socket", "use an absolute path", "%q is not an absolute path", s.SocketPath)
	}
	switch s.Mode {
	case SPIREEmbedded:
		if s.UpstreamCert != "" || s.UpstreamKey != "" {
			if s.UpstreamCert == "" || s.UpstreamKey == "" {
				v.add("spire-upstream-cert", "set both --spire-upstream-cert and --spire-upstream-key", "an upstream CA needs both its certificate and its key")
			} else {
				v.upstreamCA()
			}
		}
		if s.DataDir != "" && len(filepath.Join(s.DataDir, "server", "api.sock")) > maxSocketPath {
			v.add("spire-data-dir", "use a shorter directory", "admin socket paths under %q would exceed %d bytes", s.DataDir, maxSocketPath)
		}
	case SPIREExternal:
		if s.ServerAddress == "" {
			v.add("spire-server-address", "set the SPIRE server's address", "external mode needs the SPIRE server's address")
		}
		tokens := 0
		if s.JoinToken != "" {
			tokens++
		}
		if s.JoinTokenFile != "" {
			tokens++
			v.readable("spire-join-token-file", s.JoinTokenFile)
		}
		pop := s.X509PopCert != "" || s.X509PopKey != ""
		switch {
		case tokens == 0 && !pop:
			v.add("spire-join-token-file", "give a join token file (or MESHEXP_SPIRE_JOIN_TOKEN), or --spire-x509pop-cert and --spire-x509pop-key", "external mode needs a way to attest this node")
		case tokens > 1:
			v.add("spire-join-token", "give the token one way only", "both --spire-join-token and --spire-join-token-file are set")
		case tokens > 0 && pop:
			v.add("spire-x509pop-cert", "choose one attestation method", "both a join token and x509pop are set")
		case pop:
			if s.X509PopCert == "" || s.X509PopKey == "" {
				v.add("spire-x509pop-cert", "set both --spire-x509pop-cert and --spire-x509pop-key", "x509pop needs both a certificate and a key")
			} else {
				v.readable("spire-x509pop-cert", s.X509PopCert)
				v.readable("spire-x509pop-key", s.X509PopKey)
			}
		}
		if s.TrustBundle != "" {
			v.readable("spire-trust-bundle", s.TrustBundle)
		}
	case SPIREExisting:
		fi, err := os.Stat(s.SocketPath)
		if err != nil || fi.Mode()&os.ModeSocket == 0 {
			v.hostDependent("spire-socket", "start the SPIRE agent first, or point --spire-socket at its Workload API socket", "no SPIRE agent socket at %s", s.SocketPath)
		}
	}
}

func (v *validator) upstreamCA() {
	s := v.c.SPIRE
	certs, findings := trust.CheckAnchor(s.UpstreamCert, s.UpstreamKey, trust.CheckOptions{Now: v.opts.Now})
	for _, f := range findings {
		v.probs = append(v.probs, Problem{Input: fmt.Sprintf("%s (from %s)", f.File, v.c.input("spire-upstream-cert")), Message: f.Message, Fix: f.Fix, Warning: f.Severity == trust.Warning})
	}
	if len(certs) == 0 {
		return
	}
	bundlePath := s.UpstreamBundle
	if bundlePath == "" {
		bundlePath = v.c.TrustAnchorPath()
	}
	data, err := os.ReadFile(bundlePath)
	if err != nil {
		v.add("spire-upstream-bundle", "point it at the PEM roots above the upstream CA", "cannot read %s: %v", bundlePath, err)
		return
	}
	roots, err := trust.ParseCertificates(data)
	if err != nil {
		v.add("spire-upstream-bundle", "point it at the PEM roots above the upstream CA", "%s: %v", bundlePath, err)
		return
	}
	if err := trust.VerifyCA(certs[0], roots, v.opts.Now); err != nil {
		v.add("spire-upstream-cert", "use an intermediate signed by the trust anchor (meshexp certs intermediate)", "%s does not chain to %s: %v", s.UpstreamCert, bundlePath, err)
	}
}

func (v *validator) run() {
	c := v.c
	if err := checkExecutable(c.Proxy.Bin); err != nil {
		v.hostDependent("proxy-bin", "install linkerd2-proxy there or point --proxy-bin at it", "%v", err)
	}
	if err := checkExecutable(c.Workload); err != nil {
		v.hostDependent("workload", "point --workload at the workload's executable", "%v", err)
	}
	if c.WorkloadUser.Spec != "" && c.WorkloadUser.UID == 0 {
		v.warn("workload-user", "run the workload as a non-root user", "the workload runs as root; it is still intercepted but has more power than it needs")
	}
	if c.WorkloadUser.Spec != "" && c.WorkloadUser.UID == c.Proxy.User.UID {
		v.add("workload-user", "give the workload a uid other than the proxy's", "the workload would run as the proxy's uid %d, bypassing interception and able to fetch the proxy's SVID", c.WorkloadUser.UID)
	}
}

func (v *validator) readable(setting, path string) {
	f, err := os.Open(path)
	if err != nil {
		v.add(setting, "check the path and its permissions", "cannot read %s: %v", path, err)
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		v.add(setting, "point it at a file", "%s is a directory", path)
	}
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("%s does not exist", path)
		}
		return fmt.Errorf("cannot stat %s: %v", path, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory, not an executable", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

// IsDNS1123Label reports whether s is a valid Kubernetes DNS-1123 label.
func IsDNS1123Label(s string) bool { return len(s) <= 63 && dns1123Label.MatchString(s) }

// IsDNS1123Subdomain reports whether s is a valid DNS-1123 subdomain. A
// trailing dot (fully qualified) is accepted.
func IsDNS1123Subdomain(s string) bool {
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range splitDots(s) {
		if !IsDNS1123Label(l) {
			return false
		}
	}
	return true
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
