//go:build linux

package spire

import (
	"net"
	"syscall"
)

// childSysProcAttr puts a child in its own process group and has the kernel
// kill it if meshexp dies without stopping it, so a crash leaves no SPIRE
// process behind to hold the sockets (prctl PR_SET_PDEATHSIG).
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// peerPID is the pid of the process on the other end of a unix socket
// connection (for a listener: the one that bound it), 0 if unknown.
func peerPID(conn net.Conn) int {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	_ = raw.Control(func(fd uintptr) {
		if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}
