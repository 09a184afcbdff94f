//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// originalDst reads the destination a connection had before netfilter
// redirected it: SO_ORIGINAL_DST (SOL_IP) for IPv4 and
// IP6T_SO_ORIGINAL_DST (SOL_IPV6) for IPv6. As in linkerd2-proxy
// (linkerd/proxy/transport/src/orig_dst.rs) the family is chosen by the
// client's address, with IPv4-mapped IPv6 clients treated as IPv4.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	peer, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, errors.New("not a TCP peer")
	}
	v4 := peer.AddrPort().Addr().Unmap().Is4()
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var out netip.AddrPort
	var serr error
	err = raw.Control(func(fd uintptr) {
		if v4 {
			out, serr = getOrigDst4(int(fd))
		} else {
			out, serr = getOrigDst6(int(fd))
		}
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return out, serr
}

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from
// linux/netfilter_ipv6/ip6_tables.h, which x/sys/unix does not define.
const ip6tSOOriginalDst = 80

func getsockopt(fd, level, opt int, buf []byte) (int, error) {
	l := uint32(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return 0, errno
	}
	return int(l), nil
}

func getOrigDst4(fd int) (netip.AddrPort, error) {
	var buf [unix.SizeofSockaddrInet4]byte
	n, err := getsockopt(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST, buf[:])
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", err)
	}
	if n < unix.SizeofSockaddrInet4 {
		return netip.AddrPort{}, fmt.Errorf("getsockopt SO_ORIGINAL_DST: short sockaddr (%d bytes)", n)
	}
	// struct sockaddr_in: family (host order), port (network order), address.
	port := binary.BigEndian.Uint16(buf[2:4])
	addr := netip.AddrFrom4([4]byte(buf[4:8]))
	return netip.AddrPortFrom(addr, port), nil
}

func getOrigDst6(fd int) (netip.AddrPort, error) {
	var buf [unix.SizeofSockaddrInet6]byte
	n, err := getsockopt(fd, unix.SOL_IPV6, ip6tSOOriginalDst, buf[:])
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockopt IP6T_SO_ORIGINAL_DST: %w", err)
	}
	if n < unix.SizeofSockaddrInet6 {
		return netip.AddrPort{}, fmt.Errorf("getsockopt IP6T_SO_ORIGINAL_DST: short sockaddr (%d bytes)", n)
	}
	// struct sockaddr_in6: family, port (network order), flowinfo, address, scope id.
	port := binary.BigEndian.Uint16(buf[2:4])
	addr := netip.AddrFrom16([16]byte(buf[8:24]))
	return netip.AddrPortFrom(addr, port), nil
}
