//go:build linux

package instance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/netns"
)

func TestMain(m *testing.M) { netns.Main(m) }

func init() {
	// holder takes the lock, says so on stdout... and keeps it until killed.
	netns.Register("holder", func(ctx context.Context, _ []string) error {
		l, err := Acquire(ctx, "bootstrap", "holding")
		if err != nil {
			return err
		}
		defer l.Release()
		os.Stdout.WriteString("held\n")
		<-ctx.Done()
		return nil
	})
}

func acquireIn(ns *netns.NS, want string) (l *Lock, err error) {
	err = ns.Do(func() error {
		l, err = Acquire(context.Background(), "bootstrap", want)
		return err
	})
	return l, err
}

func TestOneInstancePerNetworkNamespace(t *testing.T) {
	netns.RequireRoot(t)
	a, b := netns.New(t), netns.New(t)

	first, err := acquireIn(a, "starting")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a second one in the same namespace is refused and names the holder", func(t *testing.T) {
		_, err := acquireIn(a, "starting a second bootstrap")
		var held *HeldError
		if !errors.As(err, &held) {
			t.Fatalf("got %v, want a HeldError", err)
		}
		if held.PID != os.Getpid() || held.What != "bootstrap" {
			t.Errorf("holder = pid %d %q, want pid %d bootstrap", held.PID, held.What, os.Getpid())
		}
		for _, want := range []string{fmt.Sprintf("pid %d", os.Getpid()), "meshexp bootstrap", "starting a second bootstrap", "nothing was changed"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message %q lacks %q", err, want)
			}
		}
	})
	t.Run("another namespace is independent", func(t *testing.T) {
		other, err := acquireIn(b, "starting")
		if err != nil {
			t.Fatal(err)
		}
		other.Release()
	})
	t.Run("after release the namespace is free again", func(t *testing.T) {
		first.Release()
		l, err := acquireIn(a, "starting")
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
	})
}

func TestALockHolderKilledWithSIGKILLLeavesNoStaleLock(t *testing.T) {
	netns.RequireRoot(t)
	ns := netns.New(t)
	c := ns.StartChild(t, nil, "holder")
	// Wait until the child holds it by asking the holder, never by taking
	// the lock: a probe that held it for a moment would make the child's
	// own Acquire fail.
	var held *HeldError
	eventually.NoError(t, "the child to hold the lock", func() error {
		return ns.Do(func() (err error) {
			held, err = ask(context.Background(), &net.UnixAddr{Name: "@" + Name, Net: "unix"})
			return err
		})
	})
	if held.PID != c.Pid() {
		// ip netns exec may sit between: the holder is the test binary itself.
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", held.PID)); !strings.Contains(string(comm), "netns-child-holder") {
			t.Errorf("holder pid %d is not the child (%d)", held.PID, c.Pid())
		}
	}
	if err := syscall.Kill(held.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.Wait(context.Background())
	l, err := acquireIn(ns, "starting after the crash")
	if err != nil {
		t.Fatalf("lock not reclaimed after kill -9 of its holder: %v", err)
	}
	l.Release()
}
