//go:build linux

package supervise

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runHelper runs the helper program name (the test binary re-executed
// with envHelper=name) and returns its exit code.
func runHelper(name string, args []string) int {
	switch name {
	case "exit":
		code, _ := strconv.Atoi(args[0])
		return code
	case "sleep":
		fmt.Println("ready")
		block()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		block()
	case "hup":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		fmt.Println("ready")
		for range ch {
			fmt.Println("got hangup")
		}
	case "lines":
		fmt.Fprintln(os.Stdout, "hello from stdout")
		fmt.Fprintln(os.Stderr, "hello from stderr")
		fmt.Fprintln(os.Stdout, strings.Repeat("x", 100000))
		fmt.Fprint(os.Stdout, "crlf line\r\n")
		fmt.Fprint(os.Stdout, "no newline at the end")
		return 0
	case "grandchild", "grandchild-exit":
		// A grandchild in our process group, holding our stdout.
		cmd := exec.Command(os.Args[0])
		cmd.Env = helperEnv("sleep")
		cmd.Stdout = os.Stdout
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("grandchild %d\n", cmd.Process.Pid)
		if name == "grandchild-exit" {
			return 0
		}
		block()
	case "counter":
		return counter(args)
	case "supervisor":
		return supervisor()
	case "reaper":
		return reaperScenario(args)
	case "orphan-maker":
		return orphanMaker(args)
	case "orphan-parent":
		return orphanParent(args)
	case "orphan":
		return orphan(args)
	}
	fmt.Fprintf(os.Stderr, "no helper %q\n", name)
	return 2
}

// counter counts its runs in file args[0]: the first args[1] runs exit
// with args[2], later ones with 0.
func counter(args []string) int {
	b, _ := os.ReadFile(args[0])
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	n++
	if err := os.WriteFile(args[0], []byte(strconv.Itoa(n)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	failures, _ := strconv.Atoi(args[1])
	code, _ := strconv.Atoi(args[2])
	fmt.Printf("run %d\n", n)
	if n <= failures {
		return code
	}
	return 0
}

// orphanMaker is the supervised child of the reaper scenario: it has
// orphan-parent make args[0] orphans, which are re-parented to the
// supervisor (PID 1 or subreaper); it waits until every one of them has
// been reaped — kill(pid, 0) fails only then, zombies still count — and
// exits with 7, a status the supervisor must still see.
func orphanMaker(args []string) int {
	cmd := exec.Command(os.Args[0], args[0])
	cmd.Env = helperEnv("orphan-parent")
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "orphan-parent:", err)
		return 1
	}
	pids := strings.Fields(string(out))
	fmt.Printf("orphans %s\n", strings.Join(pids, " "))
	deadline := time.Now().Add(wait)
	for _, p := range pids {
		pid, _ := strconv.Atoi(p)
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "orphan %d was never reaped\n", pid)
				return 99
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	fmt.Println("orphans reaped")
	return 7
}

// orphanParent starts args[0] orphan helpers, prints their pids and exits
// without waiting for them.
func orphanParent(args []string) int {
	n, _ := strconv.Atoi(args[0])
	for range n {
		cmd := exec.Command(os.Args[0], strconv.Itoa(os.Getpid()))
		cmd.Env = helperEnv("orphan")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(cmd.Process.Pid)
	}
	return 0
}

// orphan waits until its parent (pid args[0]) is gone — it has then been
// re-parented — and exits with 5, leaving a zombie for the reaper.
func orphan(args []string) int {
	parent, _ := strconv.Atoi(args[0])
	deadline := time.Now().Add(wait)
	for os.Getppid() == parent {
		if time.Now().After(deadline) {
			return 98
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 5
}

// block sleeps for ever (an empty select would trip Go's deadlock check
// in a helper with no other goroutine).
func block() {
	for {
		time.Sleep(time.Hour)
	}
}
