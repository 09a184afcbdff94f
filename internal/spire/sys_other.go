//go:build !linux

package spire

import (
	"net"
	"syscall"
)

// childSysProcAttr puts a child in its own process group; only Linux has a
// parent-death signal.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// peerPID is unknown outside Linux.
func peerPID(net.Conn) int { return 0 }
