package config

import (
	"context"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The checks here read the host (files, users, DNS) but never change it.
// They used to run only when identity started, naming Go fields; here they
// run with the rest, before anything changes, naming the settings.

// ports reports two listeners on one port: the proxy's four, the
// workload's own (--port), the DNS forwarder's and an embedded SPIRE
// server's. Each message blames the setting that was given rather than
// the default it collides with.
func (v *validator) ports() {
	c, s := v.c, v.opts.Scope
	type use struct {
		setting, what string
		port          uint16
	}
	var uses []use
	if s&(ScopeProxy|ScopeIntercept) != 0 {
		p := c.Proxy
		uses = append(uses, use{"inbound-port", "inbound-port", p.InboundPort}, use{"outbound-port", "outbound-port", p.OutboundPort},
			use{"admin-port", "admin-port", p.AdminPort}, use{"control-port", "control-port", p.ControlPort})
	}
	if s&ScopeKubeSpec != 0 {
		for _, item := range c.Register.Ports {
			name, rest, ok := strings.Cut(item, ":")
			num, proto, _ := strings.Cut(rest, "/")
			if !ok || (proto != "" && !strings.EqualFold(proto, "TCP")) {
				continue // UDP, or malformed (the ExternalWorkload's checks say so)
			}
			if n, err := ParsePort(num); err == nil {
				uses = append(uses, use{"port", fmt.Sprintf("workload's port %s (--port)", name), n})
			}
		}
	}
	if s&ScopeDNS != 0 && (c.DNS.Enabled || s&ScopeDNSServer != 0) {
		if ap, err := netip.ParseAddrPort(c.DNS.Listen); err == nil {
			uses = append(uses, use{"dns-listen", "DNS forwarder's port (--dns-listen)", ap.Port()})
		}
	}
	if s&ScopeSPIRE != 0 && c.SPIRE.Mode == SPIREEmbedded {
		uses = append(uses, use{"spire-server-port", "embedded SPIRE server's port (--spire-server-port)", c.SPIRE.ServerPort})
	}
	seen := map[uint16]use{}
	for _, u := range uses {
		if u.port == 0 {
			continue // already reported by the parser
		}
		other, dup := seen[u.port]
		if !dup {
			seen[u.port] = u
			continue
		}
		blame, with := u, other
		if c.isDefault(u.setting) && !c.isDefault(other.setting) {
			blame, with = other, u
		}
		v.add(blame.setting, "give each listener its own port", "port %d is also the %s", u.port, with.what)
	}
}

func (c *Config) isDefault(setting string) bool {
	o, ok := c.origins[setting]
	return !ok || o.kind == fromDefault
}

// interception refuses an inbound port list that the skip list empties.
func (v *validator) interception() {
	in, skip := v.c.Intercept.InboundPorts, v.c.Intercept.SkipInboundPorts
	if len(in) == 0 {
		return
	}
	skipped := func(p uint16) bool {
		for _, r := range skip {
			if p >= r.From && p <= r.To {
				return true
			}
		}
		return false
	}
	for _, r := range in {
		for p := uint32(r.From); p <= uint32(r.To); p++ {
			if !skipped(uint16(p)) {
				return
			}
		}
	}
	v.add("inbound-ports", "remove those ports from --skip-inbound-ports, or list the ports the proxy should take",
		"every port in it is also in --skip-inbound-ports, so no inbound connection would reach the proxy")
}

// spirePaths checks the directories and names identity will use.
func (v *validator) spirePaths() {
	c, s := v.c, v.c.SPIRE
	switch {
	case s.Mode == SPIREExisting:
		v.socketReachable() // an agent's socket the proxy must reach as well
	case s.DataDir != "" && filepath.IsAbs(s.DataDir) && within(s.SocketPath, s.DataDir):
		v.dataDir()
		v.add("spire-socket", "put the socket outside the data dir, e.g. the default /run/meshexp/spire/public/api.sock",
			"%s is inside --spire-data-dir %s, which meshexp keeps at mode 0700: the proxy (uid %d) could never reach it", s.SocketPath, s.DataDir, c.Proxy.User.UID)
	default:
		v.dataDir()
		v.socketReachable()
	}
	if s.Mode == SPIREExternal && s.ServerAddress != "" {
		v.serverAddress()
	}
}

func (v *validator) dataDir() {
	d := v.c.SPIRE.DataDir
	const fix = "use an absolute directory of meshexp's own, such as /var/lib/meshexp/spire"
	switch {
	case d == "":
		v.add("spire-data-dir", fix, "is empty")
		return
	case !filepath.IsAbs(d):
		v.add("spire-data-dir", fix, "%s is a relative path", quote(d))
		return
	case filepath.Clean(d) == "/":
		v.add("spire-data-dir", fix, "is the root directory")
		return
	}
	for p := filepath.Clean(d); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				v.add("spire-data-dir", fix, "%s is %s, not a directory", p, describeMode(fi.Mode()))
			}
			return
		}
		if p == filepath.Dir(p) {
			return
		}
	}
}

// socketReachable walks the socket's existing directories: each must let
// the proxy uid through. (SPIRE makes its socket 0777; an existing agent's
// socket must be writable by the proxy too.)
func (v *validator) socketReachable() {
	sock, u := v.c.SPIRE.SocketPath, v.c.Proxy.User
	if !filepath.IsAbs(sock) || u.Spec == "" {
		return
	}
	if fi, err := os.Stat(sock); err == nil && fi.Mode()&fs.ModeSocket != 0 && !v.may(fi, u, 2) {
		v.add("spire-socket", "let the proxy's uid or gid write the socket (SPIRE's own agent makes it 0777)",
			"the proxy uid %d (--proxy-uid) may not connect to %s (%s)", u.UID, sock, describeOwner(fi))
	}
	for d := filepath.Dir(sock); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				v.add("spire-socket", "choose a socket path under a directory", "%s is %s, not a directory", d, describeMode(fi.Mode()))
				return
			}
			if !v.may(fi, u, 1) {
				v.add("spire-socket", fmt.Sprintf("chmod o+x %s, or choose another socket path", d),
					"directory %s (%s) does not let the proxy uid %d (--proxy-uid) reach the socket", d, describeOwner(fi), u.UID)
				return
			}
		}
		if d == filepath.Dir(d) {
			return
		}
	}
}

// serverAddress refuses host:port and names that do not resolve.
func (v *validator) serverAddress() {
	addr := v.c.SPIRE.ServerAddress
	if a, err := netip.ParseAddr(addr); err == nil {
		if a.Zone() != "" {
			v.add("spire-server-address", "leave the zone out", "%s has an IPv6 zone", quote(addr))
		}
		return
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		v.add("spire-server-address", fmt.Sprintf("give the host alone and the port separately: --spire-server-address %s --spire-server-port %s", host, port),
			"%s includes a port", quote(addr))
		return
	}
	if !IsDNS1123Subdomain(strings.ToLower(addr)) {
		v.add("spire-server-address", "give the SPIRE server's IP address or host name, e.g. spire.example.com", "%s is not an IP address or a host name", quote(addr))
		return
	}
	if v.c.DNS.Enabled && strings.HasSuffix(strings.TrimSuffix(addr, "."), ".svc."+v.c.ClusterDomain) {
		return // a cluster name: resolved through meshexp's own forwarder once it runs
	}
	fix := "check the name, or this host's DNS servers (/etc/resolv.conf); or give the server's IP address"
	if name := strings.ToLower(strings.TrimSuffix(addr, ".")); name == "invalid" || strings.HasSuffix(name, ".invalid") {
		// RFC 6761 §6.4: resolvers answer .invalid names negatively at
		// once; no query need leave the host.
		v.add("spire-server-address", fix, "the DNS lookup of %s failed: no such host (.invalid names never resolve, RFC 6761)", addr)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := net.DefaultResolver.LookupHost(ctx, addr); err != nil {
		msg := err.Error()
		if de, ok := err.(*net.DNSError); ok {
			msg = de.Err
		}
		// A dry run on a laptop or in an image build cannot reach the
		// host's DNS: there it is a warning.
		v.hostDependent("spire-server-address", fix,
			"the DNS lookup of %s failed: %s", addr, msg)
	}
}

// plainFile refuses a file that is there but is not a regular file (a
// FIFO would block the read forever) and an encrypted key. A missing file
// or a directory is left to the certificate checks, which say which. It
// reports whether the file may be read.
func (v *validator) plainFile(setting, input, path string, key bool) bool {
	msg, fix := FileProblem(path, key)
	if msg == "" {
		return true
	}
	v.probs = append(v.probs, Problem{Setting: setting, Input: input, Message: msg, Fix: fix})
	return false
}

// FileProblem says why path must not be read as a PEM file: it is there
// but is not a regular file (reading a FIFO would block forever), or, for
// a key, it is encrypted. A missing file or a directory gives "": the
// certificate checks name those.
func FileProblem(path string, key bool) (msg, fix string) {
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() {
		return "", ""
	}
	if !fi.Mode().IsRegular() {
		return fmt.Sprintf("is %s, not a regular file", describeMode(fi.Mode())), "point the setting at the PEM file itself"
	}
	if !key {
		return "", ""
	}
	data, err := ReadRegularFile(path)
	if err != nil || !encryptedKey(data) {
		return "", ""
	}
	return filepath.Base(path) + " is encrypted; meshexp needs an unencrypted PKCS#8 or SEC1 (EC PRIVATE KEY) key",
		fmt.Sprintf("decrypt it with `openssl pkey -in %s -out %s.plain` (it asks for the passphrase), keep the plain copy mode 0600, and use it", path, path)
}

// encryptedKey reports a PKCS#8 ENCRYPTED PRIVATE KEY or a legacy PEM key
// with "Proc-Type: 4,ENCRYPTED".
func encryptedKey(data []byte) bool {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return true
		}
	}
}

// executable checks that u can run path: the file is there and
// executable for u, and every directory above it lets u through.
func (v *validator) executable(setting, path string, u User, userSetting, fix string) {
	fi, err := os.Stat(path)
	switch {
	case err != nil && os.IsNotExist(err):
		v.hostDependent(setting, fix, "%s does not exist", path)
		return
	case err != nil:
		v.hostDependent(setting, fix, "cannot stat %s: %v", path, unwrapPathErr(err))
		return
	case fi.IsDir():
		v.hostDependent(setting, fix, "%s is a directory, not an executable", path)
		return
	case !fi.Mode().IsRegular():
		v.add(setting, fix, "%s is %s, not an executable", path, describeMode(fi.Mode()))
		return
	case fi.Mode().Perm()&0o111 == 0:
		v.hostDependent(setting, "chmod +x "+path, "%s is not executable", path)
		return
	}
	if u.Spec == "" || !filepath.IsAbs(path) {
		return
	}
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if dfi, err := os.Stat(d); err == nil && !v.may(dfi, u, 1) {
			v.add(setting, fmt.Sprintf("chmod o+x %s, or choose --%s that may enter it", d, userSetting),
				"uid %d (--%s) cannot reach %s: directory %s (%s) does not let it through", u.UID, userSetting, path, d, describeOwner(dfi))
			return
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	if !v.may(fi, u, 1) {
		v.add(setting, fmt.Sprintf("chmod o+x %s, or choose --%s that may run it", path, userSetting),
			"uid %d (--%s) cannot execute %s (%s)", u.UID, userSetting, path, describeOwner(fi))
	}
}

// may reports whether u has the permission bit (4 read, 2 write, 1
// execute/search) on fi, by owner, group or other, as the kernel decides
// for the proxy and the workload: they run with their uid and gid alone
// (bootstrap sets no supplementary groups). Root passes directories and
// needs one execute bit on files.
func (v *validator) may(fi fs.FileInfo, u User, bit fs.FileMode) bool {
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	if u.UID == 0 {
		return fi.IsDir() || bit != 1 || perm&0o111 != 0
	}
	switch {
	case st.Uid == u.UID:
		return perm&(bit<<6) != 0
	case st.Gid == u.GID:
		return perm&(bit<<3) != 0
	}
	return perm&bit != 0
}

func describeOwner(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("mode %04o, owner %d:%d", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	return fmt.Sprintf("mode %04o", fi.Mode().Perm())
}

func within(path, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
