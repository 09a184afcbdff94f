//go:build linux

package kubetest

import "syscall"

// sysProcAttr gives the child its own process group (a signal to the test's
// group does not reach it out of order) and SIGKILL when the test binary
// dies, so a timed-out test leaves no API server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
