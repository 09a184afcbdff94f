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

// prepareSocketDir creates the Workload API socket's missing directories
// 0755: SPIRE would create them 0750 under its umask 0027, which shuts the
// proxy uid out (docs/spire.md). Directories that exist are never changed
// (with --spire-socket /tmp/api.sock, /tmp keeps its mode and sticky bit);
// validation has checked that the proxy uid may pass them. The socket's own
// directory, when it exists, must belong to meshexp's uid: whoever owns it
// could swap the socket.
func prepareSocketDir(socket string) error {
	if err := checkSocketDirOwner(socket); err != nil {
		return err
	}
	var missing []string
	for d := filepath.Dir(socket); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("spire: checking the Workload API socket directory %s: %w", d, err)
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("spire: creating the Workload API socket directory %s: %w", d, err)
		}
		// Mkdir's mode passes through the umask; this directory is new
		// and meshexp's, so set exactly what the proxy uid needs.
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("spire: making the new Workload API socket directory %s reachable (0755): %w", d, err)
		}
	}
	return nil
}

// checkSocketDirOwner refuses an existing socket directory that belongs to
// another user than meshexp's.
func checkSocketDirOwner(socket string) error {
	dir := filepath.Dir(socket)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil // missing: created by meshexp; other errors: found later
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return &OptionError{Option: "SocketPath", Value: socket, Err: fmt.Errorf("directory %s belongs to uid %d, not to meshexp (uid %d), which could swap the socket", dir, st.Uid, os.Geteuid()), Fix: "choose a socket path in a directory meshexp's user owns"}
	}
	return nil
}

// checkSocketPath makes sure what is at a socket path may be replaced by
// the SPIRE process about to listen there, which removes whatever it finds
// (spire pkg/agent/endpoints). Nothing there is fine. A socket a live
// process serves is refused, naming it. A stale socket (nobody behind it)
// is fine when meshexp's own SPIRE made it (ours), and refused otherwise.
// Anything else (a file, a directory, a link) is refused: it is not
// meshexp's to delete.
func checkSocketPath(option, socket string, ours bool) error {
	fi, err := os.Lstat(socket)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return &OptionError{Option: option, Value: socket, Err: unwrapPath(err), Fix: "choose a socket path meshexp can create"}
	case fi.Mode().Type() != fs.ModeSocket:
		return &OptionError{Option: option, Value: socket, Err: fmt.Errorf("%s is already there and is not a socket; meshexp deletes nothing it did not create", describeType(fi)), Fix: "move it away, or choose another socket path"}
	}
	if err := ensureNotServed(option, socket); err != nil {
		return err
	}
	if !ours {
		return &OptionError{Option: option, Value: socket, Err: errors.New("a socket nobody serves is already there, and meshexp's SPIRE did not make it"), Fix: "remove it if it is stale (rm " + socket + "), or choose another socket path"}
	}
	return nil
}

func describeType(fi fs.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	default:
		return "a special file"
	}
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
