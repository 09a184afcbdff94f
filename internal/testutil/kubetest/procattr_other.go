//go:build !linux

package kubetest

import "syscall"

// sysProcAttr: the harness runs on Linux; elsewhere it only has to build.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
