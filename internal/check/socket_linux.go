//go:build linux

package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Cred is a uid and its groups, as the kernel checks permissions for it.
type Cred struct {
	Name   string // "the proxy (2102)", for messages
	UID    uint32
	Groups []uint32 // primary first
}

// SocketAccess checks, from permission bits and owners along the path,
// that proxy can connect to the Workload API socket (search on every
// directory, write on the socket) and workload cannot: only the proxy
// may fetch the workload's identity.
func SocketAccess(path string, proxy, workload Cred) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		fi, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("the Workload API socket: %w", err)
		}
		if fi.Mode()&os.ModeSocket == 0 {
			return "", fmt.Errorf("%s is not a socket (%s)", path, fi.Mode())
		}
		if why := denied(path, proxy); why != "" {
			return "", fmt.Errorf("%s cannot connect to %s: %s", proxy.Name, path, why)
		}
		if why := denied(path, workload); why == "" {
			// Only the SPIRE entry's unix:uid selector then keeps the
			// SVID from the workload: a warning, not a failure.
			return "", Warnf("%s can connect to %s too; only the SPIRE entry's uid selector keeps the proxy's SVID from it", workload.Name, path)
		}
		return fmt.Sprintf("%s can connect, %s cannot", proxy.Name, workload.Name), nil
	}
}

// denied says why c may not connect to the socket at path, or "".
func denied(path string, c Cred) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err.Error()
	}
	parts := strings.Split(strings.TrimPrefix(abs, "/"), "/")
	dir := "/"
	for _, p := range parts[:len(parts)-1] {
		if !allowed(dir, c, 1) {
			return "no search permission on " + dir
		}
		dir = filepath.Join(dir, p)
	}
	if !allowed(dir, c, 1) {
		return "no search permission on " + dir
	}
	if !allowed(abs, c, 2) {
		return "no write permission on the socket"
	}
	return ""
}

// allowed applies the owner/group/other bits for want (1 x, 2 w, 4 r).
func allowed(path string, c Cred, want uint32) bool {
	if c.UID == 0 {
		return true
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return false
	}
	mode := st.Mode & 0o777
	switch {
	case st.Uid == c.UID:
		return mode>>6&want == want
	case inGroups(st.Gid, c.Groups):
		return mode>>3&want == want
	default:
		return mode&want == want
	}
}

func inGroups(g uint32, gs []uint32) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}
