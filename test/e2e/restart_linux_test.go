//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A restart on the same host reuses SPIRE's state (server CA, entry, the
// agent's SVID: no join token), and the Workload API socket's existing
// directory keeps its mode (here a world-writable sticky one, like /tmp).
func TestARestartOnTheSameHostIsWarm(t *testing.T) {
	base, err := os.MkdirTemp("/tmp", "mxs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(base, "api.sock")
	h := newHost(t, "MESHEXP_SPIRE_SOCKET="+sock, "MESHEXP_TEST_SPIRE_SOCKET="+sock)

	for run := 1; run <= 2; run++ {
		h.start()
		peer := h.pair.PeerAddr4.String() + ":8080"
		if got, err := h.get("http://127.0.0.1:8000/call?url=http://" + peer + "/"); err != nil || !strings.Contains(got, "outbound orig_dst="+peer) {
			t.Fatalf("run %d: the peer call was not intercepted: %q, %v", run, got, err)
		}
		h.signal(syscall.SIGTERM)
		if code := h.wait(60 * time.Second); code != 0 {
			t.Fatalf("run %d: exit status %d, want 0", run, code)
		}
		h.assertClean()
	}
	msgs := h.logMessages()
	for _, want := range []string{"reusing SPIRE state from an earlier run", "the SPIRE agent reuses its kept SVID; no join token needed"} {
		if n := count(msgs, want); n != 1 {
			t.Errorf("%q logged %d times over a cold start and a restart, want once (the restart)", want, n)
		}
	}
	fi, err := os.Stat(base)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (os.ModePerm | os.ModeSticky); got != 0o777|os.ModeSticky {
		t.Errorf("the socket's directory is %v now, want drwxrwxrwt as it was", got)
	}
}

func count(msgs []string, s string) int {
	n := 0
	for i := slices.Index(msgs, s); i >= 0; i = slices.Index(msgs, s) {
		n++
		msgs = msgs[i+1:]
	}
	return n
}
