// Package check runs meshexp's health checks: an ordered list of checks in
// categories (host, identity, cluster), each with a one-line hint, whose
// results are streamed as they finish (✓ passed, ‼ warning, × failed).
// Checks only read: they never change the host.
//
// The shape follows linkerd2's pkg/healthcheck: a category holds checks in
// order; a check is fatal unless marked as a warning; a fatal failure
// skips the rest of its category when later checks depend on it.
package check

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Status is a check's outcome.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warning"
	Fail Status = "error"
	Skip Status = "skipped"
)

// Categories, in the order they run.
const (
	Host     = "host"
	Identity = "identity"
	Cluster  = "cluster"
)

// Check is one thing to verify.
type Check struct {
	Category    string
	Description string // what is checked, e.g. "the trust anchor is valid"
	Hint        string // what to do when it fails, one line
	// Warning makes a failure a warning: the host works, but not as well.
	Warning bool
	// Stop skips the category's remaining checks when this one fails
	// (later ones depend on it).
	Stop bool
	// Needs names the Description of an earlier check that must have
	// passed (or warned); otherwise this one is skipped.
	Needs string
	// Run returns a short detail on success ("expires in 364 days"), or an
	// error. Warnf errors are warnings even when the check is fatal;
	// Skipf errors mean the check does not apply.
	Run func(ctx context.Context) (string, error)
	// Timeout bounds Run; default 10s.
	Timeout time.Duration
}

// Result is what a check found.
type Result struct {
	Category    string `json:"category"`
	Description string `json:"description"`
	Status      Status `json:"status"`
	Detail      string `json:"detail,omitempty"`
	Error       string `json:"error,omitempty"`
	Hint        string `json:"hint,omitempty"`
}

type warnError struct{ err error }

func (w *warnError) Error() string { return w.err.Error() }
func (w *warnError) Unwrap() error { return w.err }

type skipError struct{ reason string }

func (s *skipError) Error() string { return s.reason }

// Warnf returns an error that makes the check a warning.
func Warnf(format string, args ...any) error {
	return &warnError{fmt.Errorf(format, args...)}
}

// Skipf returns an error that marks the check as not applying.
func Skipf(format string, args ...any) error {
	return &skipError{fmt.Sprintf(format, args...)}
}

// Run runs checks in order and calls report after each. It returns every
// result and whether any check failed (warnings and skips do not count).
func Run(ctx context.Context, checks []Check, report func(Result)) ([]Result, bool) {
	var out []Result
	failed := false
	stopped := map[string]string{}
	status := map[string]Status{}
	for _, c := range checks {
		r := Result{Category: c.Category, Description: c.Description}
		why, stop := stopped[c.Category]
		if c.Needs != "" && status[c.Needs] != OK && status[c.Needs] != Warn {
			why, stop = c.Needs, true
		}
		if stop {
			r.Status, r.Detail = Skip, "skipped: needs "+why
		} else {
			r = runOne(ctx, c)
			if r.Status == Fail {
				failed = true
				if c.Stop {
					stopped[c.Category] = c.Description
				}
			}
		}
		status[c.Description] = r.Status
		out = append(out, r)
		if report != nil {
			report(r)
		}
	}
	return out, failed
}

func runOne(ctx context.Context, c Check) Result {
	r := Result{Category: c.Category, Description: c.Description}
	d := c.Timeout
	if d <= 0 {
		d = 10 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	detail, err := c.Run(cctx)
	r.Detail = detail
	var w *warnError
	var s *skipError
	switch {
	case err == nil:
		r.Status = OK
	case errors.As(err, &s):
		r.Status, r.Detail = Skip, s.reason
	case errors.As(err, &w) || c.Warning:
		r.Status, r.Error, r.Hint = Warn, err.Error(), c.Hint
	default:
		r.Status, r.Error, r.Hint = Fail, err.Error(), c.Hint
	}
	return r
}
