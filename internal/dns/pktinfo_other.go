//go:build !linux

package dns

import (
	"errors"
	"net"
	"net/netip"
)

func enablePktInfo(*net.UDPConn) error {
	return errors.New("choosing the reply's source address is implemented on Linux only")
}

func pktInfoDst([]byte) (netip.Addr, bool) { return netip.Addr{}, false }
func pktInfoSrc(netip.Addr) []byte         { return nil }

const oobSize = 0
