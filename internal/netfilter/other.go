//go:build !linux

package netfilter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
)

// errNotLinux is returned by everything that touches the kernel: netfilter
// rules exist only on Linux. Planning and rendering work everywhere.
var errNotLinux = errors.New("netfilter: traffic interception needs Linux")

// Runner is unavailable off Linux.
type Runner struct{}

// NewRunner fails off Linux.
func NewRunner(context.Context, Backend, *slog.Logger) (*Runner, error) { return nil, errNotLinux }

// Backend reports nothing off Linux.
func (*Runner) Backend() (Backend, string) { return "", "" }

// Install fails off Linux.
func (*Runner) Install(context.Context, *Ruleset) error { return errNotLinux }

// Remove fails off Linux.
func (*Runner) Remove(context.Context) error { return errNotLinux }

// Show fails off Linux.
func (*Runner) Show(context.Context, *Ruleset) ([]Status, error) { return nil, errNotLinux }

// InstallInputs fails off Linux.
func (*Runner) InstallInputs(context.Context, *Ruleset) ([]Input, error) { return nil, errNotLinux }

// Detect finds nothing off Linux.
func Detect(context.Context, *slog.Logger) (Backend, string) { return "", errNotLinux.Error() }

// ControlFunc marks nothing off Linux: a non-zero mark makes dials fail.
func ControlFunc(mark uint32) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		if mark == 0 {
			return nil
		}
		return fmt.Errorf("netfilter: mark the socket for %s: %w", address, errNotLinux)
	}
}

// ControlDialer is a net.Dialer whose connections carry mark (Linux only).
func ControlDialer(mark uint32) *net.Dialer { return &net.Dialer{Control: ControlFunc(mark)} }

// OriginalDst fails off Linux.
func OriginalDst(*net.TCPConn) (netip.AddrPort, error) { return netip.AddrPort{}, errNotLinux }

// HostIPv6 reports IPv6 as unusable off Linux.
func HostIPv6() error { return errNotLinux }
