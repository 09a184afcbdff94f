package supervise

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseModeAcceptsTheThreeModesOnly(t *testing.T) {
	for in, want := range map[string]Mode{"never": ModeNever, "on-failure": ModeOnFailure, " always ": ModeAlways} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Always", "on_failure", "unless-stopped"} {
		if _, err := ParseMode(in); err == nil || !strings.Contains(err.Error(), "never, on-failure, always") {
			t.Errorf("ParseMode(%q) error %v, want one listing the modes", in, err)
		}
	}
}

func TestModesDecideOnTheExitCode(t *testing.T) {
	tests := []struct {
		mode Mode
		code int
		want bool
	}{
		{ModeNever, 1, false},
		{ModeOnFailure, 0, false},
		{ModeOnFailure, 3, true},
		{ModeOnFailure, 137, true},
		{ModeAlways, 0, true},
	}
	for _, tt := range tests {
		if got := tt.mode.restarts(tt.code); got != tt.want {
			t.Errorf("%s after exit %d restarts: %v, want %v", tt.mode, tt.code, got, tt.want)
		}
	}
}

func TestBackoffDoublesUpToTheCap(t *testing.T) {
	p := Policy{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	var got []time.Duration
	for n := range 6 {
		got = append(got, p.backoff(n))
	}
	want := []time.Duration{100e6, 200e6, 400e6, 800e6, 1e9, 1e9}
	if !slices.Equal(got, want) {
		t.Errorf("backoffs %v, want %v", got, want)
	}
}

func TestDefaultsFillTheZeroValues(t *testing.T) {
	s, err := Spec{Name: "x", Path: "/bin/true"}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if s.Grace != DefaultGrace || s.StopSignal.String() != "terminated" {
		t.Errorf("grace %s, stop signal %s; want %s and SIGTERM", s.Grace, s.StopSignal, DefaultGrace)
	}
	p := s.Restart
	if p.Mode != ModeNever || p.MinBackoff != DefaultMinBackoff || p.MaxBackoff != DefaultMaxBackoff || p.ResetAfter != DefaultResetAfter {
		t.Errorf("policy %+v, want never with the default backoffs", p)
	}
}

func TestInvalidSpecsAreRefusedNamingTheField(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"no name", Spec{Path: "/bin/true"}, "empty Spec.Name"},
		{"no path", Spec{Name: "x"}, "empty Spec.Path"},
		{"a negative grace", Spec{Name: "x", Path: "/bin/true", Grace: -time.Second}, "negative Spec.Grace"},
		{"an unknown mode", Spec{Name: "x", Path: "/bin/true", Restart: Policy{Mode: "sometimes"}}, `restart mode "sometimes"`},
		{"a cap below the first backoff", Spec{Name: "x", Path: "/bin/true", Restart: Policy{MinBackoff: time.Second, MaxBackoff: time.Millisecond}}, "MaxBackoff (1ms) is below MinBackoff (1s)"},
		{"negative restarts", Spec{Name: "x", Path: "/bin/true", Restart: Policy{MaxRestarts: -1}}, "negative MaxRestarts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Start(context.Background(), tt.spec, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestStartRefusesAnEndedContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, Spec{Name: "x", Path: "/bin/true"}, nil); err == nil {
		t.Error("Start with a cancelled context succeeded")
	}
}

func TestTheLastOfARepeatedVariableWins(t *testing.T) {
	got := dedupEnv([]string{"A=1", "B=2", "A=3", "C", "B=4"})
	if want := []string{"A=3", "C", "B=4"}; !slices.Equal(got, want) {
		t.Errorf("dedupEnv = %v, want %v", got, want)
	}
}

func TestLogLinesSplitsLongAndUnfinishedLines(t *testing.T) {
	var recs []string
	logger := slog.New(&funcHandler{func(r slog.Record) {
		partial := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "partial" {
				partial = "+"
			}
			return true
		})
		recs = append(recs, r.Message+partial)
	}})
	in := "one\r\ntwo\n\n" + strings.Repeat("y", maxLine+5) + "\nlast"
	if err := logLines(strings.NewReader(in), logger, "stdout", 1, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"one", "two", "", strings.Repeat("y", maxLine) + "+", "yyyyy", "last+"}
	if !slices.Equal(recs, want) {
		t.Errorf("records %.80q, want %.80q", recs, want)
	}
}

type funcHandler struct{ f func(slog.Record) }

func (h *funcHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *funcHandler) Handle(_ context.Context, r slog.Record) error {
	h.f(r)
	return nil
}
func (h *funcHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *funcHandler) WithGroup(string) slog.Handler      { return h }
