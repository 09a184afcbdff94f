package cli

import (
	"errors"
	"fmt"
	"testing"

	"github.com/meshexp/meshexp/internal/instance"
)

func TestExitCodesComeFromErrorTypesNeverFromText(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"a runtime error saying invalid argument is a failure", &runError{errors.New("starting proxy: fork/exec: invalid argument")}, ExitFailure},
		{"a runtime error saying unknown flag is a failure", &runError{errors.New("spire-agent: unknown flag")}, ExitFailure},
		{"a usage error is invalid input", &runError{&UsageError{errors.New("--proxy-uid: bad")}}, ExitUsage},
		{"another instance is busy", &runError{fmt.Errorf("bootstrap: %w", &instance.HeldError{PID: 7})}, ExitBusy},
		{"cobra's own parsing error is invalid input", errors.New("unknown flag: --nope"), ExitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Errorf("exitCode = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCommandLineMistakesExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"bootstrap", "--no-such-flag"},
		{"no-such-command"},
		{"bootstrap", "extra-argument"},
		{"bootstrap", "--register=maybe"},
	} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			if code, _, stderr := run(t, args, nil); code != ExitUsage {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
		})
	}
}
