//go:build linux

package supervise

import (
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sysProcAttr: a process group of its own (so Stop reaches whatever the
// child spawns, and a terminal's Ctrl-C reaches only meshexp, which then
// shuts down in order), the credentials asked for, and SIGKILL from the
// kernel when the forking thread dies (see forker).
func sysProcAttr(spec Spec, cg *cgroup) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
		Credential: spec.Credential,
	}
	if cg != nil && cg.v2 {
		a.UseCgroupFD, a.CgroupFD = true, cg.fd
	}
	return a
}

// The parent-death signal (prctl PR_SET_PDEATHSIG) fires when the *thread*
// that forked the child exits, not when the process does (prctl(2): "the
// parent thread"). Go moves goroutines between threads and terminates a
// thread when a goroutine that locked it exits without unlocking, which
// libraries that switch namespaces do on purpose (vishvananda/netns
// callers, for one). A child forked from such a thread would be killed
// while meshexp is alive and well.
//
// So every child is forked from one goroutine that locks its thread and
// never returns: that thread lives exactly as long as the process, and
// Pdeathsig means what we want — meshexp died. Go sets the signal after
// changing credentials (which would clear it) and re-checks the parent in
// the child, so there is no window at fork time either
// (syscall/exec_linux.go, forkAndExecInChild1). The kernel also clears it
// when the child execs a set-user-ID or file-capability binary; SPIRE,
// linkerd2-proxy and ordinary workloads are neither.
var forker struct {
	once sync.Once
	reqs chan forkReq
}

type forkReq struct {
	cg    *cgroup // v1: the forking thread enters it around the fork
	path  string
	argv  []string
	attr  *os.ProcAttr
	reply chan forkResult
}

type forkResult struct {
	proc *os.Process
	err  error
}

func startProcess(path string, argv []string, attr *os.ProcAttr, cg *cgroup) (*os.Process, error) {
	forker.once.Do(func() {
		forker.reqs = make(chan forkReq)
		go forkLoop(forker.reqs)
	})
	reply := make(chan forkResult, 1)
	forker.reqs <- forkReq{cg: cg, path: path, argv: argv, attr: attr, reply: reply}
	res := <-reply
	return res.proc, res.err
}

func forkLoop(reqs <-chan forkReq) {
	runtime.LockOSThread() // never unlocked: this thread must outlive every child
	for r := range reqs {
		leave, err := r.cg.enterForFork()
		if err != nil {
			r.reply <- forkResult{nil, err}
			continue
		}
		p, err := os.StartProcess(r.path, r.argv, r.attr)
		leave()
		r.reply <- forkResult{p, err}
	}
}

func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return errors.New("refusing to signal process group <= 1")
	}
	return syscall.Kill(-pgid, sig)
}

// groupAlive reports whether a process group has a live member. kill(2)
// counts zombies, and a member orphaned to an init that does not reap
// (some container runtimes' PID 1 does not) stays a zombie forever; it can
// do no harm, so /proc decides when kill says the group exists.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	if !procIsOurs() {
		return true
	}
	live, err := groupHasLiveMember(pgid)
	if err != nil {
		return true
	}
	return live
}

// waitGroupGone polls until the group has no live member or d passes
// (d < 0: no limit). It reports whether the group is gone.
func waitGroupGone(pgid int, d time.Duration) bool {
	var deadline time.Time
	if d >= 0 {
		deadline = time.Now().Add(d)
	}
	for pause := time.Millisecond; ; pause = min(pause*2, 100*time.Millisecond) {
		if !groupAlive(pgid) {
			return true
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
	}
}

func groupHasLiveMember(pgid int) (bool, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		if st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			return true, nil
		}
	}
	return false, nil
}

// procStat is the part of /proc/PID/stat this package reads.
type procStat struct {
	state byte
	ppid  int
	pgrp  int
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

// parseProcStat parses "pid (comm) state ppid pgrp ..."; comm may hold
// spaces and parentheses, so fields start after the last ')'.
func parseProcStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed /proc stat: no ')'")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return procStat{}, errors.New("malformed /proc stat: too few fields")
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, err
	}
	return procStat{state: f[0][0], ppid: ppid, pgrp: pgrp}, nil
}

// procIsOurs reports whether /proc shows this process's PID namespace
// (it does not under `unshare --pid --fork` without --mount-proc), so
// that pids read there mean what they mean to kill(2) and wait(2).
var procIsOurs = sync.OnceValue(func() bool {
	s, err := os.Readlink("/proc/self")
	return err == nil && s == strconv.Itoa(os.Getpid())
})
