package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/meshexp/meshexp/internal/supervise"
)

// stateDir holds one state file per network namespace meshexp runs in.
// It is on tmpfs: what it records does not survive a reboot either.
var stateDir = "/run/meshexp"

// instanceState is what a running bootstrap records so that, after a
// crash (kill -9, a Go crash), the next start in the same network
// namespace finds and ends what is left: every child's cgroup and
// process group.
type instanceState struct {
	PID      int                   `json:"pid"`
	Children map[string]childState `json:"children"`
}

type childState struct {
	Cgroup string `json:"cgroup,omitempty"`
	PGID   int    `json:"pgid,omitempty"`
	// Start is the group leader's start time (clock ticks after boot), so
	// that a later, unrelated group with the same id is never touched.
	Start uint64 `json:"start,omitempty"`
}

// registrationDir is where the fleet controller's registration agent
// publishes its state (fleet.ReadState) for this network namespace.
func registrationDir(ns string) string {
	return filepath.Join(stateDir, "netns-"+ns+".registration")
}

// stateFile records the running instance's children.
type stateFile struct {
	path   string
	regDir string // registrationDir: removed on every start and at the end
	logger *slog.Logger
	mu     sync.Mutex
	st     instanceState
}

// netnsID names the calling thread's network namespace by its inode.
func netnsID() (string, error) {
	fi, err := os.Stat("/proc/thread-self/ns/net")
	if err != nil {
		return "", fmt.Errorf("reading this network namespace's id: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", errors.New("reading this network namespace's id: no inode")
	}
	return strconv.FormatUint(st.Ino, 10), nil
}

func newStateFile(ns string, logger *slog.Logger) *stateFile {
	return &stateFile{
		path:   filepath.Join(stateDir, "netns-"+ns+".json"),
		regDir: registrationDir(ns),
		logger: logger,
		st:     instanceState{PID: os.Getpid(), Children: map[string]childState{}},
	}
}

// recoverLeftovers ends what a crashed instance left: it reads the state
// file, kills what is still in each recorded cgroup and process group,
// and removes the file.
func (s *stateFile) recoverLeftovers() error {
	// A registration state is never the last run's: an agent killed with
	// its meshexp left it.
	if err := os.RemoveAll(s.regDir); err != nil {
		return fmt.Errorf("removing the previous run's registration state: %w", err)
	}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the previous run's state %s: %w", s.path, err)
	}
	var old instanceState
	if err := json.Unmarshal(b, &old); err != nil {
		s.logger.Warn("the previous run's state file is unreadable; removing it", "file", s.path, "err", err)
		return os.Remove(s.path)
	}
	s.logger.Warn("a previous meshexp in this network namespace ended without its teardown; ending what it left", "pid", old.PID, "file", s.path)
	var errs []error
	for name, c := range old.Children {
		if c.Cgroup != "" {
			if err := supervise.KillCgroup(c.Cgroup); err != nil {
				errs = append(errs, fmt.Errorf("ending %s's leftovers: %w", name, err))
				continue
			}
			// Only dead processes remain; a cgroup that unreaped ones
			// keep is reused as it is.
			if err := supervise.RemoveCgroup(c.Cgroup); err != nil {
				s.logger.Warn("the previous run's cgroup stays", "child", name, "err", err)
			}
			removeEmptyParent(c.Cgroup)
		}
		if c.PGID > 1 && groupIsOurs(c.PGID, c.Start) {
			if err := syscall.Kill(-c.PGID, syscall.SIGKILL); err == nil {
				s.logger.Warn("killed the previous run's leftover processes", "child", name, "pgid", c.PGID)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.Remove(s.path)
}

// groupIsOurs: process group ids are not reused while any member lives,
// so a group whose leader is gone is still the recorded one; a leader
// that is there must have the recorded start time.
func groupIsOurs(pgid int, start uint64) bool {
	got, ok := procStart(pgid)
	return !ok || got == start
}

// procStart reads a process's start time from /proc/PID/stat (field 22).
func procStart(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	return v, err == nil
}

// started records a child's (re)start.
func (s *stateFile) started(name, cgroup string, pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start, _ := procStart(pid)
	s.st.Children[name] = childState{Cgroup: cgroup, PGID: pid, Start: start}
	if err := s.writeLocked(); err != nil {
		s.logger.Warn("recording the child for crash recovery failed", "child", name, "err", err)
	}
}

func (s *stateFile) writeLocked() error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(s.st)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// remove ends the record after a complete teardown, with the cgroups'
// parent directories meshexp made.
func (s *stateFile) remove() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, c := range s.st.Children {
		if c.Cgroup == "" {
			continue
		}
		if _, err := os.Stat(c.Cgroup); err == nil {
			// Its child could not be stopped: keep the record for the
			// next start.
			s.logger.Error("a child's processes outlived the teardown; the next start in this network namespace will end them", "child", name, "cgroup", c.Cgroup, "state", s.path)
			return
		}
		removeEmptyParent(c.Cgroup)
	}
	if err := os.RemoveAll(s.regDir); err != nil {
		s.logger.Warn("removing the registration state failed", "dir", s.regDir, "err", err)
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.logger.Warn("removing the state file failed", "file", s.path, "err", err)
	}
	_ = os.Remove(stateDir) // only when empty; never another's files
}

// removeEmptyParent removes the per-namespace cgroup directory above a
// child's cgroup once nothing is left in it.
func removeEmptyParent(cgroup string) {
	if parent := filepath.Dir(cgroup); strings.HasPrefix(filepath.Base(parent), "meshexp-") {
		_ = syscall.Rmdir(parent)
	}
}

// makeRegistrationDir makes an empty registrationDir the agent, running
// as uid:gid, may write to (and root reads).
func (s *stateFile) makeRegistrationDir(uid, gid uint32) error {
	if err := os.RemoveAll(s.regDir); err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(s.regDir, 0o755); err != nil {
		return err
	}
	return os.Chown(s.regDir, int(uid), int(gid))
}

// track adds the state record to a spec: its cgroup and every start.
func (s *stateFile) track(spec supervise.Spec, ns string) supervise.Spec {
	spec.Cgroup = "meshexp-" + ns + "/" + spec.Name
	prev := spec.OnEvent
	spec.OnEvent = func(e supervise.Event) {
		if e.Kind == supervise.EventStarted {
			s.started(e.Child, e.Cgroup, e.PID)
		}
		if prev != nil {
			prev(e)
		}
	}
	return spec
}
