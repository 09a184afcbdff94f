//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// script writes an executable shell script into the run's directory
// (world-readable, so the proxy's and the workload's uids can run it).
func (h *host) script(name, body string) string {
	h.t.Helper()
	p := filepath.Join(h.base, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// waitLog waits until meshexp logs msg (its own lines, not children's).
func (h *host) waitLog(msg string) {
	h.t.Helper()
	h.waitFor("log line "+msg, 120*time.Second, func() error {
		if slices.Contains(h.logMessages(), msg) {
			return nil
		}
		return fmt.Errorf("not yet")
	})
}

// netnsIno is the host namespace's inode, which names meshexp's state
// file and cgroups.
func (h *host) netnsIno() string {
	fi, err := os.Stat(h.pair.NS.Path())
	if err != nil {
		h.t.Fatal(err)
	}
	return fmt.Sprint(fi.Sys().(*syscall.Stat_t).Ino)
}

// assertNothingLeft is assertClean plus what the fault cases must not
// leave either: the state file, cgroups, the instance lock, sockets.
func (h *host) assertNothingLeft() {
	h.t.Helper()
	h.assertClean()
	ino := h.netnsIno()
	if _, err := os.Stat("/run/meshexp/netns-" + ino + ".json"); err == nil {
		h.t.Errorf("state file /run/meshexp/netns-%s.json left behind", ino)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*/meshexp-" + ino); len(left) > 0 {
		h.t.Errorf("cgroups left behind: %v", left)
	}
	if out, _ := h.pair.NS.Command(context.Background(), "cat", "/proc/net/unix").Output(); strings.Contains(string(out), "@meshexp/instance") {
		h.t.Error("the instance lock is still held")
	}
	var socks []string
	filepath.WalkDir(h.base, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSocket != 0 {
			socks = append(socks, p)
		}
		return nil
	})
	if len(socks) > 0 {
		h.t.Errorf("sockets left behind: %v", socks)
	}
}

// records returns meshexp's JSON log records.
func (h *host) records() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(h.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

func (h *host) refuteOutput(s string) {
	h.t.Helper()
	if strings.Contains(h.logs.String(), s) {
		h.t.Errorf("output mentions %q:\n%s", s, h.logs.String())
	}
}

func TestASecondBootstrapInTheSameNamespaceRefusesToStartAndChangesNothing(t *testing.T) {
	first := newHost(t)
	first.start()
	rules := first.natRules()

	second := newHostIn(t, first.pair, "MESHEXP_SPIRE_SERVER_PORT=8082")
	second.startNoWait()
	if code := second.wait(60 * time.Second); code != 3 {
		t.Errorf("second instance exit status = %d, want 3 (another instance runs)", code)
	}
	want := fmt.Sprintf("meshexp bootstrap (pid %d) is already running in this network namespace", first.cmd.Process.Pid)
	if !strings.Contains(second.logs.String(), want) {
		t.Errorf("the refusal does not name the running instance (%q):\n%s", want, second.logs.String())
	}
	for _, phase := range []string{"phase: identity", "phase: interception"} {
		if slices.Contains(second.logMessages(), phase) {
			t.Errorf("the second instance started %q", phase)
		}
	}
	if got := first.natRules(); got != rules {
		t.Errorf("the second instance changed the rules:\n%s\nwas:\n%s", got, rules)
	}
	peer := first.pair.PeerAddr4.String() + ":8080"
	if got, err := first.get("http://127.0.0.1:8000/call?url=http://" + peer + "/"); err != nil || !strings.Contains(got, "outbound orig_dst="+peer) {
		t.Errorf("the first instance lost its interception: %q, %v", got, err)
	}
	first.signal(syscall.SIGTERM)
	if code := first.wait(60 * time.Second); code != 0 {
		t.Errorf("first instance exit status = %d, want 0", code)
	}
	first.assertNothingLeft()
}

func TestSIGTERMInAnyPhaseIsACleanShutdown(t *testing.T) {
	t.Run("while SPIRE and the SVID are awaited", func(t *testing.T) {
		h := newHost(t)
		h.startNoWait()
		h.waitLog("phase: identity")
		h.signal(syscall.SIGTERM)
		if code := h.wait(60 * time.Second); code != 0 {
			t.Errorf("exit status = %d, want 0", code)
		}
		h.refuteOutput("context canceled")
		if slices.Contains(h.logMessages(), "phase: interception") {
			t.Error("interception started after SIGTERM")
		}
		h.assertNothingLeft()
	})
	t.Run("while /ready is awaited", func(t *testing.T) {
		h := newHost(t)
		h.env = append(h.env, "MESHEXP_PROXY_BIN="+h.script("never-ready-proxy", "exec sleep 1000"))
		h.startNoWait()
		h.waitLog("phase: waiting for proxy readiness")
		h.signal(syscall.SIGTERM)
		if code := h.wait(60 * time.Second); code != 0 {
			t.Errorf("exit status = %d, want 0", code)
		}
		h.refuteOutput("context canceled")
		if slices.Contains(h.logMessages(), "phase: workload") {
			t.Error("the workload was started after SIGTERM")
		}
		h.assertNothingLeft()
	})
}

func TestEveryOtherSignalIsForwardedOrIgnoredNeverFatal(t *testing.T) {
	t.Run("SIGHUP, SIGUSR1, SIGALRM and SIGPIPE before the workload exists", func(t *testing.T) {
		h := newHost(t)
		h.env = append(h.env, "MESHEXP_PROXY_BIN="+h.script("never-ready-proxy", "exec sleep 1000"))
		h.startNoWait()
		h.waitLog("phase: waiting for proxy readiness")
		for _, s := range []syscall.Signal{syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGALRM, syscall.SIGPIPE, syscall.Signal(40)} {
			h.signal(s)
		}
		h.waitLog("signal ignored: the workload is not running yet")
		select {
		case <-h.exited:
			t.Fatalf("meshexp ended (status %d) on a signal it should ignore", h.status)
		default:
		}
		h.stopCleanly()
	})
	t.Run("SIGQUIT is a clean shutdown", func(t *testing.T) {
		h := newHost(t)
		h.start()
		h.signal(syscall.SIGQUIT)
		if code := h.wait(60 * time.Second); code != 0 {
			t.Errorf("exit status = %d, want 0", code)
		}
		h.refuteOutput("goroutine ")
		h.assertNothingLeft()
	})
	t.Run("SIGHUP and a second SIGTERM during teardown", func(t *testing.T) {
		h := newHost(t)
		// A workload that ignores SIGTERM keeps teardown busy for the
		// whole grace period.
		h.env = append(h.env, "MESHEXP_WORKLOAD="+h.script("stubborn", "trap '' TERM\nwhile :; do sleep 0.1; done"))
		h.startNoWait()
		h.waitLog("running")
		h.signal(syscall.SIGTERM)
		h.waitLog("teardown")
		for _, s := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGUSR2} {
			h.signal(s)
		}
		if code := h.wait(60 * time.Second); code != 0 {
			t.Errorf("exit status = %d, want 0", code)
		}
		h.assertNothingLeft()
	})
}

func TestABrokenLogPipeNeverKillsMeshexp(t *testing.T) {
	h := newHost(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{bins.meshexp, "--log-format", "json", "bootstrap"}
	h.cmd = h.pair.NS.Command(context.Background(), args[0], args[1:]...)
	h.cmd.Env = h.env
	h.cmd.Dir = h.base
	h.cmd.Stdout, h.cmd.Stderr = w, w
	h.exited = make(chan struct{})
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() { h.status = exitStatus(h.cmd.Wait()); close(h.exited) }()
	// Read until meshexp runs, as `| tee` would, then the reader dies.
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		h.logs.Write(append(sc.Bytes(), '\n'))
		if strings.Contains(sc.Text(), `"msg":"running"`) {
			break
		}
	}
	r.Close()
	// Lines are written to the broken pipe: a forwarded signal's log and
	// the whole teardown.
	h.signal(syscall.SIGTERM)
	if code := h.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status = %d, want 0 (141 is death by SIGPIPE)", code)
	}
	h.assertNothingLeft()
}

func TestExitCodesTellTheTruth(t *testing.T) {
	t.Run("the proxy exiting 0 after a stray SIGTERM is a failure", func(t *testing.T) {
		h := newHost(t)
		h.start()
		if err := syscall.Kill(h.pidOf(bins.proxy), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := h.wait(60 * time.Second); code != 1 {
			t.Errorf("exit status = %d, want 1 (the proxy ended unasked)", code)
		}
		h.assertNothingLeft()
	})
	t.Run("the proxy exiting 0 before it was ready is a failure", func(t *testing.T) {
		h := newHost(t)
		h.env = append(h.env, "MESHEXP_PROXY_BIN="+h.script("quitter", "exit 0"))
		h.startNoWait()
		if code := h.wait(120 * time.Second); code != 1 {
			t.Errorf("exit status = %d, want 1 (the proxy ended unasked)", code)
		}
		if slices.Contains(h.logMessages(), "phase: workload") {
			t.Error("the workload was started without a proxy")
		}
		h.assertNothingLeft()
	})
	t.Run("a workload exiting 2 is not passed through as invalid input", func(t *testing.T) {
		h := newHost(t)
		h.env = append(h.env, "MESHEXP_WORKLOAD="+h.script("exit2", "exit 2"))
		h.startNoWait()
		if code := h.wait(120 * time.Second); code != 1 {
			t.Errorf("exit status = %d, want 1", code)
		}
		h.assertNothingLeft()
	})
	t.Run("a uid the kernel refuses is a runtime failure, not invalid input", func(t *testing.T) {
		h := newHost(t, "MESHEXP_WORKLOAD_USER=4294967295:65534")
		h.startNoWait()
		code := h.wait(120 * time.Second)
		if code == 2 && slices.Contains(h.logMessages(), "phase: identity") {
			t.Errorf("exit status 2 after the host was changed")
		}
		if code == 0 {
			t.Errorf("exit status 0")
		}
		h.assertNothingLeft()
	})
	t.Run("a crash of meshexp itself is not 2, and the next start cleans up", func(t *testing.T) {
		h := newHost(t)
		h.netOnly = true
		h.start()
		// An asynchronous SIGSEGV is a Go runtime crash.
		h.signal(syscall.SIGSEGV)
		if code := h.wait(60 * time.Second); code != 128+int(syscall.SIGABRT) {
			t.Errorf("exit status after a crash = %d, want %d (SIGABRT: a crash, never 2)", code, 128+int(syscall.SIGABRT))
		}
		h.start()
		h.stopCleanly()
	})
}

func TestTheWorkloadsWholeProcessTreeIsContained(t *testing.T) {
	t.Run("a grandchild behind a shell wrapper dies with the next start after kill -9", func(t *testing.T) {
		h := newHost(t)
		h.netOnly = true
		h.env = append(h.env, "MESHEXP_WORKLOAD="+h.script("wrapper", bins.workload)) // no exec
		h.start()
		h.signal(syscall.SIGKILL)
		h.wait(30 * time.Second)
		grandchild := h.pidOf(bins.workload)
		if grandchild == 0 {
			t.Log("note: the grandchild did not survive kill -9")
		}
		// The rules and the grandchild are what a crash leaves; the next
		// start must end them, or the port stays taken.
		h.logs = &syncBuffer{}
		h.startNoWait()
		h.waitLog("running")
		if grandchild != 0 && !strings.HasPrefix(procState(grandchild), "?") && !strings.HasPrefix(procState(grandchild), "Z") {
			t.Errorf("the crashed run's grandchild (pid %d) still runs", grandchild)
		}
		h.waitFor("the new workload to answer on :8000", 120*time.Second, func() error {
			got, err := h.get("http://127.0.0.1:8000/whoami")
			if err == nil && !strings.Contains(got, "uid=65534") {
				err = fmt.Errorf("whoami = %q", got)
			}
			return err
		})
		if !strings.Contains(h.logs.String(), "ended without its teardown") {
			t.Error("the restart did not say it cleaned up after a crash")
		}
		h.stopCleanly()
	})
	t.Run("a workload that daemonizes is stopped and is a failure", func(t *testing.T) {
		h := newHost(t)
		h.netOnly = true
		tmp := filepath.Join(h.base, "tmp")
		if err := os.Mkdir(tmp, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(tmp, 0o777)
		pidfile := filepath.Join(tmp, "daemon.pid")
		h.env = append(h.env, "MESHEXP_WORKLOAD="+h.script("daemonize", fmt.Sprintf(
			"setsid sh -c 'echo $$ > %[1]s.tmp && mv %[1]s.tmp %[1]s; exec %[2]s' </dev/null >/dev/null 2>&1 &\nwhile [ ! -s %[1]s ]; do sleep 0.05; done\nexit 0",
			pidfile, bins.workload)))
		h.startNoWait()
		if code := h.wait(120 * time.Second); code != 1 {
			t.Errorf("exit status = %d, want 1 (the workload escaped supervision)", code)
		}
		if !strings.Contains(h.logs.String(), "daemonized or called setsid") {
			t.Errorf("no plain-words message about the escape:\n%s", h.logs.String())
		}
		h.assertNothingLeft()
	})
}

func TestProxyLinesKeepTheirLevel(t *testing.T) {
	for _, format := range []string{"plain", "json"} {
		t.Run(format, func(t *testing.T) {
			h := newHost(t, "MESHEXP_PROXY_LOG_FORMAT="+format, "LINKERD2_PROXY_MESHEXP_TEST_UNKNOWN=1")
			line := `[     0.000001s] ERROR ThreadId(01) linkerd2_proxy: a test error`
			if format == "json" {
				line = `{"timestamp":"[ 0.000001s]","level":"ERROR","fields":{"message":"a test error"},"target":"linkerd2_proxy"}`
			}
			h.env = append(h.env, "MESHEXP_PROXY_BIN="+h.script("proxy", fmt.Sprintf("echo '%s'\nexec %s", line, bins.proxy)))
			h.start()
			h.signal(syscall.SIGTERM)
			h.wait(60 * time.Second)
			levels := map[string]string{}
			for _, rec := range h.records() {
				if rec["child"] != "proxy" {
					continue
				}
				msg, _ := rec["msg"].(string)
				lvl, _ := rec["level"].(string)
				switch {
				case strings.Contains(msg, "a test error"):
					levels["error"] = lvl
				case strings.Contains(msg, "LINKERD2_PROXY_MESHEXP_TEST_UNKNOWN"):
					levels["warn"] = lvl
				}
			}
			if levels["error"] != "ERROR" || levels["warn"] != "WARN" {
				t.Errorf("levels = %v, want the proxy's ERROR and WARN lines at ERROR and WARN", levels)
			}
		})
	}
}
