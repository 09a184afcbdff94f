//go:build linux

package cli

import (
	"os"
	"syscall"
)

// platformSignals are Linux's other signals that terminate by default:
// SIGPWR, SIGSTKFLT and the real-time signals (32 and 33 are the C
// library's own).
func platformSignals() []os.Signal {
	s := []os.Signal{syscall.SIGPWR, syscall.SIGSTKFLT}
	for n := 34; n <= 64; n++ {
		s = append(s, syscall.Signal(n))
	}
	return s
}
