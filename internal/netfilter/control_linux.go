//go:build linux

package netfilter

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ControlFunc returns a net.Dialer Control function that puts mark on the
// socket (SO_MARK) before it connects, so the interception rules let the
// connection through. Use it for meshexp's own control traffic — the
// Kubernetes API (rest.Config.Dial), gRPC (grpc.WithContextDialer), DNS
// upstreams — through ControlDialer or directly. Setting a mark needs
// CAP_NET_ADMIN; without it the dial fails rather than being silently
// intercepted. A zero mark gives a function that does nothing.
//
//	// client-go
//	restCfg.Dial = netfilter.ControlDialer(mark).DialContext
//	// gRPC
//	grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
//		return netfilter.ControlDialer(mark).DialContext(ctx, "tcp", addr)
//	})
func ControlFunc(mark uint32) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		if mark == 0 {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
		}); err != nil {
			return fmt.Errorf("netfilter: mark socket for %s: %w", address, err)
		}
		if serr != nil {
			return fmt.Errorf("netfilter: set SO_MARK 0x%x on the socket for %s (needs CAP_NET_ADMIN): %w", mark, address, serr)
		}
		return nil
	}
}

// ControlDialer is a net.Dialer whose connections carry mark.
func ControlDialer(mark uint32) *net.Dialer {
	return &net.Dialer{Control: ControlFunc(mark)}
}

// ip6tSoOriginalDst is IP6T_SO_ORIGINAL_DST from
// include/uapi/linux/netfilter_ipv6/ip6_tables.h (x/sys/unix lacks it).
const ip6tSoOriginalDst = 80

// OriginalDst returns where a connection that REDIRECT sent to a local
// listener was addressed originally (SO_ORIGINAL_DST for IPv4,
// IP6T_SO_ORIGINAL_DST for IPv6). The listener must be family-specific
// ("tcp4"/"tcp6"): the kernel answers neither option on a dual-stack
// socket's IPv4-mapped connection.
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
	local, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("netfilter: original destination: not a TCP connection")
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("netfilter: original destination: %w", err)
	}
	var ap netip.AddrPort
	var gerr error
	err = raw.Control(func(fd uintptr) {
		if local.IP.To4() != nil {
			// The kernel writes a sockaddr_in (16 bytes); IPv6Mreq is a
			// 20-byte buffer x/sys can fill.
			var m *unix.IPv6Mreq
			if m, gerr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST); gerr == nil {
				b := m.Multiaddr
				ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), uint16(b[2])<<8|uint16(b[3]))
			}
			return
		}
		var sa unix.RawSockaddrInet6
		l := uint32(unsafe.Sizeof(sa))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_IPV6, ip6tSoOriginalDst, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&l)), 0)
		if errno != 0 {
			gerr = errno
			return
		}
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		ap = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
	})
	if err == nil {
		err = gerr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("netfilter: original destination of %s: %w (was the connection redirected?)", c.LocalAddr(), err)
	}
	return ap, nil
}
