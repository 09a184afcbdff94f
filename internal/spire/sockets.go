package spire

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// checkSocketDirs makes sure the proxy uid can reach the Workload API
// socket: every existing directory above it must let that uid search it.
// (SPIRE makes the socket itself 0777, spire pkg/agent/endpoints/endpoints_posix.go.)
func (o Options) checkSocketDirs() error {
	dir := filepath.Dir(o.SocketPath)
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return &OptionError{Option: "SocketPath", Value: o.SocketPath, Err: fmt.Errorf("%s is not a directory", d), Fix: "choose a socket path under a directory"}
			}
			if !searchable(fi, o.ProxyUID, o.ProxyGID) {
				return &OptionError{Option: "SocketPath", Value: o.SocketPath, Err: fmt.Errorf("directory %s (mode %04o) does not let the proxy uid %d reach the socket", d, fi.Mode().Perm(), o.ProxyUID), Fix: fmt.Sprintf("chmod o+x %s, or choose another socket path", d)}
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return &OptionError{Option: "SocketPath", Value: o.SocketPath, Err: unwrapPath(err), Fix: "choose a socket path meshexp can create"}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func searchable(fi fs.FileInfo, uid, gid uint32) bool {
	perm := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case ok && st.Uid == uid:
		return perm&0o100 != 0
	case ok && st.Gid == gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// prepareSocketDir creates the Workload API socket's directory (and any
// missing parent) 0755: SPIRE would create it 0750 under its umask 0027,
// which shuts the proxy uid out (shared/spire.md). An existing directory
// owned by another user is refused: whoever owns it could swap the socket.
func prepareSocketDir(socket string) error {
	dir := filepath.Dir(socket)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the Workload API socket directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking the Workload API socket directory %s: %w", dir, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return &OptionError{Option: "SocketPath", Value: socket, Err: fmt.Errorf("directory %s belongs to uid %d, not to meshexp (uid %d)", dir, st.Uid, os.Geteuid()), Fix: "remove the directory or choose another socket path"}
	}
	if fi.Mode().Perm() != 0o755 {
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("making the Workload API socket directory %s reachable (0755): %w", dir, err)
		}
	}
	return nil
}

// ensureNotServed fails when a live process accepts connections on socket:
// another SPIRE from an earlier run that is still alive (a stale socket
// file with nobody behind it is fine; SPIRE replaces it). The error names
// the listener's pid, read from SO_PEERCRED.
func ensureNotServed(option, socket string) error {
	conn, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return nil
	}
	defer conn.Close()
	who := "another process"
	if pid := peerPID(conn); pid > 0 {
		who = fmt.Sprintf("process %d", pid)
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
			who += " (" + exe + ")"
		}
	}
	return &OptionError{Option: option, Value: socket, Err: fmt.Errorf("%s is already serving this socket", who), Fix: "stop it (an earlier meshexp's SPIRE?) or choose another path"}
}
