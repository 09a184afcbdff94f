//go:build linux

package dns

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort lets several UDP sockets share one port; the kernel spreads
// datagrams over them by source address and port, so each gets its own
// reader without the readers contending for one socket's lock. Only
// sockets of the same user can join the group (socket(7)).
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

const reusePortSupported = true
