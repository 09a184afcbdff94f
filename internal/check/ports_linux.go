//go:build linux

package check

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Port is a port meshexp needs for itself.
type Port struct {
	Name  string // "proxy inbound", "DNS"
	Proto string // tcp or udp
	Port  uint16
}

// Holder is a process holding a port.
type Holder struct {
	PID  int
	Comm string
}

// PortsFree checks that no process holds ports, or only processes that
// allowed accepts (meshexp's own children on a running host). It reads
// the socket tables of the calling thread's network namespace and maps
// socket inodes to processes through /proc/*/fd; it binds nothing.
func PortsFree(ports []Port, allowed func(Holder) bool) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		held, err := listeningInodes()
		if err != nil {
			return "", err
		}
		var inodes []string
		for _, p := range ports {
			inodes = append(inodes, held[key(p.Proto, p.Port)]...)
		}
		owners := socketOwners(inodes)
		var bad, ok []string
		for _, p := range ports {
			for _, ino := range held[key(p.Proto, p.Port)] {
				h, found := owners[ino]
				who := "a process in another PID namespace"
				if found {
					who = fmt.Sprintf("pid %d (%s)", h.PID, h.Comm)
				}
				desc := fmt.Sprintf("%s %s/%d held by %s", p.Name, p.Proto, p.Port, who)
				if slices.Contains(ok, desc) || slices.Contains(bad, desc) {
					continue // the same process on IPv4 and IPv6
				}
				if found && allowed != nil && allowed(h) {
					ok = append(ok, desc)
					continue
				}
				bad = append(bad, desc)
			}
		}
		if len(bad) > 0 {
			return "", fmt.Errorf("%s", strings.Join(bad, "; "))
		}
		if len(ok) > 0 {
			return strings.Join(ok, "; "), nil
		}
		return "all free", nil
	}
}

func key(proto string, port uint16) string { return proto + "/" + strconv.Itoa(int(port)) }

// listeningInodes maps "tcp/4143" to the inodes of listening TCP sockets
// and bound UDP sockets on that port.
func listeningInodes() (map[string][]string, error) {
	out := map[string][]string{}
	for _, f := range []struct{ file, proto, state string }{
		{"tcp", "tcp", "0A"}, {"tcp6", "tcp", "0A"}, {"udp", "udp", "07"}, {"udp6", "udp", "07"},
	} {
		fh, err := os.Open("/proc/thread-self/net/" + f.file)
		if err != nil {
			if os.IsNotExist(err) {
				continue // no IPv6
			}
			return nil, fmt.Errorf("read socket table: %w", err)
		}
		s := bufio.NewScanner(fh)
		s.Scan() // header
		for s.Scan() {
			fs := strings.Fields(s.Text())
			if len(fs) < 10 || fs[3] != f.state {
				continue
			}
			_, portHex, _ := strings.Cut(fs[1], ":")
			port, err := strconv.ParseUint(portHex, 16, 16)
			if err != nil {
				continue
			}
			k := key(f.proto, uint16(port))
			out[k] = append(out[k], fs[9])
		}
		fh.Close()
	}
	return out, nil
}

// socketOwners finds the processes holding the given socket inodes.
func socketOwners(inodes []string) map[string]Holder {
	want := map[string]bool{}
	for _, i := range inodes {
		want["socket:["+i+"]"] = true
	}
	out := map[string]Holder{}
	if len(want) == 0 {
		return out
	}
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range pids {
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			l, err := os.Readlink(dir + "/fd/" + fd.Name())
			if err != nil || !want[l] {
				continue
			}
			pid, _ := strconv.Atoi(filepath.Base(dir))
			comm, _ := os.ReadFile(dir + "/comm")
			out[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = Holder{PID: pid, Comm: strings.TrimSpace(string(comm))}
		}
	}
	return out
}

// DescendantOf returns an allowed function for PortsFree that accepts
// processes whose parent chain reaches a process named comm (meshexp's
// children on a running host).
func DescendantOf(comm string) func(Holder) bool {
	return func(h Holder) bool {
		pid := h.PID
		for i := 0; i < 64 && pid > 1; i++ {
			ppid, name := parentOf(pid)
			if name == comm && pid != h.PID {
				return true
			}
			pid = ppid
		}
		return false
	}
}

func parentOf(pid int) (int, string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, ""
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return 0, ""
	}
	fs := strings.Fields(s[end+1:])
	if len(fs) < 2 {
		return 0, ""
	}
	ppid, _ := strconv.Atoi(fs[1])
	return ppid, s[open+1 : end]
}
