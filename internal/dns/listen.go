package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
)

// Listen opens udpSockets UDP sockets (0: one per CPU; always one where
// SO_REUSEPORT is not used) and a TCP listener for addr (IP:PORT), all on
// the same port; with port 0 the kernel picks one free for both protocols.
//
// It exists so that a process can bind port 53 while it still holds root
// or CAP_NET_BIND_SERVICE and hand the sockets to New through
// Options.PacketConns and Options.Listeners after dropping privileges.
func Listen(ctx context.Context, addr string, udpSockets int) ([]net.PacketConn, net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %q: want IP:PORT", addr)
	}
	if udpSockets <= 0 {
		udpSockets = runtime.GOMAXPROCS(0)
	}
	if !reusePortSupported {
		udpSockets = 1
	}
	var ulc, tlc net.ListenConfig
	if udpSockets > 1 {
		ulc.Control = reusePort
	}
	closeAll := func(pcs []net.PacketConn) {
		for _, pc := range pcs {
			pc.Close()
		}
	}
	// A port picked by the kernel for UDP may be taken for TCP; try again.
	for range 20 {
		pc, err := ulc.ListenPacket(ctx, "udp", ap.String())
		if err != nil {
			return nil, nil, fmt.Errorf("listen on udp %s: %w%s", ap, err, privilegeHint(ap, err))
		}
		bound := netip.AddrPortFrom(ap.Addr(), uint16(pc.LocalAddr().(*net.UDPAddr).Port))
		pcs := []net.PacketConn{pc}
		ln, err := tlc.Listen(ctx, "tcp", bound.String())
		if err != nil {
			closeAll(pcs)
			if ap.Port() != 0 || !errors.Is(err, syscall.EADDRINUSE) {
				return nil, nil, fmt.Errorf("listen on tcp %s: %w%s", bound, err, privilegeHint(ap, err))
			}
			continue
		}
		for len(pcs) < udpSockets {
			pc, err := ulc.ListenPacket(ctx, "udp", bound.String())
			if err != nil {
				closeAll(pcs)
				ln.Close()
				return nil, nil, fmt.Errorf("listen on udp %s (socket %d of %d): %w", bound, len(pcs)+1, udpSockets, err)
			}
			pcs = append(pcs, pc)
		}
		return pcs, ln, nil
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
