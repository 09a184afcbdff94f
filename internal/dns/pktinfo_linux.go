//go:build linux

package dns

import (
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// A socket bound to 0.0.0.0 or :: must answer from the address each query
// was sent to, or a client on a host with several addresses drops the
// reply. The kernel reports that address with IP_PKTINFO / IPV6_PKTINFO and
// takes it back as the source of the reply (ip(7), ipv6(7)).

func enablePktInfo(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	v6 := c.LocalAddr().(*net.UDPAddr).IP.To4() == nil
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// pktInfoDst returns the destination address reported in oob.
func pktInfoDst(oob []byte) (netip.Addr, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return netip.Addr{}, false
		}
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
			var a [4]byte
			copy(a[:], data[8:12])
			return netip.AddrFrom4(a), true
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { in6_addr addr; int ifindex; }
			var a [16]byte
			copy(a[:], data[:16])
			return netip.AddrFrom16(a), true
		}
		oob = rest
	}
	return netip.Addr{}, false
}

// pktInfoSrc returns the control message that makes src the source.
func pktInfoSrc(src netip.Addr) []byte {
	if src.Is4() {
		return unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: src.As4()})
	}
	return unix.PktInfo6(&unix.Inet6Pktinfo{Addr: src.As16()})
}

const oobSize = 64
