//go:build linux

package bootstrap

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/fleet"
)

func TestTheRegistrationStateLivesOnlyAsLongAsTheRun(t *testing.T) {
	stateDir = t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := newStateFile("test", logger)
	c := &config.Config{WorkloadNamespace: "shop", Fleet: config.Fleet{ControllerAddr: "ctl:8443", Group: "web"}}
	status := controllerStatus(c, s.regDir)
	if got := status(); got.State != "connecting" || !strings.Contains(got.Error, "no state yet") || got.Group != "shop/web" || got.Addr != "ctl:8443" {
		t.Errorf("before the agent: %+v", got)
	}

	if err := s.makeRegistrationDir(65534, 65534); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.regDir)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || fi.Mode().Perm() != 0o755 {
		t.Errorf("the agent's directory: uid %d, mode %s; want the proxy's uid 65534, 0755", st.Uid, fi.Mode().Perm())
	}
	// An agent that was killed (its pid is no agent now) published
	// "registered": it is not shown as current.
	b, _ := json.Marshal(fleet.Published{PID: os.Getpid(), State: fleet.PhaseRegistered, Controller: "ctl:8443", ExternalWorkload: "shop/web"})
	if err := os.WriteFile(filepath.Join(s.regDir, fleet.StateFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := status(); got.State != "retrying" || !strings.Contains(got.Error, "no longer running") {
		t.Errorf("a dead agent's state: %+v", got)
	}

	// A crash leaves the directory; the next start removes it, whatever
	// else it finds.
	if err := newStateFile("test", logger).recoverLeftovers(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.regDir); !os.IsNotExist(err) {
		t.Errorf("the next start kept the crashed run's registration state: %v", err)
	}

	// The end of a clean run removes it, and then the state directory.
	if err := s.makeRegistrationDir(65534, 65534); err != nil {
		t.Fatal(err)
	}
	s.remove()
	if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
		t.Errorf("after the teardown the state directory stays: %v", err)
	}
}
