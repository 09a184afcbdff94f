package dns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
)

// ResolvConf describes the resolv.conf that makes a host resolve like a pod
// in Namespace: the forwarder as its only nameserver, the search list
// kubelet gives pods (<ns>.svc.<domain> svc.<domain> <domain>, then the
// host's own search domains) and ndots:5, so "web" and "web.other" find
// services the way they do inside the cluster.
// (kubelet: pkg/kubelet/network/dns/dns.go, generateSearchesForDNSClusterFirst.)
type ResolvConf struct {
	Nameserver    netip.Addr // the forwarder's address; it must listen on port 53
	Namespace     string
	ClusterDomain string
	// HostSearch are search domains kept from the host's file.
	HostSearch []string
	Ndots      int
}

// resolvMarker starts every file we write; it tells a leftover of ours
// (after a crash) from a file someone else wrote since.
const resolvMarker = "# written by meshexp dns; the original is in "

// BackupSuffix names the copy of the original resolv.conf kept beside it.
const BackupSuffix = ".meshexp-orig"

// Render returns the file's contents. backup names the original's copy in
// the header comment.
func (rc ResolvConf) Render(backup string) []byte {
	var b bytes.Buffer
	domain := strings.TrimSuffix(rc.ClusterDomain, ".")
	fmt.Fprintf(&b, "%s%s\n", resolvMarker, backup)
	fmt.Fprintf(&b, "nameserver %s\n", rc.Nameserver)
	search := []string{}
	if rc.Namespace != "" {
		search = append(search, rc.Namespace+".svc."+domain)
	}
	search = append(search, "svc."+domain, domain)
	for _, h := range rc.HostSearch {
		if h = strings.TrimSuffix(h, "."); h != "" && !containsFold(search, h) {
			search = append(search, h)
		}
	}
	fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	ndots := rc.Ndots
	if ndots == 0 {
		ndots = 5
	}
	fmt.Fprintf(&b, "options ndots:%d\n", ndots)
	return b.Bytes()
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// PointResolver makes path (normally /etc/resolv.conf) send the host's
// lookups to the forwarder. It keeps the original in path+BackupSuffix and
// returns restore, which puts it back and removes the copy. The file is
// rewritten in place, not renamed over, because in a container it is a bind
// mount that cannot be replaced. A copy left by a run that crashed is taken
// as the original when path still holds our file. The host's search
// domains are kept after the cluster's, as kubelet does for pods.
func PointResolver(path string, rc ResolvConf) (restore func() error, err error) {
	if !rc.Nameserver.IsValid() {
		return nil, errors.New("point resolver: no nameserver address")
	}
	backup := path + BackupSuffix
	cur, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("point resolver: read %s: %w", path, err)
	}
	existed := err == nil
	orig := cur
	if bytes.HasPrefix(cur, []byte(resolvMarker)) {
		prev, err := os.ReadFile(backup)
		if err != nil {
			return nil, fmt.Errorf("point resolver: %s was written by meshexp but its original %s cannot be read: %w (restore it by hand)", path, backup, err)
		}
		orig, existed = prev, true
	} else if existed {
		if err := os.WriteFile(backup, cur, 0o644); err != nil {
			return nil, fmt.Errorf("point resolver: keep the original of %s in %s: %w", path, backup, err)
		}
	}
	rc.HostSearch = append(searchDomains(orig), rc.HostSearch...)
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := writeInPlace(path, rc.Render(backup), mode); err != nil {
		if existed {
			os.Remove(backup)
		}
		return nil, fmt.Errorf("point resolver: write %s: %w", path, err)
	}
	return func() error {
		if !existed {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("restore resolver: remove %s: %w", path, err)
			}
			return nil
		}
		if err := writeInPlace(path, orig, mode); err != nil {
			return fmt.Errorf("restore resolver: write %s back: %w (the original is in %s)", path, err, backup)
		}
		if err := os.Remove(backup); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore resolver: remove %s: %w", backup, err)
		}
		return nil
	}, nil
}

// writeInPlace truncates and writes path without replacing its inode.
func writeInPlace(path string, data []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// searchDomains returns the domains of a resolv.conf's last search (or
// domain) line, the one the resolver uses.
func searchDomains(conf []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		if f[0] == "search" || f[0] == "domain" {
			out = append([]string(nil), f[1:]...)
		}
	}
	return out
}
