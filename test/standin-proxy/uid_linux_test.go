//go:build linux

package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/standin"
)

func TestAsTheProxyUIDItRunsWithoutTheRootWarning(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to start a process as uid 2102")
	}
	ca := standin.NewCA(t)
	api := standin.NewWorkloadAPI(t)
	api.Set(ca.MintSVID(t, webID, time.Hour))
	env := runnableEnv(t, ca.RootPEM(), api.Addr())
	p := start(t, env, func(c *exec.Cmd) error {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: meshexpProxyUID, Gid: meshexpProxyUID}}
		return c.Start()
	})
	admin := "http://" + p.addr("Admin")
	eventually.True(t, "/ready as uid 2102", func() bool { return isReady(t, admin) })
	if strings.Contains(p.out.String(), "RUNNING AS ROOT") {
		t.Error("root warning logged by a process running as uid 2102")
	}
	if code := p.terminate(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
}
