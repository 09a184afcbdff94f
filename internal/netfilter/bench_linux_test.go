//go:build linux

package netfilter

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

// demoCommands are the mesh-expansion demo's interception rules as it
// installs them, one iptables run each (docs/DESIGN.md lists them: two
// chains, eight rules). Its comments carry a timestamp; a constant stands
// in for it.
var demoCommands = [][]string{
	{"-t", "nat", "-N", ChainRedirect},
	{"-t", "nat", "-A", ChainRedirect, "-p", "tcp", "--match", "multiport", "--dports", "4190,4191,4567,4568", "-j", "RETURN", "-m", "comment", "--comment", "proxy-init/ignore-port-4190,4191,4567,4568/1700000000"},
	{"-t", "nat", "-A", ChainRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-port", "4143", "-m", "comment", "--comment", "proxy-init/redirect-all-incoming-to-proxy-port/1700000000"},
	{"-t", "nat", "-A", "PREROUTING", "-j", ChainRedirect, "-m", "comment", "--comment", "proxy-init/install-proxy-init-prerouting/1700000000"},
	{"-t", "nat", "-N", ChainOutput},
	{"-t", "nat", "-A", ChainOutput, "-m", "owner", "--uid-owner", "0", "-j", "RETURN", "-m", "comment", "--comment", "proxy-init/ignore-proxy-user-id/1700000000"},
	{"-t", "nat", "-A", ChainOutput, "-o", "lo", "-j", "RETURN", "-m", "comment", "--comment", "proxy-init/ignore-loopback/1700000000"},
	{"-t", "nat", "-A", ChainOutput, "-p", "tcp", "--match", "multiport", "--dports", "443,6443", "-j", "RETURN", "-m", "comment", "--comment", "proxy-init/ignore-port-443,6443/1700000000"},
	{"-t", "nat", "-A", ChainOutput, "-p", "tcp", "-j", "REDIRECT", "--to-port", "4140", "-m", "comment", "--comment", "proxy-init/redirect-all-outgoing-to-proxy-port/1700000000"},
	{"-t", "nat", "-A", "OUTPUT", "-j", ChainOutput, "-m", "comment", "--comment", "proxy-init/install-proxy-init-output/1700000000"},
}

// demoCleanup undoes demoCommands (untimed).
var demoCleanup = "*nat\n-F PREROUTING\n-F OUTPUT\n-F " + ChainRedirect + "\n-X " + ChainRedirect + "\n-F " + ChainOutput + "\n-X " + ChainOutput + "\nCOMMIT\n"

// BenchmarkInstall measures installing interception into a namespace:
// meshexp's way (read the table, one iptables-restore transaction) against
// the demo's (one iptables run per chain and rule). Each iteration starts
// from a namespace without the rules; the removal is not timed.
//
//	sudo go test -run '^$' -bench Install ./internal/netfilter/
func BenchmarkInstall(b *testing.B) {
	for _, backend := range backends() {
		flavour := strings.TrimPrefix(string(backend), "iptables-")
		b.Run(string(backend), func(b *testing.B) {
			netns.RequireRoot(b)
			r, err := NewRunner(context.Background(), backend, nil)
			if err != nil {
				b.Skip(err)
			}
			for _, fam := range []struct {
				name string
				ipv6 IPv6Mode
			}{{"meshexp-restore-ipv4", IPv6Off}, {"meshexp-restore-ipv4+ipv6", IPv6On}} {
				b.Run(fam.name, func(b *testing.B) {
					ns := netns.New(b)
					o := DefaultOptions()
					o.IPv6 = fam.ipv6
					rs, err := Plan(o)
					if err != nil {
						b.Fatal(err)
					}
					ctx := context.Background()
					err = ns.Do(func() error {
						b.ResetTimer()
						for b.Loop() {
							if err := r.Install(ctx, rs); err != nil {
								return err
							}
							b.StopTimer()
							if err := r.Remove(ctx); err != nil {
								return err
							}
							b.StartTimer()
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				})
			}
			b.Run("demo-10-iptables-runs-ipv4", func(b *testing.B) {
				ns := netns.New(b)
				bin := "iptables-" + flavour
				err := ns.Do(func() error {
					b.ResetTimer()
					for b.Loop() {
						for _, args := range demoCommands {
							if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
								return fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, out)
							}
						}
						b.StopTimer()
						cmd := exec.Command(bin+"-restore", "--noflush")
						cmd.Stdin = strings.NewReader(demoCleanup)
						if out, err := cmd.CombinedOutput(); err != nil {
							return fmt.Errorf("clean up: %w: %s", err, out)
						}
						b.StartTimer()
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
