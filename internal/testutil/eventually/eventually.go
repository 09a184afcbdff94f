// Package eventually polls a test's condition until it holds. Its deadline is
// generous and exists only so that a hung test stops and names what it
// waited for, with the condition's last error: it is never a performance
// limit (the machines that run the tests are shared and noisy).
package eventually

import (
	"testing"
	"time"
)

// Deadline is how long a condition may take before the test gives up.
const Deadline = 5 * time.Minute

// maxPause caps the pause between two polls, which starts at 1 ms and
// doubles, so quick conditions cost little and slow ones little CPU.
const maxPause = 50 * time.Millisecond

// True polls cond until it returns true.
func True(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll(t, what, func() (bool, error) { return cond(), nil })
}

// NoError polls cond until it returns nil; the failure quotes its last
// error.
func NoError(t testing.TB, what string, cond func() error) {
	t.Helper()
	poll(t, what, func() (bool, error) {
		err := cond()
		return err == nil, err
	})
}

// OK polls cond until it returns true; the failure quotes its last
// error.
func OK(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	poll(t, what, cond)
}

func poll(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(Deadline)
	for pause := time.Millisecond; ; pause = min(pause*2, maxPause) {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("gave up after %s waiting for %s (last error: %v)", Deadline, what, err)
			}
			t.Fatalf("gave up after %s waiting for %s", Deadline, what)
		}
		time.Sleep(pause)
	}
}
