//go:build linux

package probe

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/netfilter"
	"github.com/meshexp/meshexp/internal/testutil/netns"
)

// TestProbesReachTheWorkloadPastInterception installs meshexp's
// interception rules in a namespace whose proxy port nobody serves. A
// connection the rules catch is redirected there and refused (shown with
// an address off the host); probes to the workload's own address reach it
// directly: they carry the control mark, and the host's own addresses go
// out on lo, which the rules exempt as well.
func TestProbesReachTheWorkloadPastInterception(t *testing.T) {
	p := netns.NewPair(t)
	ctx := context.Background()
	o := netfilter.DefaultOptions()
	o.IPv6 = netfilter.IPv6Off
	rs, err := netfilter.Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	addr := p.Addr4.String() + ":8000"
	var l net.Listener
	if err := p.NS.Do(func() error {
		r, err := netfilter.NewRunner(ctx, netfilter.BackendNFT, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		if err := r.Install(ctx, rs); err != nil {
			return err
		}
		l, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { _ = http.Serve(l, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) }()

	probe := func(r Runner, s string) error {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return r.Once(c, mustParse(t, s))
	}
	// Dials happen on other goroutines (net/http, gRPC): each enters the
	// namespace itself.
	inNS := func(d *net.Dialer) DialFunc {
		return func(ctx context.Context, network, a string) (c net.Conn, err error) {
			_ = p.NS.Do(func() error { c, err = d.DialContext(ctx, network, a); return nil })
			return c, err
		}
	}
	marked := Runner{Dial: inNS(netfilter.ControlDialer(o.ControlMark))}
	unmarked := Runner{Dial: inNS(&net.Dialer{})}
	for _, s := range []string{"http://" + addr + "/healthz", "tcp://" + addr} {
		if err := probe(marked, s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	// The rules are live: the peer serves 8000 too, yet an unmarked
	// connection to it is redirected to the absent proxy.
	var pl net.Listener
	if err := p.Peer.Do(func() (err error) { pl, err = net.Listen("tcp", p.PeerAddr4.String()+":8000"); return }); err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	peer := "tcp://" + p.PeerAddr4.String() + ":8000"
	if err := probe(unmarked, peer); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("unmarked to the peer: %v, want it redirected to the absent proxy and refused", err)
	}
	if err := probe(marked, peer); err != nil {
		t.Errorf("marked to the peer: %v", err)
	}
}
