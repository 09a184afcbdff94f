package supervise

import "time"

// State is where a child is in its life. The order of transitions:
//
//	starting → running → (exit, policy restarts) → backoff → starting → …
//	running → (exit, policy gives up) → exited
//	any → Stop → stopping → exited   (backoff → Stop → exited directly)
type State int

// States of a child.
const (
	StateStarting State = iota // a process is being forked
	StateRunning               // a process is running
	StateBackoff               // the process exited; waiting to restart it
	StateStopping              // Stop was called; waiting for the process group to go
	StateExited                // finished for good; Exited() is closed
)

func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateRunning:
		return "running"
	case StateBackoff:
		return "backoff"
	case StateStopping:
		return "stopping"
	case StateExited:
		return "exited"
	}
	return "unknown"
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds, in the order they happen for one run.
const (
	// EventStarted: a process was started (first start or a restart).
	EventStarted EventKind = iota
	// EventExited: a process exited (and its process group is gone).
	// ExitCode is set; Err is set instead of a PID when a restart could
	// not even be started (ExitCode 127, like a shell).
	EventExited
	// EventRestarting: the policy restarts the child after Backoff.
	EventRestarting
	// EventFinished: the child is finished for good, right before
	// Exited() is closed. Stopped says whether Stop ended it.
	EventFinished
)

func (k EventKind) String() string {
	switch k {
	case EventStarted:
		return "started"
	case EventExited:
		return "exited"
	case EventRestarting:
		return "restarting"
	case EventFinished:
		return "finished"
	}
	return "unknown"
}

// Event is a change in a child's life, given to Spec.OnEvent.
type Event struct {
	Child    string // Spec.Name
	Kind     EventKind
	PID      int           // the process concerned (0 for a failed start)
	ExitCode int           // EventExited, EventFinished: 128+n for signal n
	Err      error         // EventExited: why a restart could not start
	Ran      time.Duration // EventExited: how long the process ran
	Restarts int           // restarts so far (EventRestarting: including this one)
	Backoff  time.Duration // EventRestarting: delay before the restart
	Stopped  bool          // EventExited, EventFinished: the end came from Stop
	Cgroup   string        // EventStarted: the cgroup holding the child's processes, "" without one
}
