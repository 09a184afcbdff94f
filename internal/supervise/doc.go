// Package supervise runs meshexp's child processes — SPIRE server and
// agent, linkerd2-proxy, the workload — the way a container's init should.
//
// One Child per program, with explicit states (starting, running, backoff,
// stopping, exited) and one goroutine that owns waiting for its process,
// after hashicorp/consul-dataplane's pkg/envoy/proxy.go. Each process:
//
//   - runs in its own process group, so Stop reaches whatever it spawned:
//     StopSignal to the group, Grace, then SIGKILL to the group, and Stop
//     returns only when no live member is left (a leader that exits on its
//     own gets its leftovers stopped the same way before any restart);
//   - runs with the credentials asked for (uid/gid, supplementary groups
//     cleared), for the proxy's uid and the workload's user;
//   - is killed by the kernel if meshexp dies (Pdeathsig=SIGKILL), which
//     holds even though Go moves goroutines across threads: children are
//     forked from one locked thread that lives as long as the process
//     (proc_linux.go says why that matters). Pdeathsig reaches the direct
//     child only; what it spawned is in the child's cgroup (Spec.Cgroup),
//     which the next start empties, and in a container the PID namespace
//     dies with meshexp;
//   - with Spec.Cgroup, keeps every process the child ever runs in a
//     cgroup (v2, or v1 pids/freezer), so one that leaves the process
//     group (setsid) is still stopped, and is reported as an escape
//     (Child.Escaped, a failure for the restart policy);
//   - has its stdout and stderr logged line by line with child=<name> and
//     stream=stdout|stderr, so a container log tells who said what (or
//     passed through, or copied to a writer: see Spec.Stdout);
//   - is restarted by policy (never, on-failure, always) with exponential
//     backoff and an optional cap on restarts; Spec.OnEvent tells the
//     caller about every start, exit and restart.
//
// Exit codes are reported as a shell does: the code, or 128+n after
// signal n (137 after SIGKILL).
//
// When meshexp is PID 1, orphaned grandchildren are re-parented to it and
// must be reaped, or they stay zombies. StartReaper does that without
// stealing anyone's exit status: see Reaper for the design, and why the
// wait4(-1) loop of classic inits cannot be used inside a Go program that
// also runs commands through os/exec. Outside PID 1 it makes meshexp a
// child subreaper, so the same holds on a VM.
//
// Forward relays signals such as SIGHUP to children; SIGTERM and SIGINT
// are the caller's, whose ordered shutdown ends with StopAll.
//
// Linux only; on other systems Start and StartReaper return an error
// wrapping errors.ErrUnsupported.
package supervise
