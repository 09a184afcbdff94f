// Command meshexp brings workloads that run outside Kubernetes (VMs, bare
// metal, podman/docker containers) into a Linkerd service mesh.
//
// See the README for the quick start and `meshexp --help` for commands.
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/meshexp/meshexp/internal/cli"
	"github.com/meshexp/meshexp/internal/spire"
)

func main() {
	// A crash (a bug) aborts with SIGABRT (status 134) instead of the Go
	// runtime's exit 2, which means invalid input to meshexp's users and
	// to the systemd unit (RestartPreventExitStatus=2).
	debug.SetTraceback("crash")
	// The SVID check re-executes this binary as the proxy's uid.
	spire.RunFetcherIfRequested()
	os.Exit(run())
}

// run is main without os.Exit, so deferred cleanups run before the process
// ends. The exit code comes from the command (see cli.Execute).
func run() int {
	ctx, stop := cli.ShutdownContext(context.Background())
	defer stop()
	return cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
