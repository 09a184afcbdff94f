//go:build linux

package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

// The test binary doubles as every child program the tests need: with
// envHelper set it runs the named helper instead of the tests.
const envHelper = "MESHEXP_SUPERVISE_HELPER"

// wait is the deadline for anything a test waits for; it only matters
// when something is broken, and then the failure says what was awaited.
const wait = 60 * time.Second

func TestMain(m *testing.M) {
	if name := os.Getenv(envHelper); name != "" {
		os.Exit(runHelper(name, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// self is the test binary, for re-executing it as a helper.
func self(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary: %v", err)
	}
	return exe
}

// helperSpec is a Spec running helper name with args.
func helperSpec(t testing.TB, name string, args ...string) Spec {
	return Spec{
		Name: name,
		Path: self(t),
		Args: args,
		Env:  helperEnv(name),
	}
}

// helperEnv is the environment of a helper: ours, the helper's name, and
// no second of sleep at exit when built with -race (atexit_sleep_ms).
func helperEnv(name string) []string {
	env := append(os.Environ(), envHelper+"="+name)
	if os.Getenv("GORACE") == "" {
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return env
}

// waitExited waits for c to finish for good.
func waitExited(t testing.TB, c *Child) {
	t.Helper()
	select {
	case <-c.Exited():
	case <-time.After(wait):
		t.Fatalf("gave up after %s waiting for child %s to finish (state %s)", wait, c.Name(), c.State())
	}
}

// dead reports whether pid is gone or a zombie (this sandbox's init, like
// some container runtimes', never reaps what is re-parented to it).
func dead(pid int) bool {
	st, err := readProcStat(pid)
	return err != nil || st.state == 'Z' || st.state == 'X'
}

// stopOnCleanup makes sure no child outlives its test, whatever happens.
func stopOnCleanup(t testing.TB, c *Child) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stopping %s in cleanup: %v", c.Name(), err)
		}
	})
}

// logRec is one captured log record, attributes as strings.
type logRec struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// logStore captures records from every logger derived from its handler.
type logStore struct {
	mu   sync.Mutex
	recs []logRec
}

func newLogStore(t testing.TB) (*logStore, *slog.Logger) {
	s := &logStore{}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range s.all() {
				t.Logf("log: %s %q %v", r.level, r.msg, r.attrs)
			}
		}
	})
	return s, slog.New(&captureHandler{store: s})
}

func (s *logStore) all() []logRec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]logRec(nil), s.recs...)
}

// find returns the records that match.
func (s *logStore) find(match func(logRec) bool) []logRec {
	var out []logRec
	for _, r := range s.all() {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// waitLine waits for a line from the named child whose text starts with
// prefix and returns it.
func (s *logStore) waitLine(t testing.TB, child, prefix string) string {
	t.Helper()
	var line string
	eventually.True(t, fmt.Sprintf("a line starting %q from child %s", prefix, child), func() bool {
		got := s.find(func(r logRec) bool {
			return r.attrs["child"] == child && r.attrs["stream"] != "" && strings.HasPrefix(r.msg, prefix)
		})
		if len(got) > 0 {
			line = got[0].msg
		}
		return len(got) > 0
	})
	return line
}

type captureHandler struct {
	store *logStore
	attrs []slog.Attr
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.store.mu.Lock()
	h.store.recs = append(h.store.recs, rec)
	h.store.mu.Unlock()
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{store: h.store, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *captureHandler) WithGroup(string) slog.Handler { return h }

// eventLog collects a child's events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// kinds is the sequence of event kinds, for comparing with what a test
// expects, e.g. "started exited restarting started exited finished".
func (l *eventLog) kinds() string {
	var ks []string
	for _, e := range l.all() {
		ks = append(ks, e.Kind.String())
	}
	return strings.Join(ks, " ")
}

// procStatusField returns a field of /proc/PID/status, e.g. "Uid".
func procStatusField(pid int, field string) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// requireRoot skips tests that need root.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to %s; run the tests as root (CI does)", why)
	}
}
