//go:build linux

package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reaper reaps orphans: processes re-parented to meshexp because their
// own parent died, which happens when meshexp is PID 1 of a container or a
// child subreaper. Without it they stay zombies for ever.
//
// The classic reaper, wait4(-1) in a loop, would also reap the children of
// everyone else in this process — os/exec callers such as the iptables
// runner, and the supervised children themselves — and they would get
// ECHILD instead of their exit status. This one only reaps zombies that
// nobody in the process is going to wait for:
//
//   - Go (1.23+, Linux 5.4+) starts every child with clone(CLONE_PIDFD)
//     and keeps the pidfd in the os.Process until Wait has reaped the
//     child (os/pidfd_linux.go). The pidfd is installed in our descriptor
//     table by the clone itself, before the child can run, let alone exit.
//   - So a zombie child is owned if and only if one of our descriptors is a
//     pidfd for it (/proc/self/fdinfo/N says "Pid: <pid>"). Orphans are
//     never owned: they were forked by a process that is gone.
//   - On SIGCHLD the reaper lists its zombie children
//     (/proc/self/task/*/children), pins each with pidfd_open so a
//     recycled pid cannot be confused with it, skips the owned ones, and
//     reaps the rest with waitid(P_PIDFD, WNOHANG).
//
// Supervised children are therefore waited for by their own goroutine
// (os.Process.Wait) with no dispatching, and exec.Cmd keeps working
// anywhere in meshexp. What this cannot see: a child forked by C code
// (fork+waitpid without a pidfd) would lose its status; meshexp has none.
//
// On kernels where Go cannot use pidfds (before 5.4), ownership is
// invisible; the reaper then reaps only zombies that stayed unreaped for
// unownedGrace, which os/exec callers (who wait right away) never do.
type Reaper struct {
	logger    *slog.Logger
	subreaper bool // we set PR_SET_CHILD_SUBREAPER and clear it when done
	byPidfd   bool // ownership is visible through pidfds
	seen      map[int]time.Time
	reaped    atomic.Int64
	cancel    context.CancelFunc
	done      chan struct{}
}

// unownedGrace: without pidfds, how long a zombie child must stay
// unreaped before it is taken for an orphan.
const unownedGrace = 2 * time.Second

var reaperRunning atomic.Bool

// StartReaper starts reaping orphans until ctx ends or Stop is called.
// When meshexp is not PID 1 it first makes the process a child subreaper
// (prctl PR_SET_CHILD_SUBREAPER), so that orphans of its children come to
// it rather than to the host's init; that is how a VM service keeps its
// tree tidy too. One reaper per process.
func StartReaper(ctx context.Context, logger *slog.Logger) (*Reaper, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if !reaperRunning.CompareAndSwap(false, true) {
		return nil, errors.New("starting the orphan reaper: one is already running in this process")
	}
	if !procIsOurs() {
		reaperRunning.Store(false)
		return nil, errors.New("starting the orphan reaper: /proc does not show this process's PID namespace; mount a /proc for it (unshare --pid --fork --mount-proc, or the container runtime's default)")
	}
	r := &Reaper{logger: logger.With("component", "reaper"), seen: map[int]time.Time{}, done: make(chan struct{})}
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			reaperRunning.Store(false)
			return nil, fmt.Errorf("starting the orphan reaper: prctl(PR_SET_CHILD_SUBREAPER): %w", err)
		}
		r.subreaper = true
	}
	r.byPidfd = pidfdWorks()
	if !r.byPidfd {
		r.logger.Warn("pidfds are not available (Linux < 5.4?): orphans are recognised by staying unreaped", "after", unownedGrace)
	}
	// Buffered: SIGCHLDs coalesce anyway, and every sweep takes all zombies.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	ctx, r.cancel = context.WithCancel(ctx)
	go r.loop(ctx, sigs)
	r.logger.Debug("orphan reaper started", "pid1", !r.subreaper, "by_pidfd", r.byPidfd)
	return r, nil
}

// Stop stops reaping (and clears the subreaper flag StartReaper set).
func (r *Reaper) Stop() {
	r.cancel()
	<-r.done
}

// Reaped is how many orphans were reaped so far.
func (r *Reaper) Reaped() int64 { return r.reaped.Load() }

func (r *Reaper) loop(ctx context.Context, sigs chan os.Signal) {
	defer func() {
		signal.Stop(sigs)
		if r.subreaper {
			_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
		}
		reaperRunning.Store(false)
		close(r.done)
	}()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		if r.sweep() {
			retry.Reset(unownedGrace / 4)
		}
		select {
		case <-ctx.Done():
			return
		case <-sigs:
		case <-retry.C:
		}
	}
}

// sweep reaps every unowned zombie child; it reports whether some zombie
// is waiting to be judged again later (no-pidfd mode only).
func (r *Reaper) sweep() (again bool) {
	self := os.Getpid()
	pids, err := childPIDs(self)
	if err != nil {
		r.logger.Warn("listing child processes failed", "err", err)
		return false
	}
	// Pin each zombie child with a pidfd before looking for owners.
	pinned := map[int]int{} // pid → our pidfd
	mine := map[int]bool{}  // our pidfds, not owners
	defer func() {
		for _, fd := range pinned {
			unix.Close(fd)
		}
	}()
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // reaped meanwhile
		}
		st, err := readProcStat(pid)
		if err != nil || st.state != 'Z' || st.ppid != self {
			unix.Close(fd)
			continue
		}
		pinned[pid], mine[fd] = fd, true
	}
	if len(pinned) == 0 {
		clear(r.seen)
		return false
	}
	var owned map[int]bool
	if r.byPidfd {
		if owned, err = pidfdOwned(mine); err != nil {
			r.logger.Warn("reading pidfd owners failed; not reaping this round", "err", err)
			return false
		}
	}
	now := time.Now()
	for pid, fd := range pinned {
		if owned[pid] {
			continue
		}
		if !r.byPidfd {
			first, ok := r.seen[pid]
			if !ok {
				r.seen[pid] = now
			}
			if !ok || now.Sub(first) < unownedGrace {
				again = true
				continue
			}
			delete(r.seen, pid)
		}
		r.reap(pid, fd)
	}
	for pid := range r.seen {
		if _, ok := pinned[pid]; !ok {
			delete(r.seen, pid)
		}
	}
	return again
}

func (r *Reaper) reap(pid, pidfd int) {
	var si unix.Siginfo
	err := unix.Waitid(unix.P_PIDFD, pidfd, &si, unix.WEXITED|unix.WNOHANG, nil)
	if err != nil {
		if !errors.Is(err, unix.ECHILD) {
			r.logger.Warn("reaping orphan failed", "pid", pid, "err", err)
		}
		return
	}
	c := (*sigchldInfo)(unsafe.Pointer(&si))
	if c.Pid == 0 {
		return // not a zombie after all
	}
	r.reaped.Add(1)
	r.logger.Debug("reaped orphan", "pid", c.Pid, "status", c.Status)
}

// sigchldInfo is siginfo_t as waitid fills it for a child
// (include/uapi/asm-generic/siginfo.h): the union starts after three ints
// on 32-bit hosts and four on 64-bit ones.
type sigchldInfo struct {
	Signo  int32
	_      [2]int32 // errno and code, swapped on MIPS
	_      [is64bit]int32
	Pid    int32
	Uid    uint32
	Status int32 // exit code or signal number
}

const is64bit = ^uint(0) >> 63

var _ [unsafe.Sizeof(unix.Siginfo{}) - unsafe.Sizeof(sigchldInfo{})]byte // sigchldInfo fits in Siginfo

// pidfdWorks mirrors the check os/pidfd_linux.go makes before it uses
// pidfds: pidfd_open on ourselves, and waitid(P_PIDFD) saying ECHILD.
func pidfdWorks() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var si unix.Siginfo
	for {
		err = unix.Waitid(unix.P_PIDFD, fd, &si, unix.WEXITED|unix.WNOHANG, nil)
		if err != unix.EINTR {
			return err == unix.ECHILD
		}
	}
}
