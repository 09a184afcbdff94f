//go:build linux

package netns_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

func TestMain(m *testing.M) { netns.Main(m) }

func init() {
	netns.Register("whoami-dial", func(ctx context.Context, args []string) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", args[0])
		if err != nil {
			return err
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		fmt.Printf("uid=%d reply=%s", os.Getuid(), line)
		return nil
	})
}

func TestPair(t *testing.T) {
	netns.RequireRoot(t)
	p := netns.NewPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	hostNS, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, peer := range []netip.Addr{p.PeerAddr4, p.PeerAddr6} {
		t.Run("a child with its own uid reaches the peer over "+peer.String(), func(t *testing.T) {
			var ln net.Listener
			if err := p.Peer.Do(func() (err error) {
				ln, err = net.Listen("tcp", netip.AddrPortFrom(peer, 0).String())
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err == nil {
					fmt.Fprintf(c, "hello from %s\n", c.RemoteAddr())
					c.Close()
				}
			}()
			out, err := p.NS.RunChild(ctx, t, netns.As(1000), "whoami-dial", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			want := "uid=1000 reply=hello from " + net.JoinHostPort(map[bool]string{true: p.Addr4.String(), false: p.Addr6.String()}[peer.Is4()], "")
			if !strings.HasPrefix(out, want) {
				t.Fatalf("child said %q, want prefix %q", out, want)
			}
		})
	}

	t.Run("Do leaves the calling thread in the host namespace", func(t *testing.T) {
		var inside string
		if err := p.NS.Do(func() (err error) { inside, err = os.Readlink("/proc/thread-self/ns/net"); return err }); err != nil {
			t.Fatal(err)
		}
		after, _ := os.Readlink("/proc/thread-self/ns/net")
		if inside == hostNS || after != hostNS {
			t.Fatalf("namespace inside Do %s, host %s, after %s", inside, hostNS, after)
		}
	})

	t.Run("a killed child is reaped and reports the kill", func(t *testing.T) {
		c := p.NS.StartChild(t, nil, "whoami-dial", "10.213.0.2:1") // nothing listens: exits fast or is killed
		c.Kill()
		if _, err := c.Wait(ctx); err == nil {
			t.Log("child exited before the kill")
		}
		if pid := c.Pid(); pid <= 0 {
			t.Fatal("no pid " + strconv.Itoa(pid))
		}
	})
}
