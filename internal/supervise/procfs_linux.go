//go:build linux

package supervise

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// childPIDs lists the children of process self. Children belong to the
// thread that forked them (or, for orphans, to whichever thread the kernel
// picked), so every thread's list is read. Without CONFIG_PROC_CHILDREN,
// all of /proc is scanned for ppid == self.
func childPIDs(self int) ([]int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if errors.Is(err, fs.ErrNotExist) {
			if _, terr := os.Stat("/proc/self/task/" + t.Name()); terr == nil {
				return scanChildren(self)
			}
			continue // the thread ended meanwhile
		}
		if err != nil {
			return nil, err
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids, nil
}

func scanChildren(self int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil && st.ppid == self {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// pidfdOwned returns the pids that some descriptor of this process, other
// than those in skip, is a pidfd for.
func pidfdOwned(skip map[int]bool) (map[int]bool, error) {
	ents, err := os.ReadDir("/proc/self/fdinfo")
	if err != nil {
		return nil, err
	}
	owned := map[int]bool{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || skip[fd] {
			continue
		}
		b, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		if pid, ok := fdinfoPid(b); ok {
			owned[pid] = true
		}
	}
	return owned, nil
}

// fdinfoPid finds the "Pid:" line that only pidfds' fdinfo has
// (fs/pidfs.c, kernel/fork.c before 6.9); -1 there means already reaped.
func fdinfoPid(fdinfo []byte) (int, bool) {
	sc := bufio.NewScanner(bytes.NewReader(fdinfo))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "Pid:")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(v))
		return pid, err == nil && pid > 0
	}
	return 0, false
}
