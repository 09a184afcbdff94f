package supervise

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Spec describes one supervised child process.
type Spec struct {
	// Name identifies the child in logs and events ("spire-agent",
	// "proxy", "workload"). Required.
	Name string
	// Path is the executable. A name without a slash is looked up in
	// meshexp's PATH when Start is called.
	Path string
	// Args are the arguments after argv[0] (argv[0] is Path).
	Args []string
	// Env is the child's complete environment. Nil inherits meshexp's
	// environment, like os/exec; pass an empty non-nil slice for none.
	// When a variable appears twice the last one wins, as with os/exec,
	// so overrides can be appended.
	Env []string
	// Dir is the working directory; empty means meshexp's.
	Dir string
	// Credential, when set, runs the child as that uid/gid. Groups left nil
	// means no supplementary groups (they are cleared, not inherited from
	// meshexp, which is usually root). Needs root (CAP_SETUID/CAP_SETGID).
	Credential *syscall.Credential

	// Stdout and Stderr say where the child's output goes:
	//   - nil: each line is logged to the logger given to Start, with the
	//     attributes child=Name, stream=stdout|stderr and pid;
	//   - an *os.File (os.Stdout, say): the descriptor is handed to the
	//     child as is, nothing is copied;
	//   - io.Discard: the child gets /dev/null;
	//   - any other writer: the raw bytes are copied to it.
	Stdout, Stderr io.Writer
	// LineLevel, when set, gives the level each logged line is logged at
	// (a child that prints its own levels, like the proxy); default Info.
	LineLevel func(line string) slog.Level

	// StopSignal is sent to the child's process group by Stop. Default
	// SIGTERM.
	StopSignal syscall.Signal
	// Grace is how long Stop waits after StopSignal before SIGKILL.
	// Default DefaultGrace.
	Grace time.Duration

	// Cgroup, when set, is the name of a cgroup (below meshexp's own) that
	// holds every process the child ever runs, so that none escapes Stop
	// by leaving the process group (setsid, a daemon's double fork). A
	// cgroup of that name left by a crashed meshexp is emptied first. When
	// no cgroup can be made (no writable hierarchy, as in most containers)
	// the process group alone is used and a warning says so.
	Cgroup string

	// Restart says what happens when the child exits without Stop.
	Restart Policy

	// OnEvent, if set, is called for every change worth telling: started,
	// exited, restarting, finished. It is called from the goroutine that
	// owns the child, in order; it must return quickly and must not call
	// Stop itself (start a goroutine for that).
	OnEvent func(Event)
}

// Policy is a restart policy with exponential backoff.
type Policy struct {
	Mode Mode
	// MinBackoff is the delay before the first restart; it doubles on each
	// consecutive restart up to MaxBackoff. Defaults DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxRestarts is how many restarts are allowed over the child's life;
	// 0 means unlimited.
	MaxRestarts int
	// ResetAfter: a run that lasted at least this long is considered
	// healthy, and the next restart waits MinBackoff again. Default
	// DefaultResetAfter.
	ResetAfter time.Duration
}

// Mode is a restart mode: never, on-failure or always.
type Mode string

// Restart modes. The zero value means ModeNever.
const (
	ModeNever     Mode = "never"
	ModeOnFailure Mode = "on-failure" // restart when the exit code is not 0 (a signal counts as a failure)
	ModeAlways    Mode = "always"
)

// Defaults for the zero values of Spec and Policy.
const (
	DefaultGrace      = 10 * time.Second
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	DefaultResetAfter = 30 * time.Second
)

// ParseMode parses a restart mode as written in flags and environment
// variables: never, on-failure or always.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.TrimSpace(s)); m {
	case ModeNever, ModeOnFailure, ModeAlways:
		return m, nil
	}
	return "", fmt.Errorf("restart mode %q is not one of never, on-failure, always", s)
}

// restarts reports whether an exit with code calls for a restart.
func (m Mode) restarts(code int) bool {
	switch m {
	case ModeAlways:
		return true
	case ModeOnFailure:
		return code != 0
	}
	return false
}

// backoff is the delay before restart number n (0-based count of
// consecutive restarts): MinBackoff doubled n times, capped at MaxBackoff.
func (p Policy) backoff(n int) time.Duration {
	d := p.MinBackoff
	for i := 0; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// normalize fills in defaults and checks the spec; the error names the
// field and says what is wrong.
func (s Spec) normalize() (Spec, error) {
	var errs []error
	if strings.TrimSpace(s.Name) == "" {
		errs = append(errs, errors.New("empty Spec.Name: name the child, for logs and events"))
	}
	if s.Path == "" {
		errs = append(errs, fmt.Errorf("child %q: empty Spec.Path: give the executable to run", s.Name))
	} else if !strings.Contains(s.Path, "/") {
		p, err := exec.LookPath(s.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("child %q: finding %q in PATH: %w", s.Name, s.Path, err))
		}
		s.Path = p
	}
	if s.Env != nil {
		s.Env = dedupEnv(s.Env)
	}
	if s.StopSignal == 0 {
		s.StopSignal = syscall.SIGTERM
	}
	if s.Grace < 0 {
		errs = append(errs, fmt.Errorf("child %q: negative Spec.Grace (%s): use 0 for the default", s.Name, s.Grace))
	} else if s.Grace == 0 {
		s.Grace = DefaultGrace
	}
	if s.Credential != nil && s.Credential.Groups == nil {
		// Explicit empty list: setgroups(0) rather than whatever a
		// future default might be.
		c := *s.Credential
		c.Groups = []uint32{}
		s.Credential = &c
	}
	p, err := s.Restart.normalize()
	if err != nil {
		errs = append(errs, fmt.Errorf("child %q: %w", s.Name, err))
	}
	s.Restart = p
	return s, errors.Join(errs...)
}

func (p Policy) normalize() (Policy, error) {
	var errs []error
	if p.Mode == "" {
		p.Mode = ModeNever
	}
	if _, err := ParseMode(string(p.Mode)); err != nil {
		errs = append(errs, fmt.Errorf("restart policy: %w", err))
	}
	if p.MinBackoff == 0 {
		p.MinBackoff = DefaultMinBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = max(DefaultMaxBackoff, p.MinBackoff)
	}
	if p.ResetAfter == 0 {
		p.ResetAfter = DefaultResetAfter
	}
	switch {
	case p.MinBackoff < 0 || p.MaxBackoff < 0 || p.ResetAfter < 0:
		errs = append(errs, fmt.Errorf("restart policy: negative MinBackoff (%s), MaxBackoff (%s) or ResetAfter (%s)", p.MinBackoff, p.MaxBackoff, p.ResetAfter))
	case p.MaxBackoff < p.MinBackoff:
		errs = append(errs, fmt.Errorf("restart policy: MaxBackoff (%s) is below MinBackoff (%s)", p.MaxBackoff, p.MinBackoff))
	}
	if p.MaxRestarts < 0 {
		errs = append(errs, fmt.Errorf("restart policy: negative MaxRestarts (%d): use 0 for unlimited", p.MaxRestarts))
	}
	return p, errors.Join(errs...)
}

// dedupEnv keeps the last of each variable, in the order of those last
// occurrences (the C library's getenv would see the first one otherwise).
func dedupEnv(env []string) []string {
	seen := make(map[string]bool, len(env))
	out := make([]string, 0, len(env))
	for i := len(env) - 1; i >= 0; i-- {
		k, _, _ := strings.Cut(env[i], "=")
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, env[i])
	}
	slices.Reverse(out)
	return out
}
