package main

import (
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// expBackoff is linkerd2-proxy's jittered exponential backoff
// (linkerd/exp-backoff/src/lib.rs): the n-th wait is min·2ⁿ capped at max,
// plus a uniform random share of up to jitter·base, never past max.
type expBackoff struct {
	min, max time.Duration
	jitter   float64
}

// defaultSPIREBackoff is DEFAULT_SPIRE_BACKOFF in linkerd/app/src/env.rs:
// 100ms to 1s with 10% jitter, used between Workload API retries.
var defaultSPIREBackoff = expBackoff{min: 100 * time.Millisecond, max: time.Second, jitter: 0.1}

// newExpBackoff checks a backoff as ExponentialBackoff::try_new does.
func newExpBackoff(min, max time.Duration, jitter float64) (expBackoff, error) {
	switch {
	case min > max:
		return expBackoff{}, errors.New("invalid backoff: maximum must not be less than minimum")
	case max == 0:
		return expBackoff{}, errors.New("invalid backoff: maximum must be non-zero")
	case jitter < 0:
		return expBackoff{}, errors.New("invalid backoff: jitter must not be negative")
	case jitter > 100:
		return expBackoff{}, errors.New("invalid backoff: jitter must not be greater than 100")
	case math.IsNaN(jitter) || math.IsInf(jitter, 0):
		return expBackoff{}, errors.New("invalid backoff: jitter must be finite")
	}
	return expBackoff{min, max, jitter}, nil
}

func (b expBackoff) base(n int) time.Duration {
	d := b.min
	for i := 0; i < n && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

func (b expBackoff) wait(n int) time.Duration {
	base := b.base(n)
	if b.jitter == 0 {
		return base
	}
	j := time.Duration(rand.Float64() * b.jitter * float64(base))
	return base + min(j, b.max-base)
}

// NewBackoff makes expBackoff a go-spiffe workloadapi.BackoffStrategy, so
// the Workload API watch retries on the proxy's schedule instead of
// go-spiffe's default (1s, 2s, … up to 30s).
func (b expBackoff) NewBackoff() workloadapi.Backoff { return &expBackoffState{b: b} }

type expBackoffState struct {
	b expBackoff
	n int
}

func (s *expBackoffState) Next() time.Duration {
	d := s.b.wait(s.n)
	if s.b.base(s.n) < s.b.max {
		s.n++
	}
	return d
}

func (s *expBackoffState) Reset() { s.n = 0 }
