//go:build linux

package supervise

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A cgroup holds every process of one child, whatever it does: a process
// can leave its process group (setsid, setpgid) but not its cgroup, so
// Stop and a later start find everything the child ever ran. Processes are
// placed in it at fork, before they can run: with clone3's
// CLONE_INTO_CGROUP on cgroup v2; on a cgroup v1 hierarchy (pids or
// freezer) by moving the one forking thread into the cgroup around the
// fork (a v1 child inherits its forking thread's cgroups).
type cgroup struct {
	dir string // absolute path of the cgroup's directory
	v2  bool
	fd  int // v2: directory descriptor for CLONE_INTO_CGROUP; -1 otherwise
	// home is the v1 tasks file the forking thread returns to.
	home string
}

// cgroupHierarchies lists, in order of preference, where meshexp can make
// cgroups: the cgroup v2 hierarchy (at /sys/fs/cgroup, or the "unified"
// one of a hybrid host), then the v1 pids and freezer hierarchies. Tests
// replace it to exercise v1 on a host that has both.
var cgroupHierarchies = findHierarchies

type hierarchy struct {
	mount string // where it is mounted
	own   string // meshexp's own cgroup in it, relative to the mount
	v2    bool
}

// findHierarchies reads /proc/self/mountinfo and /proc/self/cgroup.
func findHierarchies() ([]hierarchy, error) {
	own := map[string]string{} // "0" for v2, else controller name → path
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			own["v2"] = parts[2]
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			own[ctl] = parts[2]
		}
	}
	f.Close()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var v2, v1 []hierarchy
	for _, line := range strings.Split(string(mi), "\n") {
		// id parent major:minor root mountpoint opts ... - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		root, mnt := pf[3], pf[4]
		rel := func(p string) (string, bool) {
			r, err := filepath.Rel(root, p)
			if err != nil || strings.HasPrefix(r, "..") {
				return "", false
			}
			return r, true
		}
		switch qf[0] {
		case "cgroup2":
			if p, ok := own["v2"]; ok {
				if r, ok := rel(p); ok {
					v2 = append(v2, hierarchy{mount: mnt, own: r, v2: true})
				}
			}
		case "cgroup":
			for _, ctl := range []string{"pids", "freezer"} {
				if !strings.Contains(","+qf[2]+",", ","+ctl+",") {
					continue
				}
				if r, ok := rel(own[ctl]); ok {
					v1 = append(v1, hierarchy{mount: mnt, own: r})
				}
			}
		}
	}
	return append(v2, v1...), nil
}

// newCgroup makes (or takes over, after a crash) the cgroup name below
// meshexp's own, in the first hierarchy where that works. Anything found
// in a cgroup taken over is killed first.
func newCgroup(name string) (*cgroup, error) {
	hs, err := cgroupHierarchies()
	if err != nil {
		return nil, fmt.Errorf("finding cgroup hierarchies: %w", err)
	}
	if len(hs) == 0 {
		return nil, errors.New("no cgroup v2 hierarchy and no v1 pids or freezer hierarchy is mounted")
	}
	var errs []error
	for _, h := range hs {
		dir := filepath.Join(h.mount, h.own, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		// A crashed meshexp's leftovers go first.
		if err := KillCgroup(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		cg := &cgroup{dir: dir, v2: h.v2, fd: -1}
		if h.v2 {
			fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cg.fd = fd
		} else {
			cg.home = filepath.Join(h.mount, h.own, "tasks")
		}
		return cg, nil
	}
	return nil, errors.Join(errs...)
}

// procs lists the live processes in the cgroup.
func (cg *cgroup) procs() []int { return cgroupProcs(cg.dir) }

func cgroupProcs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			if st, err := readProcStat(pid); err == nil && st.state != 'Z' && st.state != 'X' {
				out = append(out, pid)
			}
		}
	}
	return out
}

// signal sends sig to every process in the cgroup.
func (cg *cgroup) signal(sig syscall.Signal) {
	for _, pid := range cg.procs() {
		_ = syscall.Kill(pid, sig)
	}
}

// KillCgroup kills every process in the cgroup at dir and waits until no
// live one is left (a missing cgroup is empty). A v2 cgroup is frozen
// while its processes are killed, so none can fork away meanwhile.
// cgroup.kill is not used: on some kernels a cgroup that was ever killed
// through it kills every process later cloned into it.
func KillCgroup(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	freeze := filepath.Join(dir, "cgroup.freeze")
	if _, err := os.Stat(freeze); err == nil && len(cgroupProcs(dir)) > 0 {
		if os.WriteFile(freeze, []byte("1"), 0) == nil {
			for _, pid := range cgroupProcs(dir) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			// Thawed, the killed processes end.
			_ = os.WriteFile(freeze, []byte("0"), 0)
		}
	}
	deadline := time.Now().Add(killWait)
	for pause := time.Millisecond; ; pause = min(pause*2, 50*time.Millisecond) {
		pids := cgroupProcs(dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still has processes %v %s after SIGKILL", dir, pids, killWait)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(pause)
	}
}

// RemoveCgroup kills what is left in the cgroup at dir and removes it.
// A killed process stays in its cgroup until its parent reaps it; when
// that parent does not (an init that never reaps), the error says so.
func RemoveCgroup(dir string) error {
	if err := KillCgroup(dir); err != nil {
		return err
	}
	deadline := time.Now().Add(killWait)
	for pause := time.Millisecond; ; pause = min(pause*2, 100*time.Millisecond) {
		err := unix.Rmdir(dir)
		switch {
		case err == nil || errors.Is(err, unix.ENOENT):
			return nil
		case !errors.Is(err, unix.EBUSY) || time.Now().After(deadline):
			return fmt.Errorf("removing cgroup %s (its processes are dead; exited ones nobody reaped keep it): %w", dir, err)
		}
		time.Sleep(pause)
	}
}

// close removes the cgroup, once its child is finished for good.
func (cg *cgroup) close() error {
	if cg.fd >= 0 {
		unix.Close(cg.fd)
		cg.fd = -1
	}
	return RemoveCgroup(cg.dir)
}

// enterForFork moves the calling (forking, locked) thread into a v1
// cgroup so the child it forks starts there; leave moves it back.
func (cg *cgroup) enterForFork() (leave func(), err error) {
	if cg == nil || cg.v2 {
		return func() {}, nil
	}
	tid := []byte(strconv.Itoa(unix.Gettid()))
	if err := os.WriteFile(filepath.Join(cg.dir, "tasks"), tid, 0); err != nil {
		return nil, fmt.Errorf("moving the forking thread into cgroup %s: %w", cg.dir, err)
	}
	return func() { _ = os.WriteFile(cg.home, tid, 0) }, nil
}
