//go:build linux

package supervise

import (
	"context"
	"log/slog"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkStartAndWait: one supervised run of true(1), output logged,
// from Start to Exited().
func BenchmarkStartAndWait(b *testing.B) {
	logger := slog.New(slog.DiscardHandler)
	for b.Loop() {
		c, err := Start(context.Background(), Spec{Name: "true", Path: "true"}, logger)
		if err != nil {
			b.Fatal(err)
		}
		<-c.Exited()
	}
}

// BenchmarkExecCmdRun is the baseline: os/exec running true(1).
func BenchmarkExecCmdRun(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaperSweep: what each SIGCHLD costs the reaper when there is
// nothing to reap (the common case: the owner already waited).
func BenchmarkReaperSweep(b *testing.B) {
	r := &Reaper{logger: slog.New(slog.DiscardHandler), byPidfd: true, seen: map[int]time.Time{}}
	for b.Loop() {
		r.sweep()
	}
}
