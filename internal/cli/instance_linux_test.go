//go:build linux

package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/instance"
	"github.com/meshexp/meshexp/internal/testutil/netns"
)

func TestInterceptInstallAndRemoveRefuseWhileABootstrapRuns(t *testing.T) {
	netns.RequireRoot(t)
	ns := netns.New(t)
	var lock *instance.Lock
	if err := ns.Do(func() (err error) {
		lock, err = instance.Acquire(context.Background(), "bootstrap", "test")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	before := allRules(t, ns)
	for _, sub := range []string{"install", "remove"} {
		t.Run(sub, func(t *testing.T) {
			code, _, stderr := inNS(t, ns, []string{"intercept", sub}, nil)
			if code != ExitBusy {
				t.Errorf("exit %d, want %d (another instance)", code, ExitBusy)
			}
			for _, want := range []string{"meshexp bootstrap", fmt.Sprintf("pid %d", os.Getpid()), "nothing was changed"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("message lacks %q:\n%s", want, stderr)
				}
			}
			if after := allRules(t, ns); after != before {
				t.Errorf("rules changed:\n%s\nwas:\n%s", after, before)
			}
		})
	}
}
