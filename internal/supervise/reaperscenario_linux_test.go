//go:build linux

package supervise

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// reaperReport is what the reaper scenario prints on stdout.
type reaperReport struct {
	PID       int      `json:"pid"`
	ChildExit int      `json:"child_exit"`
	Events    string   `json:"events"`
	Reaped    int64    `json:"reaped"`
	ExecOK    int      `json:"exec_ok"`
	ExecBad   []string `json:"exec_bad"`
	Zombies   []string `json:"zombies"`
}

// reaperScenario runs as PID 1 of a fresh PID namespace (args[0] "pid1")
// or as a plain process that becomes a subreaper ("subreaper"). It starts
// the reaper, supervises orphan-maker (which makes 3 orphans and exits 7
// once they are reaped) while running `sh -c 'exit 4'` through os/exec in
// a loop, and reports the child's status, every exec status that was not
// 4, and the zombies left.
func reaperScenario(args []string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	r, err := StartReaper(ctx, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rep := reaperReport{PID: os.Getpid()}

	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				if i >= 20 {
					return
				}
			default:
			}
			err := exec.Command("sh", "-c", "exit 4").Run()
			var ee *exec.ExitError
			mu.Lock()
			if errors.As(err, &ee) && ee.ExitCode() == 4 {
				rep.ExecOK++
			} else {
				rep.ExecBad = append(rep.ExecBad, fmt.Sprint(err))
			}
			mu.Unlock()
		}
	}()

	events := &eventLog{}
	spec := Spec{
		Name:    "orphan-maker",
		Path:    os.Args[0],
		Args:    []string{"3"},
		Env:     helperEnv("orphan-maker"),
		OnEvent: events.add,
	}
	c, err := Start(ctx, spec, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {
	case <-c.Exited():
	case <-time.After(wait):
		fmt.Fprintln(os.Stderr, "orphan-maker never finished")
		return 1
	}
	close(done)
	wg.Wait()
	rep.ChildExit = c.ExitCode()
	rep.Events = events.kinds()

	pid1 := len(args) > 0 && args[0] == "pid1"
	deadline := time.Now().Add(wait)
	for rep.Zombies = zombies(pid1); len(rep.Zombies) > 0 && time.Now().Before(deadline); rep.Zombies = zombies(pid1) {
		time.Sleep(10 * time.Millisecond)
	}
	rep.Reaped = r.Reaped()
	r.Stop()
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 1
	}
	return 0
}

// zombies lists zombie processes: every one in /proc when all of /proc is
// our PID namespace (pid1), else this process's children.
func zombies(all bool) []string {
	var pids []int
	if all {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, pid)
			}
		}
	} else {
		pids, _ = childPIDs(os.Getpid())
	}
	var zs []string
	for _, pid := range pids {
		if st, err := readProcStat(pid); err == nil && st.state == 'Z' {
			zs = append(zs, fmt.Sprintf("pid %d (ppid %d)", pid, st.ppid))
		}
	}
	return zs
}
