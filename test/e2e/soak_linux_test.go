//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The soak runs meshexp with the shortest SVID lifetime meshexp accepts
// (spire.MinSVIDTTL; the CA at SPIRE's minimum of six times it), so SVIDs
// rotate every ~20s (SPIRE backdates NotBefore by 10s and renews at
// half-life), while traffic crosses interception both ways and SPIRE is
// hurt in every way the issue names. MESHEXP_SOAK (`SOAK=30m make soak`)
// adds that long a steady phase before the faults; unset, the suite is
// the short variant CI runs.
const (
	soakSVIDTTL = 30 * time.Second
	soakCATTL   = 6 * soakSVIDTTL
	// soakExternalSVIDTTL is the external host's: its server is cut off
	// for longer than half an SVID's life, and after the link is back the
	// agent needs up to ~16s to reach it again (a connection attempt made
	// during the cut waits for the kernel's next SYN retransmission, 1, 2,
	// 4, 8, 16s apart, then gRPC's backoff). A 30s SVID cut for 17s left
	// 13s, and once in a loaded CI run that was 115ms too few; 60s leaves
	// 28s.
	soakExternalSVIDTTL = 2 * soakSVIDTTL
)

func soakSteady(t *testing.T) time.Duration {
	v := os.Getenv("MESHEXP_SOAK")
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		t.Fatalf("MESHEXP_SOAK=%q is not a duration such as 30m", v)
	}
	return d
}

// TestSoakEmbedded: kill -9 of the SPIRE agent and of the embedded server.
func TestSoakEmbedded(t *testing.T) {
	t.Parallel() // mostly waiting for certificates to age: see doc.go
	h := newHost(t, "MESHEXP_SPIRE_SVID_TTL="+soakSVIDTTL.String(), "MESHEXP_SPIRE_CA_TTL="+soakCATTL.String())
	h.start()
	s := h.soak(t, soakSVIDTTL)

	s.steady(t, soakSteady(t))
	s.fault(t, "kill -9 of the SPIRE agent", func(t *testing.T) { h.killAndWaitForRestart(t, "spire-agent") })
	s.fault(t, "kill -9 of the embedded SPIRE server", func(t *testing.T) { h.killAndWaitForRestart(t, "spire-server") })
	s.finish(t)
}

// killAndWaitForRestart SIGKILLs meshexp's child named and waits for
// meshexp to start a new one. Only this host's children are looked at:
// other tests on the machine run the same SPIRE binaries.
func (h *host) killAndWaitForRestart(t *testing.T, name string) {
	t.Helper()
	pid := h.childPid(name)
	if pid == 0 {
		t.Fatalf("%s not found among meshexp's children", name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a new "+name, 60*time.Second, func() error {
		if p := h.childPid(name); p == 0 || p == pid {
			return fmt.Errorf("no new %s yet", name)
		}
		return nil
	})
}

// childPid is the pid of this host's process running the SPIRE binary
// name.
func (h *host) childPid(name string) int { return h.pidOf("\x00" + h.spireBin(name) + " ") }

func (h *host) spireBin(name string) string {
	for _, kv := range h.env {
		if dir, ok := strings.CutPrefix(kv, "MESHEXP_SPIRE_BIN_DIR="); ok {
			return dir + "/" + name
		}
	}
	return name
}

// soakRun measures one host while it soaks: traffic both ways through
// interception, and the figures the issue asks for.
type soakRun struct {
	h     *host
	ttl   time.Duration // the host's SVID lifetime
	start time.Time
	stop  context.CancelFunc
	wg    sync.WaitGroup

	outAttempts, outFailures atomic.Int64
	inAttempts, inFailures   atomic.Int64
	lastFailure              atomic.Value // string
	// detectFallbacks: the proxy answered with its raw line because the
	// request came after its protocol-detection window (the stand-in's,
	// under load): intercepted and answered, so not a failure.
	detectFallbacks atomic.Int64

	startRSS, startFDs float64
	startMeshexpRSS    float64
	// memory samples meshexp's anonymous (heap, stacks: what a leak
	// grows) and file-backed (its binary's pages) RSS every minute.
	memMu      sync.Mutex
	memory     []string
	meshexpPID int
	// svidGapExcused: gaps ending before it are a deliberate expiry.
	svidGapExcused time.Time
}

// soak starts the traffic and notes the starting figures.
func (h *host) soak(t *testing.T, ttl time.Duration) *soakRun {
	ctx, cancel := context.WithCancel(context.Background())
	s := &soakRun{h: h, ttl: ttl, start: time.Now(), stop: cancel, meshexpPID: h.cmd.Process.Pid}
	t.Cleanup(func() { cancel(); s.wg.Wait() })
	s.startRSS, s.startFDs = h.footprint()
	s.startMeshexpRSS = statusMiB(s.meshexpPID, "VmRSS:")
	t.Logf("start: RSS %.1f MiB (meshexp alone %.1f), open fds %.0f (meshexp and its children)", s.startRSS, s.startMeshexpRSS, s.startFDs)
	peer := h.pair.PeerAddr4.String() + ":8080"
	target := h.pair.Addr4.String() + ":8000"
	s.loop(ctx, &s.outAttempts, &s.outFailures, func() (string, error) {
		return h.get("http://127.0.0.1:8000/call?url=http://" + peer + "/")
	}, "outbound orig_dst="+peer)
	s.loop(ctx, &s.inAttempts, &s.inFailures, func() (string, error) {
		return getIn(h.pair.Peer, "http://"+target+"/whoami")
	}, "inbound orig_dst="+target)
	s.sampleMemory(ctx)
	return s
}

// sampleMemory notes meshexp's RssAnon and RssFile now and every minute.
func (s *soakRun) sampleMemory(ctx context.Context) {
	sample := func() {
		s.memMu.Lock()
		defer s.memMu.Unlock()
		s.memory = append(s.memory, fmt.Sprintf("%dm %.1f/%.1f", int(time.Since(s.start).Minutes()),
			statusMiB(s.meshexpPID, "RssAnon:"), statusMiB(s.meshexpPID, "RssFile:")))
	}
	sample()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sample()
			}
		}
	}()
}

// loop makes a connection every 100ms until ctx ends; an answer that did
// not come through the proxy's listener, or without identity, fails.
func (s *soakRun) loop(ctx context.Context, attempts, failures *atomic.Int64, do func() (string, error), want string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			attempts.Add(1)
			got, err := do()
			if err == nil && (!strings.Contains(got, want) || !strings.Contains(got, "identity=spiffe://")) {
				err = fmt.Errorf("unexpected answer %q", got)
			}
			// The raw line "meshexp-standin inbound …" read as an HTTP status.
			if err != nil && (strings.Contains(err.Error(), `malformed HTTP status code "inbound"`) || strings.Contains(err.Error(), `malformed HTTP status code "outbound"`)) {
				s.detectFallbacks.Add(1)
				continue
			}
			if err != nil && ctx.Err() == nil {
				failures.Add(1)
				s.lastFailure.Store(time.Now().Format(time.RFC3339) + " " + err.Error())
			}
		}
	}()
}

// steady lets the host rotate undisturbed for d.
func (s *soakRun) steady(t *testing.T, d time.Duration) {
	if d <= 0 {
		return
	}
	s.fault(t, "steady rotation for "+d.String(), func(t *testing.T) { time.Sleep(d) })
}

// fault runs one named fault, then waits for the next SVID rotation and
// 100 more connections each way, and logs the figures of that window.
func (s *soakRun) fault(t *testing.T, name string, do func(t *testing.T)) {
	t.Run(name, func(t *testing.T) {
		from := time.Now()
		o, i, of, inf := s.outAttempts.Load(), s.inAttempts.Load(), s.outFailures.Load(), s.inFailures.Load()
		restarts := s.h.restarts()
		do(t)
		// Until the SVID rotates again (identity renews after the fault)
		// and 100 more connections each way went through interception.
		after := min(s.outAttempts.Load(), s.inAttempts.Load())
		s.h.waitForSwap(t, s.ttl)
		s.h.waitFor("100 connections each way after the fault", 2*s.ttl, func() error {
			if n := min(s.outAttempts.Load(), s.inAttempts.Load()) - after; n < 100 {
				return fmt.Errorf("%d so far", n)
			}
			return nil
		})
		rep := s.h.swaps(t)
		gap := longestGap(rep.Swaps, s.svidGapExcused, time.Now())
		t.Logf("%s: %s; rotations %d; longest time without a valid SVID %s; connections out %d (failed %d), in %d (failed %d); child restarts %d",
			name, time.Since(from).Round(time.Second), countSince(rep.Swaps, from), gap,
			s.outAttempts.Load()-o, s.outFailures.Load()-of, s.inAttempts.Load()-i, s.inFailures.Load()-inf, s.h.restarts()-restarts)
		if gap > 0 {
			t.Errorf("the proxy was without a valid SVID for %s", gap)
		}
		if f := s.outFailures.Load() - of + s.inFailures.Load() - inf; f > 0 {
			t.Errorf("%d connections through interception failed; last: %v", f, s.lastFailure.Load())
		}
	})
}

// finish stops the traffic, logs the run's figures and ends meshexp.
func (s *soakRun) finish(t *testing.T) {
	h := s.h
	rss, fds := h.footprint()
	meshexpRSS := statusMiB(s.meshexpPID, "VmRSS:")
	s.stop()
	s.wg.Wait()
	rep := h.swaps(t)
	t.Logf("run: %s; rotations %d; longest time without a valid SVID %s; Workload API updates repeating the SVID (bundle changes) %d; connections out %d (failed %d), in %d (failed %d), answered without HTTP detection %d; meshexp restarts %d; child restarts %d; RSS %.1f → %.1f MiB (meshexp alone %.1f → %.1f), open fds %.0f → %.0f",
		time.Since(s.start).Round(time.Second), len(rep.Swaps)-1, longestGap(rep.Swaps, s.svidGapExcused, time.Now()), rep.Repeats,
		s.outAttempts.Load(), s.outFailures.Load(), s.inAttempts.Load(), s.inFailures.Load(), s.detectFallbacks.Load(),
		boolInt(h.cmd.Process.Pid != s.meshexpPID), h.restarts(), s.startRSS, rss, s.startMeshexpRSS, meshexpRSS, s.startFDs, fds)
	s.memMu.Lock()
	t.Logf("meshexp RSS anonymous/file-backed MiB by minute: %s", strings.Join(s.memory, ", "))
	s.memMu.Unlock()
	if len(rep.Swaps) < 3 {
		t.Errorf("only %d SVIDs in %s: rotation did not happen", len(rep.Swaps), time.Since(s.start).Round(time.Second))
	}
	if fds > s.startFDs+20 {
		t.Errorf("open fds grew from %.0f to %.0f", s.startFDs, fds)
	}
	select {
	case <-h.exited:
		t.Fatalf("meshexp exited during the soak with status %d", h.status)
	default:
	}
	h.signal(syscall.SIGTERM)
	if code := h.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	h.assertClean()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// restarts counts the children meshexp restarted.
func (h *host) restarts() int { return strings.Count(h.logs.String(), `"msg":"restarting child"`) }

// footprint sums RSS (MiB) and open fds of meshexp and what it runs
// (SPIRE, the proxy, the workload, the registration agent).
func (h *host) footprint() (rss, fds float64) {
	for _, p := range h.procs() {
		rss += statusMiB(p.pid, "VmRSS:")
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid))
		fds += float64(len(ents))
	}
	return rss, fds
}

// svidSwap is one entry of the stand-in's GET /identity.
type svidSwap struct {
	At       time.Time `json:"at"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
}

type swapReport struct {
	Swaps    []svidSwap `json:"swaps"`
	Repeats  int64      `json:"repeats"`
	Rejected int64      `json:"rejected"`
}

// swaps asks the stand-in which SVIDs it used (its admin port: 4191).
func (h *host) swaps(t *testing.T) swapReport {
	t.Helper()
	body, err := h.get("http://127.0.0.1:4191/identity")
	if err != nil {
		t.Fatalf("asking the stand-in for its SVIDs: %v", err)
	}
	var rep swapReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("the stand-in's /identity: %v\n%s", err, body)
	}
	return rep
}

// longestGap is the longest time the proxy held only an expired SVID:
// between an SVID's NotAfter and the next swap (or now). Gaps ending
// before excused are left out (a deliberate expiry).
func longestGap(swaps []svidSwap, excused, now time.Time) time.Duration {
	var longest time.Duration
	for i, s := range swaps {
		next := now
		if i+1 < len(swaps) {
			next = swaps[i+1].At
		}
		if next.After(s.NotAfter) && next.After(excused) {
			longest = max(longest, next.Sub(s.NotAfter))
		}
	}
	return longest
}

func countSince(swaps []svidSwap, from time.Time) int {
	n := 0
	for _, s := range swaps {
		if s.At.After(from) {
			n++
		}
	}
	return n
}

// waitForSwap returns right after the proxy took a new SVID.
func (h *host) waitForSwap(t *testing.T, ttl time.Duration) {
	t.Helper()
	n := len(h.swaps(t).Swaps)
	h.waitFor("the next SVID rotation", 2*ttl, func() error {
		if len(h.swaps(t).Swaps) == n {
			return fmt.Errorf("no rotation yet")
		}
		return nil
	})
}
