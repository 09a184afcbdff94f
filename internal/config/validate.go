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
	if s&(ScopeWorkload|ScopeDNS) != 0 {
		v.names()
	}
	if s&(ScopeProxy|ScopeSPIRE) != 0 {
		v.trustAnchor()
	}
	if s&(ScopeProxy|ScopeIntercept|ScopeKubeSpec|ScopeDNS) != 0 {
		v.ports()
	}
	if s&(ScopeProxy|ScopeIntercept) != 0 {
		v.proxyUser()
	}
	if s&ScopeIntercept != 0 {
		v.interception()
	}
	if s&ScopeProxy != 0 {
		v.controlPlane()
	}
	if s&ScopeSPIRE != 0 {
		v.spire()
		v.spirePaths()
		v.spireText()
	}
	if s&ScopeRun != 0 {
		v.run()
	}
	if s&ScopeRegister != 0 {
		v.fleet()
	}
	if s&ScopeController != 0 {
		v.controller()
	}
	if s&ScopeDNS != 0 && (c.DNS.Enabled || s&ScopeDNSServer != 0) && len(c.DNS.ClusterDNS) == 0 {
		v.add("cluster-dns", "give kube-dns's address as the cluster sees it, e.g. a node IP and kube-dns's NodePort", "the DNS forwarder needs at least one cluster DNS server")
	}
	// Checks of the host itself (capabilities, a root workload) come last:
	// host_linux.go, host_other.go, workload_root.go.
	v.host()
	return v.probs
}

type validator struct {
	c     *Config
	opts  ValidateOptions
	probs Problems
}

func (v *validator) add(setting, fix, format string, args ...any) {
	v.probs = append(v.probs, Problem{Setting: setting, Input: v.c.input(setting), Message: fmt.Sprintf(format, args...), Fix: fix})
}

func (v *validator) warn(setting, fix, format string, args ...any) {
	v.probs = append(v.probs, Problem{Setting: setting, Input: v.c.input(setting), Message: fmt.Sprintf(format, args...), Fix: fix, Warning: true})
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
				"%s is not a valid Kubernetes name (DNS-1123 label)", quote(n.value))
		}
	}
	if !IsDNS1123Subdomain(c.ClusterDomain) || strings.HasSuffix(c.ClusterDomain, ".") {
		v.add("cluster-domain", "use a DNS name such as cluster.local", "%s is not a valid DNS domain", quote(c.ClusterDomain))
	}
	if v.opts.Scope&ScopeWorkload == 0 {
		return
	}
	if c.NodeName != "" && !IsDNS1123Subdomain(c.NodeName) {
		v.add("node-name", "use lowercase letters, digits, '-' and '.', at most 253 characters", "%s is not a valid node name (DNS-1123 subdomain)", quote(c.NodeName))
	}
	if !trustDomain.MatchString(c.TrustDomain) || len(c.TrustDomain) > 255 {
		v.add("trust-domain", "use lowercase letters, digits, '.', '-' and '_' (e.g. root.linkerd.cluster.local)", "%s is not a valid SPIFFE trust domain", quote(c.TrustDomain))
	}
}

func (v *validator) trustAnchor() {
	c := v.c
	if c.TrustAnchorDir == "" {
		v.add("trust-anchor-dir", "point it at the directory holding ca.crt", "is empty")
		return
	}
	if !filepath.IsAbs(c.TrustAnchorDir) {
		v.add("trust-anchor-dir", "use an absolute path, e.g. /opt/spire/certs", "%s is a relative path; SPIRE and the proxy would read it from other directories", quote(c.TrustAnchorDir))
		return
	}
	keyPath := ""
	if c.SPIRE.Mode == SPIREEmbedded && c.SPIRE.UpstreamCert == "" && v.opts.Scope&ScopeSPIRE != 0 {
		// Demo compatibility: the embedded server signs with the root key.
		keyPath = c.TrustAnchorKeyPath()
	}
	anchorInput := func(file string) string { return fmt.Sprintf("%s (from %s)", file, v.c.input("trust-anchor-dir")) }
	if !v.plainFile("trust-anchor-dir", anchorInput(c.TrustAnchorPath()), c.TrustAnchorPath(), false) {
		return
	}
	if keyPath != "" && !v.plainFile("trust-anchor-dir", anchorInput(keyPath), keyPath, true) {
		keyPath = ""
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
	if ns := v.c.ControlPlaneNamespace; !IsDNS1123Label(ns) {
		v.add("control-plane-namespace", "use the namespace Linkerd is installed in, e.g. linkerd", "%s is not a valid namespace name (DNS-1123 label)", quote(ns))
		return // the addresses and identities below are made from it
	}
	for _, s := range []struct{ setting, value string }{{"destination-addr", v.c.DestinationAddr}, {"policy-addr", v.c.PolicyAddr}} {
		host, port, err := net.SplitHostPort(s.value)
		if err != nil || host == "" {
			v.add(s.setting, "use host:port, e.g. linkerd-dst-headless.linkerd.svc.cluster.local.:8086", "%s is not host:port", quote(s.value))
			continue
		}
		if _, err := ParsePort(port); err != nil {
			v.add(s.setting, "use a port from 1 to 65535", "%s: %v", quote(s.value), err)
		}
	}
	for _, s := range []struct{ setting, value string }{{"destination-identity", v.c.DestinationIdentity}, {"policy-identity", v.c.PolicyIdentity}} {
		if !IsDNS1123Subdomain(s.value) {
			v.add(s.setting, "use the control plane's identity name, e.g. linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local", "%s is not a DNS name", quote(s.value))
		}
	}
}

func (v *validator) spire() {
	s := v.c.SPIRE
	if len(s.SocketPath) > maxSocketPath {
		v.add("spire-socket", "use a shorter path", "socket path is %d bytes; Unix sockets allow at most %d", len(s.SocketPath), maxSocketPath)
	}
	if !filepath.IsAbs(s.SocketPath) {
		v.add("spire-socket", "use an absolute path", "%s is not an absolute path", quote(s.SocketPath))
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
			v.add("spire-data-dir", "use a shorter directory", "admin socket paths under %s would exceed %d bytes", quote(s.DataDir), maxSocketPath)
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
			if data := v.readable("spire-join-token-file", s.JoinTokenFile); data != nil && strings.TrimSpace(string(data)) == "" {
				v.add("spire-join-token-file", "write the join token the SPIRE server created (spire-server token generate) into it", "%s is empty", s.JoinTokenFile)
			}
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
				v.x509Pop()
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
	if !v.plainFile("spire-upstream-cert", v.c.input("spire-upstream-cert"), s.UpstreamCert, false) ||
		!v.plainFile("spire-upstream-key", v.c.input("spire-upstream-key"), s.UpstreamKey, true) {
		return
	}
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
	data, err := ReadRegularFile(bundlePath)
	if err != nil {
		v.add("spire-upstream-bundle", "point it at the PEM roots above the upstream CA", "%v", err)
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
	v.executable("proxy-bin", c.Proxy.Bin, c.Proxy.User, "proxy-uid", "install linkerd2-proxy there or point --proxy-bin at it")
	v.executable("workload", c.Workload, c.WorkloadUser, "workload-user", "point --workload at the workload's executable")
	if c.WorkloadUser.Spec != "" && c.WorkloadUser.UID == c.Proxy.User.UID {
		v.add("workload-user", "give the workload a uid other than the proxy's", "the workload would run as the proxy's uid %d, bypassing interception and able to fetch the proxy's SVID", c.WorkloadUser.UID)
	}
}

// readable checks that a file meshexp reads is a readable regular file,
// and returns its content (nil when it is not).
func (v *validator) readable(setting, path string) []byte {
	data, err := ReadRegularFile(path)
	if err != nil {
		v.add(setting, "point it at a readable regular file", "%v", err)
		return nil
	}
	return data
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
