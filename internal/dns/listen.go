package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Listen opens the UDP socket and TCP listener for addr (IP:PORT) on the
// same port; with port 0 the kernel picks one that is free for both.
//
// It exists so that a process can bind port 53 while it still holds root
// or CAP_NET_BIND_SERVICE and hand the sockets to New through
// Options.PacketConns and Options.Listeners after dropping privileges.
func Listen(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %q: want IP:PORT", addr)
	}
	var lc net.ListenConfig
	// A port picked by the kernel for UDP may be taken for TCP; try again.
	for range 20 {
		pc, err := lc.ListenPacket(ctx, "udp", ap.String())
		if err != nil {
			return nil, nil, fmt.Errorf("listen on udp %s: %w%s", ap, err, privilegeHint(ap, err))
		}
		tcpAddr := netip.AddrPortFrom(ap.Addr(), uint16(pc.LocalAddr().(*net.UDPAddr).Port))
		ln, err := lc.Listen(ctx, "tcp", tcpAddr.String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if ap.Port() != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("listen on tcp %s: %w%s", tcpAddr, err, privilegeHint(ap, err))
		}
	}
	return nil, nil, fmt.Errorf("listen on %s: found no port free for both UDP and TCP", ap)
}

func privilegeHint(ap netip.AddrPort, err error) string {
	if errors.Is(err, syscall.EACCES) && ap.Port() < 1024 {
		return " (ports below 1024 need root or CAP_NET_BIND_SERVICE; or lower net.ipv4.ip_unprivileged_port_start)"
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return " (another DNS server, e.g. systemd-resolved or dnsmasq, may hold it)"
	}
	return ""
}
