//go:build !linux

package dns

import "syscall"

func reusePort(network, address string, c syscall.RawConn) error { return nil }

// Elsewhere one UDP socket is opened; SO_REUSEPORT semantics differ.
const reusePortSupported = false
