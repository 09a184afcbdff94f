// Package instance makes meshexp one per network namespace.
//
// Two `meshexp bootstrap` runs in one network namespace would fight over
// the same interception rules and proxy ports: the second installs its
// rules over the first's, answers its readiness with the first proxy's
// /ready, and on exit removes every rule, leaving the first one running
// with no interception. Acquire prevents that with one lock per network
// namespace: an abstract unix socket (@meshexp/instance). The kernel
// scopes abstract socket names to the network namespace and frees the name
// when the last descriptor closes, so the lock is exactly as wide as the
// rules it protects and a crash (kill -9) can never leave it stale. A
// second meshexp connects to the socket and learns the holder's pid from
// the kernel (SO_PEERCRED) and what it runs from the holder itself.
//
// Linux only; elsewhere Acquire returns an error wrapping
// errors.ErrUnsupported.
package instance

import "fmt"

// Name is the abstract socket's name (without the leading NUL).
const Name = "meshexp/instance"

// HeldError says another meshexp holds this network namespace.
type HeldError struct {
	PID  int    // the holder's pid as the kernel reports it; 0 if unknown
	What string // what the holder runs, e.g. "bootstrap"
	Want string // what this process wanted to do
}

func (e *HeldError) Error() string {
	who := "another meshexp"
	if e.What != "" {
		who = "meshexp " + e.What
	}
	if e.PID > 0 {
		who += fmt.Sprintf(" (pid %d)", e.PID)
	}
	return fmt.Sprintf("%s is already running in this network namespace and owns its interception rules; %s would fight with it, so nothing was changed. Stop it first (or run this one in another network namespace)", who, e.Want)
}
