//go:build linux

package supervise

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

func TestRestartPolicies(t *testing.T) {
	// Backoff 1ms doubling to 4ms, never reset (ResetAfter is an hour), so
	// the delays the events report are exact.
	policy := func(m Mode, max int) Policy {
		return Policy{Mode: m, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, MaxRestarts: max, ResetAfter: time.Hour}
	}
	tests := []struct {
		name         string
		policy       Policy
		failures     int // runs that exit with failCode before runs exit 0
		failCode     int
		wantEvents   string
		wantCode     int
		wantRestarts int
		wantBackoffs []time.Duration
	}{
		{
			name:       "never does not restart a crash",
			policy:     policy(ModeNever, 0),
			failures:   1,
			failCode:   3,
			wantEvents: "started exited finished",
			wantCode:   3,
		},
		{
			name:         "on-failure restarts a crash, then stops at a clean exit",
			policy:       policy(ModeOnFailure, 0),
			failures:     3,
			failCode:     3,
			wantEvents:   "started exited restarting started exited restarting started exited restarting started exited finished",
			wantCode:     0,
			wantRestarts: 3,
			wantBackoffs: []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond},
		},
		{
			name:       "on-failure does not restart a clean exit",
			policy:     policy(ModeOnFailure, 0),
			wantEvents: "started exited finished",
		},
		{
			name:         "on-failure gives up at MaxRestarts with the last failure's code",
			policy:       policy(ModeOnFailure, 2),
			failures:     10,
			failCode:     4,
			wantEvents:   "started exited restarting started exited restarting started exited finished",
			wantCode:     4,
			wantRestarts: 2,
			wantBackoffs: []time.Duration{time.Millisecond, 2 * time.Millisecond},
		},
		{
			name:         "always restarts clean exits up to MaxRestarts",
			policy:       policy(ModeAlways, 4),
			wantEvents:   "started exited restarting started exited restarting started exited restarting started exited restarting started exited finished",
			wantCode:     0,
			wantRestarts: 4,
			wantBackoffs: []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, logger := newLogStore(t)
			events := &eventLog{}
			count := filepath.Join(t.TempDir(), "runs")
			spec := helperSpec(t, "counter", count, strconv.Itoa(tt.failures), strconv.Itoa(tt.failCode))
			spec.Restart = tt.policy
			spec.OnEvent = events.add
			c, err := Start(context.Background(), spec, logger)
			if err != nil {
				t.Fatal(err)
			}
			stopOnCleanup(t, c)
			waitExited(t, c)
			if got := events.kinds(); got != tt.wantEvents {
				t.Errorf("events\n got %q\nwant %q", got, tt.wantEvents)
			}
			if got := c.ExitCode(); got != tt.wantCode {
				t.Errorf("ExitCode() = %d, want %d", got, tt.wantCode)
			}
			if got := c.Restarts(); got != tt.wantRestarts {
				t.Errorf("Restarts() = %d, want %d", got, tt.wantRestarts)
			}
			var backoffs []time.Duration
			for _, e := range events.all() {
				if e.Kind == EventRestarting {
					backoffs = append(backoffs, e.Backoff)
				}
			}
			if !slices.Equal(backoffs, tt.wantBackoffs) {
				t.Errorf("backoffs %v, want %v", backoffs, tt.wantBackoffs)
			}
			runs, _ := os.ReadFile(count)
			if got, want := strings.TrimSpace(string(runs)), strconv.Itoa(tt.wantRestarts+1); got != want {
				t.Errorf("the child ran %s times, want %s", got, want)
			}
		})
	}
}

func TestStopDuringBackoffCancelsTheRestart(t *testing.T) {
	_, logger := newLogStore(t)
	events := &eventLog{}
	spec := helperSpec(t, "exit", "3")
	spec.Restart = Policy{Mode: ModeAlways, MinBackoff: time.Hour}
	spec.OnEvent = events.add
	c, err := Start(context.Background(), spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, c)
	eventually.True(t, "the child to be in backoff", func() bool { return c.State() == StateBackoff })
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := events.kinds(), "started exited restarting finished"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if c.Restarts() != 0 || c.ExitCode() != 3 || c.State() != StateExited {
		t.Errorf("after Stop: restarts %d, exit code %d, state %s; want 0, 3, exited", c.Restarts(), c.ExitCode(), c.State())
	}
}

func TestARestartThatCannotStartCountsAsAFailure(t *testing.T) {
	_, logger := newLogStore(t)
	script := filepath.Join(t.TempDir(), "crash.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	events := &eventLog{}
	spec := Spec{
		Name:    "crash",
		Path:    script,
		Restart: Policy{Mode: ModeOnFailure, MinBackoff: time.Millisecond, MaxRestarts: 2},
		OnEvent: func(e Event) {
			events.add(e)
			if e.Kind == EventRestarting {
				os.Remove(script) // the executable vanishes before the restart
			}
		},
	}
	c, err := Start(context.Background(), spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, c)
	waitExited(t, c)
	if got, want := events.kinds(), "started exited restarting exited restarting exited finished"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	if got := c.ExitCode(); got != 127 {
		t.Errorf("ExitCode() = %d, want 127", got)
	}
	for _, e := range events.all()[3:] {
		if e.Kind == EventExited && (e.Err == nil || e.PID != 0) {
			t.Errorf("exit event of a failed restart %+v, want an error and no pid", e)
		}
	}
}
