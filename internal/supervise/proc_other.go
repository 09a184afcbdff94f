//go:build !linux

package supervise

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Supervision relies on Linux (parent-death signal, pidfd, /proc); on other
// systems Start fails so that `go vet` and unit tests of callers still build.
var errUnsupported = fmt.Errorf("%w: supervising processes needs Linux", errors.ErrUnsupported)

func sysProcAttr(Spec, *cgroup) *syscall.SysProcAttr { return nil }

func startProcess(string, []string, *os.ProcAttr, *cgroup) (*os.Process, error) {
	return nil, errUnsupported
}

func signalGroup(int, syscall.Signal) error { return errUnsupported }

func groupAlive(int) bool { return false }

func waitGroupGone(int, time.Duration) bool { return true }

type cgroup struct{ dir string }

func newCgroup(string) (*cgroup, error) { return nil, errUnsupported }
func (*cgroup) procs() []int            { return nil }
func (*cgroup) signal(syscall.Signal)   {}
func (*cgroup) close() error            { return nil }

// KillCgroup needs Linux.
func KillCgroup(string) error { return errUnsupported }

// RemoveCgroup needs Linux.
func RemoveCgroup(string) error { return errUnsupported }
