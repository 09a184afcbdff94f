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
