package spire

import (
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshexp/meshexp/internal/trust"
)

// Validate checks o without changing anything on the host: first what can
// be told from the values alone; if they are sound, the files they name
// (readable, parseable, a key that matches its certificate, an upstream CA
// that chains to the trust anchor, socket directories the proxy uid can
// enter) and the SPIRE binaries the mode needs. It returns every problem of
// the failing stage at once, each an *OptionError.
func (o Options) Validate() error {
	o = o.withDefaults()
	errs := o.validateValues()
	if len(errs) == 0 {
		errs = append(errs, o.validateFiles()...)
	}
	return errors.Join(errs...)
}

// validateValues checks what the values alone can tell; RenderConfigs
// needs no more than this.
func (o Options) validateValues() []error {
	var errs []error
	bad := func(opt, val, fix, format string, args ...any) {
		errs = append(errs, &OptionError{Option: opt, Value: val, Err: fmt.Errorf(format, args...), Fix: fix})
	}
	switch o.Mode {
	case ModeEmbedded, ModeExternal, ModeExisting:
	default:
		bad("Mode", string(o.Mode), "use embedded, external or existing", "unknown SPIRE mode")
		return errs
	}
	td, err := spiffeid.TrustDomainFromString(o.TrustDomain)
	if err != nil {
		bad("TrustDomain", o.TrustDomain, "use a DNS-like name such as root.linkerd.cluster.local", "not a SPIFFE trust domain: %v", err)
	} else if o.WorkloadName == "" {
		bad("WorkloadName", "", "set the workload's name (WORKLOAD_NAME)", "empty: the SPIFFE ID would have no path")
	} else if _, err := spiffeid.FromSegments(td, o.WorkloadName); err != nil {
		bad("WorkloadName", o.WorkloadName, "use letters, digits, '.', '-' and '_' only", "not usable as a SPIFFE ID path segment: %v", err)
	}
	if o.TrustAnchorPath == "" {
		bad("TrustAnchorPath", "", "point it at the mesh's trust anchor (ca.crt)", "empty: SVIDs must be verified against the trust anchor")
	}
	if o.Timeout < 0 {
		bad("Timeout", o.Timeout.String(), "use a positive duration such as 60s", "negative")
	}
	if o.StopGrace < 0 {
		bad("StopGrace", o.StopGrace.String(), "use a positive duration such as 5s", "negative")
	}
	errs = append(errs, o.validateTTLs()...)
	paths := map[string]string{"SocketPath": o.SocketPath, "TrustAnchorPath": o.TrustAnchorPath}
	if o.Mode != ModeExisting {
		paths["DataDir"] = o.DataDir
		paths["BinDir"] = o.BinDir
		paths["TrustBundlePath"] = o.TrustBundlePath
	}
	switch o.Mode {
	case ModeEmbedded:
		paths["UpstreamCertPath"] = o.UpstreamCertPath
		paths["UpstreamKeyPath"] = o.UpstreamKeyPath
		paths["UpstreamBundlePath"] = o.UpstreamBundlePath
		if o.UpstreamKeyPath == "" {
			bad("UpstreamKeyPath", "", "point it at the key of the trust anchor (ca.key) or of an intermediate (meshexp certs intermediate)", "empty: the embedded SPIRE server needs a CA key to sign with")
		}
		if _, err := netip.ParseAddr(o.ServerBindAddress); err != nil {
			bad("ServerBindAddress", o.ServerBindAddress, "use an IP address such as 127.0.0.1", "not an IP address")
		}
	case ModeExternal:
		paths["JoinTokenFile"] = o.JoinTokenFile
		paths["X509PopCertPath"] = o.X509PopCertPath
		paths["X509PopKeyPath"] = o.X509PopKeyPath
		if o.ServerAddress == "" {
			bad("ServerAddress", "", "set the remote SPIRE server's host name or IP address", "empty: external mode joins a remote SPIRE server")
		} else if strings.ContainsAny(o.ServerAddress, ":/ ") && !isIPv6(o.ServerAddress) {
			bad("ServerAddress", o.ServerAddress, "give the host alone and the port in ServerPort", "not a host name or IP address")
		}
		methods := 0
		for _, set := range []bool{o.JoinToken != "", o.JoinTokenFile != "", o.X509PopCertPath != "" || o.X509PopKeyPath != ""} {
			if set {
				methods++
			}
		}
		switch {
		case methods == 0:
			bad("JoinToken", "", "give a join token (value or file) or an x509pop certificate and key", "no node attestation configured for the agent")
		case methods > 1:
			bad("JoinToken", "", "keep exactly one of JoinToken, JoinTokenFile, X509PopCertPath+X509PopKeyPath", "more than one node attestation method configured")
		case o.X509PopCertPath != "" && o.X509PopKeyPath == "":
			bad("X509PopKeyPath", "", "set the key of the x509pop certificate", "empty while X509PopCertPath is set")
		case o.X509PopKeyPath != "" && o.X509PopCertPath == "":
			bad("X509PopCertPath", "", "set the x509pop certificate", "empty while X509PopKeyPath is set")
		}
		if strings.ContainsAny(o.JoinToken, "\x00\n\r\" \\") {
			// Never echo the token itself.
			bad("JoinToken", "", "pass the token exactly as the SPIRE server printed it", "contains whitespace, quotes or control characters")
		}
	}
	for _, name := range sortedKeys(paths) {
		p := paths[name]
		if p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			bad(name, p, "use an absolute path", "relative path")
		}
		if strings.ContainsAny(p, "\x00\n\r\"\\") {
			bad(name, p, "use a path without quotes, backslashes or control characters", "cannot be written into a SPIRE config")
		}
	}
	if o.Mode != ModeExisting && filepath.Clean(o.DataDir) == "/" {
		bad("DataDir", o.DataDir, "use a directory of its own such as /var/lib/meshexp/spire", "the root directory")
	}
	if n := len(o.SocketPath); n > maxSocketPath {
		bad("SocketPath", o.SocketPath, "choose a shorter path", "%d bytes long; a unix socket path may be at most %d", n, maxSocketPath)
	}
	if s := o.layout().serverSocket; o.Mode == ModeEmbedded && len(s) > maxSocketPath {
		bad("DataDir", o.DataDir, "choose a shorter directory", "the server's admin socket %s would be %d bytes long; a unix socket path may be at most %d", s, len(s), maxSocketPath)
	}
	if o.Mode != ModeExisting {
		l := o.layout()
		if within(o.SocketPath, l.serverDir) || within(o.SocketPath, l.agentDir) {
			bad("SocketPath", o.SocketPath, "put the Workload API socket outside DataDir, e.g. /run/meshexp/spire/public/api.sock", "inside SPIRE's private state directory %s, which the proxy uid cannot enter", o.DataDir)
		}
	}
	return errs
}

// validateFiles reads the files o names; it never writes.
func (o Options) validateFiles() []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	anchors, err := readCerts("TrustAnchorPath", o.TrustAnchorPath)
	add(err)
	switch o.Mode {
	case ModeEmbedded:
		add(o.checkUpstream(anchors))
		_, err := o.binary("spire-server")
		add(err)
		_, err = o.binary("spire-agent")
		add(err)
	case ModeExternal:
		if o.TrustBundlePath != o.TrustAnchorPath {
			_, err := readCerts("TrustBundlePath", o.TrustBundlePath)
			add(err)
		}
		if o.JoinTokenFile != "" {
			add(checkTokenFile(o.JoinTokenFile))
		}
		if o.X509PopCertPath != "" && o.X509PopKeyPath != "" {
			if _, err := trust.LoadKeyPair(o.X509PopCertPath, o.X509PopKeyPath); err != nil {
				add(&OptionError{Option: "X509PopCertPath", Value: o.X509PopCertPath, Err: err, Fix: "give the agent's x509pop certificate and its matching key"})
			}
		}
		_, err := o.binary("spire-agent")
		add(err)
	}
	if o.Mode != ModeExisting {
		// An existing agent's directories are its operator's: the proxy may
		// reach them through a supplementary group this check cannot see.
		add(o.checkSocketDirs())
		errs = append(errs, o.hostPaths()...)
	}
	return errs
}

// CheckHostPaths checks, without changing anything, that what is on the
// host where SPIRE's files go may be used: DataDir is a directory whose
// server/ and agent/ (if any) meshexp made; the Workload API socket's
// directory belongs to meshexp's user; at the socket paths there is nothing,
// or a stale socket meshexp's own SPIRE made. Every problem is an
// *OptionError, for the one validation pass before anything changes.
// Start checks the same again.
func (o Options) CheckHostPaths() []error {
	o = o.withDefaults()
	if o.Mode == ModeExisting || len(o.validateValues()) > 0 {
		return nil
	}
	return o.hostPaths()
}

func (o Options) hostPaths() []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(checkDataDir(o.DataDir))
	rec := o.readState()
	add(o.checkStateDirs(rec))
	add(checkSocketDirOwner(o.SocketPath))
	add(checkSocketPath("SocketPath", o.SocketPath, rec != nil && rec.Socket == o.SocketPath))
	if o.Mode == ModeEmbedded {
		add(checkSocketPath("DataDir", o.layout().serverSocket, true))
	}
	return errs
}

// checkUpstream makes sure the CA the embedded server signs with is usable
// by SPIRE's disk UpstreamAuthority and chains to the trust anchor, so a
// wrong pair of files fails here, not as SVIDs the mesh rejects.
func (o Options) checkUpstream(anchors []*x509.Certificate) error {
	kp, err := trust.LoadKeyPair(o.UpstreamCertPath, o.UpstreamKeyPath)
	if err != nil {
		return &OptionError{Option: "UpstreamKeyPath", Value: o.UpstreamKeyPath, Err: err, Fix: "give the CA certificate and its own key"}
	}
	if !kp.Cert.IsCA {
		return &OptionError{Option: "UpstreamCertPath", Value: o.UpstreamCertPath, Err: errors.New("not a CA certificate"), Fix: "use the trust anchor or an intermediate made with meshexp certs intermediate"}
	}
	chain, _ := trust.ParseCertificates(kp.CertPEM)
	if o.UpstreamBundlePath == "" && len(chain) != 1 {
		// SPIRE's disk plugin: "with no bundle_file_path configured only
		// self-signed CAs are supported" (pkg/server/plugin/upstreamauthority/disk).
		return &OptionError{Option: "UpstreamCertPath", Value: o.UpstreamCertPath, Err: fmt.Errorf("holds %d certificates; signing with the trust anchor itself needs exactly one", len(chain)), Fix: "set UpstreamBundlePath to the roots, or keep one certificate in the file"}
	}
	var bundle []*x509.Certificate
	if o.UpstreamBundlePath != "" {
		if bundle, err = readCerts("UpstreamBundlePath", o.UpstreamBundlePath); err != nil {
			return err
		}
	}
	if anchors == nil {
		return nil // already reported
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range anchors {
		roots.AddCert(c)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	for _, c := range bundle {
		if !isSelfSigned(c) {
			inter.AddCert(c)
		}
	}
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return &OptionError{Option: "UpstreamCertPath", Value: o.UpstreamCertPath, Err: fmt.Errorf("does not chain to the trust anchor %s: %w", o.TrustAnchorPath, err), Fix: "sign the intermediate with the mesh's trust anchor (meshexp certs intermediate), or use the trust anchor itself"}
	}
	return nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

func readCerts(option, path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &OptionError{Option: option, Value: path, Err: fmt.Errorf("cannot read: %w", unwrapPath(err)), Fix: "point it at a readable PEM certificate file"}
	}
	certs, err := trust.ParseCertificates(data)
	if err != nil {
		return nil, &OptionError{Option: option, Value: path, Err: err, Fix: "point it at a PEM certificate file"}
	}
	return certs, nil
}

func checkTokenFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &OptionError{Option: "JoinTokenFile", Value: path, Err: fmt.Errorf("cannot read: %w", unwrapPath(err)), Fix: "write the join token the SPIRE server created into it"}
	}
	if strings.TrimSpace(string(data)) == "" {
		return &OptionError{Option: "JoinTokenFile", Value: path, Err: errors.New("empty"), Fix: "write the join token the SPIRE server created into it"}
	}
	return nil
}

func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil // created at start
	case err != nil:
		return &OptionError{Option: "DataDir", Value: dir, Err: unwrapPath(err), Fix: "choose a directory meshexp may create and write"}
	case !fi.IsDir():
		return &OptionError{Option: "DataDir", Value: dir, Err: errors.New("not a directory"), Fix: "choose a directory meshexp may create and write"}
	}
	return nil
}

// Binary finds a SPIRE executable (spire-server, spire-agent) the way
// Start will: BinDir, else $PATH, else /opt/spire/bin.
func (o Options) Binary(name string) (string, error) { return o.withDefaults().binary(name) }

// binary finds a SPIRE executable: BinDir, else $PATH, else /opt/spire/bin.
func (o Options) binary(name string) (string, error) {
	const fix = "run hack/install-spire.sh and pass the directory it prints with --spire-bin-dir or " + BinDirEnv
	if o.BinDir != "" {
		p := filepath.Join(o.BinDir, name)
		if err := isExecutable(p); err != nil {
			return "", &OptionError{Option: "BinDir", Value: o.BinDir, Err: fmt.Errorf("no usable %s in it: %w", name, err), Fix: fix}
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join(DefaultBinDir, name)
	if err := isExecutable(p); err != nil {
		return "", &OptionError{Option: "BinDir", Err: fmt.Errorf("%s is neither in $PATH nor in %s", name, DefaultBinDir), Fix: fix}
	}
	return p, nil
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return unwrapPath(err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// unwrapPath drops the *PathError's own path, which the messages here
// already name.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6()
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
