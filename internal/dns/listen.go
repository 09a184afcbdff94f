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
// same port; with port 0 the kernel picks one free for both protocols.
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
		bound := netip.AddrPortFrom(ap.Addr(), uint16(pc.LocalAddr().(*net.UDPAddr).Port))
		ln, err := lc.Listen(ctx, "tcp", bound.String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if ap.Port() != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("listen on tcp %s: %w%s", bound, err, privilegeHint(ap, err))
		}
	}
	return nil, nil, fmt.Errorf("listen on %s: found no port free for both UDP and TCP", ap)
}

// readerConns returns n descriptors of the UDP socket pc for n reader
// goroutines: pc itself and n-1 duplicates. Each descriptor has its own
// lock and poller registration in the Go runtime, so the readers do not
// queue behind each other, while the kernel keeps one receive queue for
// the socket: a query waits for the first free reader, in arrival order,
// and one reader being descheduled does not hold up the queries behind it
// (with SO_REUSEPORT each socket would have a queue, and a reader, of its
// own). Other PacketConns get one reader.
func readerConns(pc net.PacketConn, n int) ([]net.PacketConn, error) {
	conns := []net.PacketConn{pc}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return conns, nil
	}
	for len(conns) < n {
		f, err := uc.File()
		if err != nil {
			closeConns(conns[1:])
			return nil, fmt.Errorf("duplicate the UDP socket for reader %d: %w", len(conns)+1, err)
		}
		dc, err := net.FilePacketConn(f)
		f.Close()
		if err != nil {
			closeConns(conns[1:])
			return nil, fmt.Errorf("duplicate the UDP socket for reader %d: %w", len(conns)+1, err)
		}
		conns = append(conns, dc)
	}
	return conns, nil
}

func closeConns(conns []net.PacketConn) {
	for _, c := range conns {
		c.Close()
	}
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
