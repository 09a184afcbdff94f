//go:build !linux

package main

import (
	"errors"
	"net"
	"net/netip"
)

// originalDst needs netfilter's SO_ORIGINAL_DST, which only Linux has; the
// stand-in then reports the local address, as for a connection that was not
// redirected.
func originalDst(*net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("SO_ORIGINAL_DST is Linux-only")
}
