// Command meshexp brings workloads that run outside Kubernetes (VMs, bare
// metal, podman/docker containers) into a Linkerd service mesh.
//
// See the README for the quick start and `meshexp --help` for commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshexp/meshexp/internal/cli"
	"github.com/meshexp/meshexp/internal/spire"
)

func main() {
	// The SVID check re-executes this binary as the proxy's uid.
	spire.RunFetcherIfRequested()
	os.Exit(run())
}

// run is main without os.Exit, so deferred cleanups run before the process
// ends. The exit code comes from the command (see cli.ExitCode).
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
}
