package kube

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// DetectIP returns the source address the host's default route would use:
// the address the cluster most likely reaches it on. It "connects" a UDP
// socket to a documentation address (RFC 5737 / RFC 3849), which only
// looks up the route: no packet is sent. IPv4 is preferred; IPv6 is used
// when the host has no IPv4 default route.
func DetectIP() (netip.Addr, error) {
	var errs []error
	for _, probe := range []struct{ network, addr string }{
		{"udp4", "192.0.2.1:9"},
		{"udp6", "[2001:db8::1]:9"},
	} {
		ip, err := sourceFor(probe.network, probe.addr)
		if err == nil {
			return ip, nil
		}
		errs = append(errs, err)
	}
	return netip.Addr{}, fmt.Errorf("detect the host's address from its default route: %w; give --workload-ip", errors.Join(errs...))
}

func sourceFor(network, addr string) (netip.Addr, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %w", network, err)
	}
	defer c.Close()
	ap, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: local address %s: %w", network, c.LocalAddr(), err)
	}
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("%s: the default route's source %s is not reachable from a cluster", network, ip)
	}
	return ip.WithZone(""), nil
}
