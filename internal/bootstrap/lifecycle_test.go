package bootstrap

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fakeChild is a child whose exit the test decides.
type fakeChild struct {
	name   string
	rec    *recorder
	exited chan struct{}
	once   sync.Once
	code   int
}

func (c *fakeChild) Exited() <-chan struct{} { return c.exited }
func (c *fakeChild) ExitCode() int           { return c.code }
func (c *fakeChild) exit(code int)           { c.code = code; c.once.Do(func() { close(c.exited) }) }
func (c *fakeChild) Stop(context.Context) error {
	c.rec.add("stop " + c.name)
	c.exit(143)
	return nil
}

type recorder struct {
	mu    sync.Mutex
	steps []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.steps = append(r.steps, s); r.mu.Unlock() }
func (r *recorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.steps...)
}

type world struct {
	rec             *recorder
	proxy, workload *fakeChild
	failAt          string
	readyBlocks     bool
	workloadStarted chan struct{}
	lifecycle       *Lifecycle
}

func newWorld(failAt string) *world {
	w := &world{rec: &recorder{}, failAt: failAt, workloadStarted: make(chan struct{})}
	w.proxy = &fakeChild{name: "proxy", rec: w.rec, exited: make(chan struct{})}
	w.workload = &fakeChild{name: "workload", rec: w.rec, exited: make(chan struct{})}
	undo := func(name string) func(context.Context) error {
		return func(context.Context) error { w.rec.add("undo " + name); return nil }
	}
	fail := func(name string) error {
		w.rec.add("start " + name)
		if w.failAt == name {
			return errors.New(name + " failed")
		}
		return nil
	}
	w.lifecycle = &Lifecycle{
		ReadyTimeout:    time.Minute,
		TeardownTimeout: time.Minute,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Phases: Phases{
			Identity: func(context.Context) (func(context.Context) error, error) { return undo("identity"), fail("identity") },
			Intercept: func(context.Context) (func(context.Context) error, error) {
				return undo("interception"), fail("interception")
			},
			Proxy: func(context.Context) (Child, error) {
				if err := fail("proxy"); err != nil {
					return nil, err
				}
				return w.proxy, nil
			},
			Ready: func(ctx context.Context) error {
				if err := fail("ready"); err != nil {
					return err
				}
				if w.readyBlocks {
					<-ctx.Done()
					return ctx.Err()
				}
				return nil
			},
			Workload: func(context.Context) (Child, error) {
				if err := fail("workload"); err != nil {
					return nil, err
				}
				close(w.workloadStarted)
				return w.workload, nil
			},
		},
	}
	return w
}

func TestPhasesRunInOrderAndTeardownReversesThem(t *testing.T) {
	w := newWorld("")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.lifecycle.Run(ctx) }()
	<-w.workloadStarted
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("clean shutdown returned %v", err)
	}
	want := []string{"start identity", "start interception", "start proxy", "start ready", "start workload",
		"stop workload", "stop proxy", "undo interception", "undo identity"}
	if got := w.rec.get(); !reflect.DeepEqual(got, want) {
		t.Errorf("steps:\n got %v\nwant %v", got, want)
	}
}

func TestAFailedPhaseUndoesOnlyWhatWasDone(t *testing.T) {
	tests := []struct {
		failAt string
		want   []string
	}{
		{"identity", []string{"start identity", "undo identity"}},
		{"interception", []string{"start identity", "start interception", "undo interception", "undo identity"}},
		{"proxy", []string{"start identity", "start interception", "start proxy", "undo interception", "undo identity"}},
		{"ready", []string{"start identity", "start interception", "start proxy", "start ready", "stop proxy", "undo interception", "undo identity"}},
		{"workload", []string{"start identity", "start interception", "start proxy", "start ready", "start workload", "stop proxy", "undo interception", "undo identity"}},
	}
	for _, tc := range tests {
		t.Run("failing at "+tc.failAt, func(t *testing.T) {
			w := newWorld(tc.failAt)
			err := w.lifecycle.Run(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			if got := w.rec.get(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("steps:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestTheProxyDyingEndsTheRunWithItsStatus(t *testing.T) {
	w := newWorld("")
	done := make(chan error)
	go func() { done <- w.lifecycle.Run(context.Background()) }()
	<-w.workloadStarted
	w.proxy.exit(137)
	var exit *ExitError
	if err := <-done; !errors.As(err, &exit) || exit.Who != "proxy" || exit.Code != 137 {
		t.Fatalf("got %v, want the proxy's status 137", err)
	}
	if got := w.rec.get(); got[len(got)-1] != "undo identity" {
		t.Errorf("teardown incomplete: %v", got)
	}
}

func TestTheWorkloadExitingEndsTheRunWithItsStatus(t *testing.T) {
	w := newWorld("")
	done := make(chan error)
	go func() { done <- w.lifecycle.Run(context.Background()) }()
	<-w.workloadStarted
	w.workload.exit(3)
	var exit *ExitError
	if err := <-done; !errors.As(err, &exit) || exit.Who != "workload" || exit.Code != 3 {
		t.Fatalf("got %v, want the workload's status 3", err)
	}
}

func TestTheProxyDyingBeforeReadyEndsTheWait(t *testing.T) {
	w := newWorld("")
	w.readyBlocks = true
	done := make(chan error)
	go func() { done <- w.lifecycle.Run(context.Background()) }()
	for len(w.rec.get()) < 4 {
		time.Sleep(time.Millisecond)
	}
	w.proxy.exit(1)
	var exit *ExitError
	if err := <-done; !errors.As(err, &exit) || exit.Who != "proxy" {
		t.Fatalf("got %v, want the proxy's exit", err)
	}
}

// blockingWorld is a world whose phase named at blocks until ctx ends, as
// SPIRE, the SVID or /ready do while they are awaited, and fails then with
// ctx's error, as they do.
func blockingWorld(at string) (*world, chan struct{}) {
	w := newWorld("")
	reached := make(chan struct{})
	block := func(ctx context.Context) error {
		close(reached)
		<-ctx.Done()
		return ctx.Err()
	}
	ph := &w.lifecycle.Phases
	switch at {
	case "identity":
		orig := ph.Identity
		ph.Identity = func(ctx context.Context) (func(context.Context) error, error) {
			u, _ := orig(ctx)
			return u, block(ctx)
		}
	case "interception":
		orig := ph.Intercept
		ph.Intercept = func(ctx context.Context) (func(context.Context) error, error) {
			u, _ := orig(ctx)
			return u, block(ctx)
		}
	case "ready":
		orig := ph.Ready
		ph.Ready = func(ctx context.Context) error {
			orig(ctx)
			return block(ctx)
		}
	}
	return w, reached
}

func TestSIGTERMDuringAnyPhaseIsACleanShutdownAndNoLaterPhaseStarts(t *testing.T) {
	tests := []struct {
		at   string
		want []string
	}{
		{"identity", []string{"start identity", "undo identity"}},
		{"interception", []string{"start identity", "start interception", "undo interception", "undo identity"}},
		{"ready", []string{"start identity", "start interception", "start proxy", "start ready", "stop proxy", "undo interception", "undo identity"}},
	}
	for _, tc := range tests {
		t.Run("while waiting in "+tc.at, func(t *testing.T) {
			w, reached := blockingWorld(tc.at)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- w.lifecycle.Run(ctx) }()
			<-reached
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("shutdown returned %v, want nil (a clean shutdown)", err)
			}
			if got := w.rec.get(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("steps:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestACancelledRunStartsNothing(t *testing.T) {
	w := newWorld("")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.lifecycle.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.rec.get(); len(got) != 0 {
		t.Errorf("steps after cancellation: %v", got)
	}
}

func TestTheProxyExitingZeroUnaskedIsAFailure(t *testing.T) {
	w := newWorld("")
	done := make(chan error)
	go func() { done <- w.lifecycle.Run(context.Background()) }()
	<-w.workloadStarted
	w.proxy.exit(0)
	var exit *ExitError
	if err := <-done; !errors.As(err, &exit) || exit.Who != "proxy" {
		t.Fatalf("got %v, want the proxy's end", err)
	}
	if exit.Status() == 0 {
		t.Error("meshexp would exit 0 after the proxy ended on its own")
	}
}

func TestExitStatusesNeverBorrowMeshexpsOwnCodes(t *testing.T) {
	tests := []struct {
		name string
		err  ExitError
		want int
	}{
		{"a workload that finished well is 0", ExitError{Who: "workload", Code: 0}, 0},
		{"a workload's status 5 is 5", ExitError{Who: "workload", Code: 5}, 5},
		{"a workload's status 2 is 1, not invalid input", ExitError{Who: "workload", Code: 2}, ExitFailure},
		{"a workload's status 3 is 1, not another instance", ExitError{Who: "workload", Code: 3}, ExitFailure},
		{"a workload killed by SIGKILL is 137", ExitError{Who: "workload", Code: 137}, 137},
		{"a workload that daemonized and exited 0 is 1", ExitError{Who: "workload", Code: 0, Escaped: true}, ExitFailure},
		{"the proxy exiting 0 unasked is 1", ExitError{Who: "proxy", Code: 0}, ExitFailure},
		{"the proxy's status 64 is 64", ExitError{Who: "proxy", Code: 64}, 64},
		{"the proxy's status 2 is 1", ExitError{Who: "proxy", Code: 2}, ExitFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Status(); got != tc.want {
				t.Errorf("Status() = %d, want %d", got, tc.want)
			}
		})
	}
}
