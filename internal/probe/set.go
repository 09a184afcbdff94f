package probe

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// ReasonProbeFailed is the Ready condition's reason while a probe fails.
const ReasonProbeFailed = "ProbeFailed"

// Result is one probe's state.
type Result struct {
	Probe     string    `json:"probe"`
	Passing   bool      `json:"passing"`
	Message   string    `json:"message,omitempty"` // the last failure
	LastProbe time.Time `json:"lastProbe,omitzero"`
	// Successes and Failures are the current run of equal results.
	Successes int `json:"successes"`
	Failures  int `json:"failures"`
}

// Set runs probes on their timing and tracks whether every one passes.
// A probe starts as failing (Kubernetes' readiness starts false) and
// flips after SuccessThreshold passes in a row, back after
// FailureThreshold failures in a row.
type Set struct {
	specs   []Spec
	timing  Timing
	run     Runner
	logger  *slog.Logger
	changed chan struct{}

	mu      sync.Mutex
	results []Result
	lastAt  time.Time // the probe that caused the last transition
}

// NewSet returns a Set for specs; Run starts it.
func NewSet(specs []Spec, t Timing, r Runner, logger *slog.Logger) *Set {
	s := &Set{specs: specs, timing: t.withDefaults(), run: r, logger: logger, changed: make(chan struct{}, 1)}
	for _, sp := range specs {
		s.results = append(s.results, Result{Probe: sp.Text, Message: "not probed yet"})
	}
	return s
}

// Changed receives after every transition of any probe.
func (s *Set) Changed() <-chan struct{} { return s.changed }

// Run probes until ctx ends, each probe on its own period.
func (s *Set) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := range s.specs {
		wg.Add(1)
		go func() { defer wg.Done(); s.loop(ctx, i) }()
	}
	wg.Wait()
}

func (s *Set) loop(ctx context.Context, i int) {
	if d := s.timing.InitialDelay; d > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
	tick := time.NewTicker(s.timing.Period)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, s.timing.Timeout)
		err := s.run.Once(pctx, s.specs[i])
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.record(i, err, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *Set) record(i int, err error, now time.Time) {
	s.mu.Lock()
	r := &s.results[i]
	r.LastProbe = now
	was := r.Passing
	if err == nil {
		r.Successes++
		r.Failures = 0
		if !r.Passing && r.Successes >= s.timing.SuccessThreshold {
			r.Passing, r.Message = true, ""
		}
	} else {
		r.Failures++
		r.Successes = 0
		if !r.Passing || r.Failures >= s.timing.FailureThreshold {
			r.Passing, r.Message = false, err.Error()
		}
	}
	flipped := was != r.Passing
	if flipped {
		s.lastAt = now
	}
	s.mu.Unlock()
	if flipped {
		s.logger.Info("workload probe changed", "probe", s.specs[i].Text, "passing", !was, "err", err)
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
}

// Status says whether every probe passes; when one does not, the reason
// and message name it: ProbeFailed, "GET http://127.0.0.1:8000/healthz: 503".
// at is the time of the probe that caused the last transition.
func (s *Set) Status() (ok bool, reason, message string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.results {
		if !r.Passing {
			return false, ReasonProbeFailed, r.Message, s.lastAt
		}
	}
	return true, "", "", s.lastAt
}

// Results is a copy of every probe's state.
func (s *Set) Results() []Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Result(nil), s.results...)
}
