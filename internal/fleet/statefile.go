package fleet

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The agent publishes its registration state as a small JSON file,
// StateFile in a directory bootstrap makes for it (owned by the proxy's
// uid, removed on every start and in the teardown), which meshexp (root)
// reads for /status and `meshexp check`. The file is replaced atomically
// (a temporary file renamed over it), so a reader sees a whole state or
// none, and carries the agent's pid, so a state left by an agent that is
// gone is never shown as current (ReadState).

// StateFile is the state's file name in the agent's state directory.
const StateFile = "state.json"

// maxStateSize bounds what a reader reads: the file is a few hundred bytes.
const maxStateSize = 64 << 10

// Published is the registration state as the agent publishes it.
type Published struct {
	PID        int    `json:"pid"` // the agent's
	State      Phase  `json:"state"`
	Controller string `json:"controller"` // host:port
	Group      string `json:"group"`      // the ExternalGroup
	Namespace  string `json:"namespace"`  // its namespace
	// ExternalWorkload is namespace/name as the controller last bound it.
	ExternalWorkload string `json:"externalWorkload,omitempty"`
	// Error is the controller's refusal or the connection's error, while
	// not registered.
	Error          string    `json:"error,omitempty"`
	LastRegistered time.Time `json:"lastRegistered,omitzero"`
	// Ready is the readiness last reported; nil before the first
	// registration.
	Ready   *bool     `json:"ready,omitempty"`
	Changed time.Time `json:"changed"`
}

// publisher writes the agent's state to dir.
type publisher struct {
	dir  string
	log  *slog.Logger
	last Published
}

// newPublisher starts from what an earlier agent of the same bootstrap
// left (a failed agent is restarted: its error and last registration stay
// visible while the new one connects), with this agent's pid.
func newPublisher(dir string, o AgentOptions, log *slog.Logger) *publisher {
	p := &publisher{dir: dir, log: log}
	if prev, err := readStateFile(dir); err == nil {
		p.last = prev
	}
	p.last.PID, p.last.Controller, p.last.Group, p.last.Namespace = os.Getpid(), o.ControllerAddr, o.Group, o.Namespace
	p.last.State, p.last.Changed = PhaseConnecting, time.Now()
	return p
}

// client publishes a client's state.
func (p *publisher) client(s State) {
	p.last.State, p.last.Error, p.last.Changed = s.Phase, s.LastError, s.Changed
	if s.Name != "" {
		p.last.ExternalWorkload = s.Namespace + "/" + s.Name
	}
	if !s.LastRegistered.IsZero() { // else an earlier agent's, if any
		ready := s.Ready
		p.last.LastRegistered, p.last.Ready = s.LastRegistered, &ready
	}
	p.write()
}

// failed publishes an error that ends this agent (it is restarted).
func (p *publisher) failed(err error) {
	p.last.State, p.last.Error, p.last.Changed = PhaseRetrying, err.Error(), time.Now()
	p.write()
}

func (p *publisher) write() {
	if err := writeState(p.dir, p.last); err != nil {
		p.log.Warn("publishing the registration state failed", "dir", p.dir, "err", err)
	}
}

// writeState replaces dir/StateFile with s, atomically.
func writeState(dir string, s Published) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".state-*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, StateFile))
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// ReadState reads the state the agent published in dir. An error wraps
// fs.ErrNotExist when there is none yet. A state whose agent is no longer
// running (killed, or between restarts) is not current: it comes back as
// retrying, saying so and what it last said.
func ReadState(dir string) (Published, error) {
	s, err := readStateFile(dir)
	if err != nil {
		return s, err
	}
	if !agentRunning(s.PID) {
		last := string(s.State)
		if s.Error != "" {
			last += ": " + s.Error
		}
		s.State, s.Error = PhaseRetrying, fmt.Sprintf("the registration agent that published this state (pid %d) is no longer running; bootstrap restarts it while it runs (its last state: %s)", s.PID, last)
	}
	return s, nil
}

// readStateFile reads dir/StateFile as it is. The directory belongs to
// the proxy's uid and the reader is root: it follows no symbolic link and
// reads only a small regular file.
func readStateFile(dir string) (Published, error) {
	var s Published
	path := filepath.Join(dir, StateFile)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return s, fmt.Errorf("the registration state %s: %w", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return s, fmt.Errorf("the registration state %s: not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize))
	if err != nil {
		return s, fmt.Errorf("the registration state %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("the registration state %s: %w", path, err)
	}
	return s, nil
}

// agentRunning says whether pid is a running registration agent (its
// command line holds AgentArgs), so that neither a dead agent nor an
// unrelated process that reused its pid passes.
func agentRunning(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	return strings.Contains(string(b), "\x00"+strings.Join(AgentArgs, "\x00")+"\x00")
}
