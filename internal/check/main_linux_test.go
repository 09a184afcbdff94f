//go:build linux

package check

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/meshexp/meshexp/internal/spire"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
	"github.com/meshexp/meshexp/internal/testutil/netns"
)

func TestMain(m *testing.M) {
	// The SVID check re-executes this binary as the proxy uid.
	spire.RunFetcherIfRequested()
	if os.Getenv("MESHEXP_NETNS_CHILD") != "" {
		netns.Main(m) // runs the child and exits
	}
	code := m.Run()
	kubetest.Stop()
	os.Exit(code)
}

func init() {
	// Children print "ok" or the check's error, so the parent can assert.
	run := func(f func(context.Context) (string, error)) error {
		if _, err := f(context.Background()); err != nil {
			fmt.Println("error:", err)
			return nil
		}
		fmt.Println("ok")
		return nil
	}
	netns.Register("netadmin", func(context.Context, []string) error { return run(NetAdmin) })
	netns.Register("natprobe", func(_ context.Context, args []string) error {
		return run(NATProbe(args[0], 2102, 4143))
	})
	netns.Register("listen", func(_ context.Context, args []string) error {
		l, err := net.Listen("tcp", args[0])
		if err != nil {
			return err
		}
		defer l.Close()
		for {
			c, err := l.Accept()
			if err != nil {
				return errors.New("accept: " + err.Error())
			}
			c.Close()
		}
	})
}
