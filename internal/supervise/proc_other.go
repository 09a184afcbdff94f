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

func sysProcAttr(Spec) *syscall.SysProcAttr { return nil }

func startProcess(string, []string, *os.ProcAttr) (*os.Process, error) {
	return nil, errUnsupported
}

func signalGroup(int, syscall.Signal) error { return errUnsupported }

func groupAlive(int) bool { return false }

func waitGroupGone(int, time.Duration) bool { return true }
