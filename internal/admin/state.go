// Package admin is meshexp's local admin endpoint: /metrics in the
// Prometheus text format (written by hand: see metrics.go), /live, /ready and
// /status (the JSON `meshexp status` reads). State is what bootstrap
// records as it runs; everything is read at scrape time.
package admin

import (
	"sync"
	"time"
)

// ChildInfo reads one supervised child's live state.
type ChildInfo interface {
	PID() int
	Restarts() int
	ExitCode() int
	Exited() <-chan struct{}
}

// Status is a snapshot of the host, served as /status.
type Status struct {
	Started      time.Time    `json:"started"`
	Ready        bool         `json:"ready"`
	Phases       []Phase      `json:"phases"`
	Children     []Child      `json:"children"`
	Identity     Identity     `json:"identity"`
	Rules        []Rules      `json:"rules,omitempty"`
	Registration Registration `json:"registration"`
	Probes       []Probe      `json:"probes,omitempty"`
}

// Phase is one lifecycle phase of the last start.
type Phase struct {
	Name     string  `json:"name"`
	Seconds  float64 `json:"seconds"`
	Error    string  `json:"error,omitempty"`
	Finished bool    `json:"finished"`
}

// Child is one supervised process.
type Child struct {
	Name     string    `json:"name"`
	PID      int       `json:"pid"`
	Up       bool      `json:"up"`
	Started  time.Time `json:"started"`
	Restarts int       `json:"restarts"`
	LastExit *int      `json:"lastExit,omitempty"`
}

// Identity is the workload's SPIFFE ID and its SVID's expiry.
type Identity struct {
	SPIFFEID string    `json:"spiffeID"`
	Expiry   time.Time `json:"expiry,omitzero"`
}

// Rules counts the interception rules installed in one family.
type Rules struct {
	Family string `json:"family"`
	Count  int    `json:"count"`
}

// Registration is the ExternalWorkload's state as last written.
type Registration struct {
	Enabled   bool      `json:"enabled"`
	Ready     string    `json:"ready,omitempty"` // True, False
	Reason    string    `json:"reason,omitempty"`
	Message   string    `json:"message,omitempty"`
	LastWrite time.Time `json:"lastWrite,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	// Controller is set when the host registers through meshexp's
	// controller (--controller-addr) rather than directly.
	Controller *Controller `json:"controller,omitempty"`
}

// Controller is the registration through meshexp's controller as the
// registration agent last published it (fleet.Published).
type Controller struct {
	Addr  string `json:"addr"`  // host:port
	Group string `json:"group"` // the ExternalGroup, namespace/name
	// State is connecting, registered, refused (the controller refused the
	// host, or the host the controller: Error says what to fix) or
	// retrying (unreachable, or the stream broke).
	State            string `json:"state"`
	ExternalWorkload string `json:"externalWorkload,omitempty"` // namespace/name, as the controller bound it
	// Error is the controller's refusal or the connection's error, or why
	// there is no state yet.
	Error          string    `json:"error,omitempty"`
	LastRegistered time.Time `json:"lastRegistered,omitzero"`
	Ready          *bool     `json:"ready,omitempty"` // the readiness last reported
	Changed        time.Time `json:"changed,omitzero"`
	AgentPID       int       `json:"agentPID,omitempty"`
}

// Probe is one workload probe's state.
type Probe struct {
	Probe     string    `json:"probe"`
	Passing   bool      `json:"passing"`
	Message   string    `json:"message,omitempty"`
	LastProbe time.Time `json:"lastProbe,omitzero"`
}

// State collects what bootstrap reports. Its methods are safe for
// concurrent use.
type State struct {
	mu       sync.Mutex
	started  time.Time
	phases   []Phase
	children []childEntry
	identity Identity
	rules    []Rules
	reg      Registration
	probes   func() []Probe
	ctl      func() Controller
	ready    func() bool
	extra    []func() []byte // more exposition text (the DNS forwarder's)
}

type childEntry struct {
	name    string
	started time.Time
	info    ChildInfo
}

// NewState returns an empty State started now.
func NewState() *State { return &State{started: time.Now()} }

// PhaseDone records a phase's duration (err nil when it succeeded).
func (s *State) PhaseDone(name string, d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := Phase{Name: name, Seconds: d.Seconds(), Finished: err == nil}
	if err != nil {
		p.Error = err.Error()
	}
	s.phases = append(s.phases, p)
}

// AddChild records a supervised child.
func (s *State) AddChild(name string, c ChildInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.children = append(s.children, childEntry{name, time.Now(), c})
}

// SetIdentity records the SPIFFE ID and the SVID's expiry.
func (s *State) SetIdentity(id string, expiry time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identity = Identity{SPIFFEID: id, Expiry: expiry}
}

// SetRules records the rules installed per family.
func (s *State) SetRules(r []Rules) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = r
}

// SetRegistration updates the registration state.
func (s *State) SetRegistration(f func(*Registration)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.reg)
}

// SetController sets the source of the controller registration's state.
func (s *State) SetController(f func() Controller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctl = f
}

// SetProbes sets the source of the probes' results.
func (s *State) SetProbes(f func() []Probe) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.probes = f
}

// Probes returns the probes' results (none when no source is set).
func (s *State) Probes() []Probe {
	s.mu.Lock()
	f := s.probes
	s.mu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}

// SetReady sets what /ready answers. f must not call Snapshot.
func (s *State) SetReady(f func() bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = f
}

// Snapshot returns the current Status.
func (s *State) Snapshot() Status {
	s.mu.Lock()
	st := Status{
		Started: s.started, Phases: append([]Phase(nil), s.phases...), Identity: s.identity,
		Rules: append([]Rules(nil), s.rules...), Registration: s.reg,
	}
	children := append([]childEntry(nil), s.children...)
	probes, ready, ctl := s.probes, s.ready, s.ctl
	s.mu.Unlock()
	if ctl != nil {
		c := ctl()
		st.Registration.Controller = &c
	}
	for _, c := range children {
		ch := Child{Name: c.name, PID: c.info.PID(), Started: c.started, Restarts: c.info.Restarts(), Up: true}
		select {
		case <-c.info.Exited():
			code := c.info.ExitCode()
			ch.Up, ch.LastExit = false, &code
		default:
		}
		st.Children = append(st.Children, ch)
	}
	if probes != nil {
		st.Probes = probes()
	}
	if ready != nil {
		st.Ready = ready()
	}
	return st
}
