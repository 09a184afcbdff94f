package dns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestQueriesAreRoutedByZone(t *testing.T) {
	e := startEnv(t, nil)
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		want   string // the answer's rdata
		server *fakeDNS
	}{
		{"a service name goes to the cluster DNS", "web.default.svc.cluster.local.", mdns.TypeA, "10.96.0.10", e.kube},
		{"a reverse name in the service network goes to the cluster DNS", "10.0.96.10.in-addr.arpa.", mdns.TypePTR, "web.default.svc.cluster.local.", e.kube},
		{"a name outside the cluster goes upstream", "www.example.com.", mdns.TypeA, "192.0.2.1", e.up},
		{"a name that only ends like the zone goes upstream", "web.xsvc.cluster.local.", mdns.TypeA, "192.0.2.1", e.up},
		{"a reverse name outside the cluster networks goes upstream", "1.2.0.192.in-addr.arpa.", mdns.TypeA, "192.0.2.1", e.up},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kubeBefore, upBefore := e.kube.total.Load(), e.up.total.Load()
			r := ask(t, e.addr, "udp", tt.qname, tt.qtype, 0)
			if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
				t.Fatalf("got rcode %s with %d answers, want NOERROR with 1:\n%v", mdns.RcodeToString[r.Rcode], len(r.Answer), r)
			}
			if got := rdata(r.Answer[0]); got != tt.want {
				t.Errorf("answer %q, want %q", got, tt.want)
			}
			kubeHits, upHits := e.kube.total.Load()-kubeBefore, e.up.total.Load()-upBefore
			if (tt.server == e.kube) != (kubeHits == 1 && upHits == 0) {
				t.Errorf("cluster DNS asked %d times, upstream %d times", kubeHits, upHits)
			}
		})
	}
}

func rdata(r mdns.RR) string {
	return strings.TrimPrefix(r.String(), r.Header().String())
}

func TestTheCacheAnswersRepeatedQuestionsWhateverTheirCase(t *testing.T) {
	e := startEnv(t, nil)
	ask(t, e.addr, "udp", "www.example.com.", mdns.TypeA, 0)
	for _, name := range []string{"www.example.com.", "WWW.Example.COM.", "wWw.eXaMpLe.CoM."} {
		r := ask(t, e.addr, "udp", name, mdns.TypeA, 0)
		if r.Question[0].Name != name {
			t.Errorf("question echoed as %q, want %q", r.Question[0].Name, name)
		}
		if len(r.Answer) != 1 {
			t.Fatalf("got %d answers, want 1", len(r.Answer))
		}
	}
	if n := e.up.count("www.example.com.", "A", "udp"); n != 1 {
		t.Errorf("upstream asked %d times, want 1 (the rest from the cache)", n)
	}
	tot := e.srv.totals()
	if tot.hits != 3 || tot.misses != 1 {
		t.Errorf("cache hits %d misses %d, want 3 and 1", tot.hits, tot.misses)
	}
	// TCP shares the cache.
	ask(t, e.addr, "tcp", "www.example.com.", mdns.TypeA, 0)
	if n := e.up.count("www.example.com.", "A", "udp") + e.up.count("www.example.com.", "A", "tcp"); n != 1 {
		t.Errorf("upstream asked %d times after a TCP query, want 1", n)
	}
}

func TestCachedAnswersAgeAndExpireWithTheirTTL(t *testing.T) {
	e := startEnv(t, nil)
	r := ask(t, e.addr, "udp", "ttl.example.com.", mdns.TypeA, 0)
	if got := r.Answer[0].Header().Ttl; got != 60 {
		t.Fatalf("first answer TTL %d, want the upstream's 60", got)
	}
	e.clock.Advance(25 * time.Second)
	r = ask(t, e.addr, "udp", "ttl.example.com.", mdns.TypeA, 0)
	if got := r.Answer[0].Header().Ttl; got != 35 {
		t.Errorf("after 25s the TTL is %d, want 35", got)
	}
	if n := e.up.count("ttl.example.com.", "A", "udp"); n != 1 {
		t.Fatalf("upstream asked %d times before expiry, want 1", n)
	}
	e.clock.Advance(35 * time.Second)
	r = ask(t, e.addr, "udp", "ttl.example.com.", mdns.TypeA, 0)
	if n := e.up.count("ttl.example.com.", "A", "udp"); n != 2 {
		t.Errorf("upstream asked %d times after expiry, want 2", n)
	}
	if got := r.Answer[0].Header().Ttl; got != 60 {
		t.Errorf("refreshed answer TTL %d, want 60", got)
	}
}

func TestTTLBoundsApply(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		o.MaxTTL = 10 * time.Second
		o.MinTTL = 5 * time.Second
	})
	r := ask(t, e.addr, "udp", "capped.example.com.", mdns.TypeA, 0)
	if got := r.Answer[0].Header().Ttl; got != 10 {
		t.Errorf("TTL %d, want it capped to 10", got)
	}
	e.clock.Advance(11 * time.Second)
	ask(t, e.addr, "udp", "capped.example.com.", mdns.TypeA, 0)
	if n := e.up.count("capped.example.com.", "A", "udp"); n != 2 {
		t.Errorf("upstream asked %d times, want 2 (the entry expired at the 10s cap)", n)
	}
}

func TestNegativeAnswersAreCachedForTheSOAMinimum(t *testing.T) {
	e := startEnv(t, nil)
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		rcode     int
		cachedFor time.Duration // 0: not cached
	}{
		// SOA TTL 120, MINIMUM 10: RFC 2308 §5 takes the smaller.
		{"NXDOMAIN is cached for the SOA minimum", "nx.example.com.", mdns.TypeA, mdns.RcodeNameError, 10 * time.Second},
		{"NODATA is cached for the SOA minimum", "nodata.example.com.", mdns.TypeA, mdns.RcodeSuccess, 10 * time.Second},
		{"NXDOMAIN without an SOA is not cached", "nosoa.example.com.", mdns.TypeA, mdns.RcodeNameError, 0},
		// kube-dns's SOA: TTL 30, MINIMUM 5.
		{"a missing service is cached for the cluster zone's minimum", "missing.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := e.up
			if strings.HasSuffix(tt.qname, "cluster.local.") {
				srv = e.kube
			}
			typ := mdns.TypeToString[tt.qtype]
			r := ask(t, e.addr, "udp", tt.qname, tt.qtype, 0)
			if r.Rcode != tt.rcode || len(r.Answer) != 0 {
				t.Fatalf("rcode %s with %d answers, want %s and none", mdns.RcodeToString[r.Rcode], len(r.Answer), mdns.RcodeToString[tt.rcode])
			}
			ask(t, e.addr, "udp", tt.qname, tt.qtype, 0)
			want := 1
			if tt.cachedFor == 0 {
				want = 2
			}
			if n := srv.count(tt.qname, typ, "udp"); n != want {
				t.Fatalf("asked upstream %d times for two queries, want %d", n, want)
			}
			if tt.cachedFor == 0 {
				return
			}
			e.clock.Advance(tt.cachedFor - time.Second)
			r = ask(t, e.addr, "udp", tt.qname, tt.qtype, 0)
			if n := srv.count(tt.qname, typ, "udp"); n != 1 {
				t.Fatalf("re-asked before the negative TTL ran out")
			}
			if len(r.Ns) != 1 || r.Ns[0].Header().Ttl > 1 {
				t.Errorf("cached negative answer's authority %v, want the SOA with TTL at most 1", r.Ns)
			}
			e.clock.Advance(time.Second)
			ask(t, e.addr, "udp", tt.qname, tt.qtype, 0)
			if n := srv.count(tt.qname, typ, "udp"); n != 2 {
				t.Errorf("asked upstream %d times after the negative TTL, want 2", n)
			}
		})
	}
}

func TestLargeAnswersTruncateOverUDPAndComeWholeOverTCP(t *testing.T) {
	e := startEnv(t, nil)
	const big = "big.default.svc.cluster.local." // 100 A records, about 1.6 KB
	r := ask(t, e.addr, "udp", big, mdns.TypeA, 0)
	if !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("UDP without EDNS: TC=%v with %d answers, want TC and none", r.Truncated, len(r.Answer))
	}
	if e.kube.count(big, "A", "tcp") != 1 {
		t.Errorf("the forwarder did not retry the truncated upstream answer over TCP")
	}
	r = ask(t, e.addr, "udp", big, mdns.TypeA, 4096)
	if !r.Truncated {
		t.Errorf("UDP with a 4096 buffer: not truncated although the answer exceeds our 1232 limit")
	}
	r = ask(t, e.addr, "tcp", big, mdns.TypeA, 0)
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("TCP: TC=%v with %d answers, want 100", r.Truncated, len(r.Answer))
	}
	const medium = "medium.default.svc.cluster.local." // 40 A records, about 670 octets
	r = ask(t, e.addr, "udp", medium, mdns.TypeA, 1232)
	if r.Truncated || len(r.Answer) != 40 {
		t.Errorf("UDP with EDNS 1232: TC=%v with %d answers, want all 40", r.Truncated, len(r.Answer))
	}
	r = ask(t, e.addr, "udp", medium, mdns.TypeA, 0)
	if !r.Truncated {
		t.Errorf("UDP without EDNS: a %d-answer response was not truncated to 512 octets", len(r.Answer))
	}
}

func TestResponsesEchoIDQuestionAndEDNS(t *testing.T) {
	e := startEnv(t, nil)
	for _, name := range []string{"Web.Default.SVC.cluster.local.", "MiXeD.ExAmPlE.oRg."} {
		for _, do := range []bool{false, true} {
			m := new(mdns.Msg)
			m.SetQuestion(name, mdns.TypeA)
			m.Id = 0xBEEF
			m.CheckingDisabled = do
			m.SetEdns0(1400, do)
			r := exchange(t, e.addr, "udp", m)
			if r.Question[0] != m.Question[0] {
				t.Errorf("question %v, want %v exactly", r.Question[0], m.Question[0])
			}
			o := r.IsEdns0()
			if o == nil {
				t.Fatalf("no OPT record in the answer to an EDNS query")
			}
			if o.Do() != do || o.UDPSize() != 1232 || r.CheckingDisabled != do {
				t.Errorf("OPT DO=%v size=%d, CD=%v; want DO=%v size=1232 CD=%v", o.Do(), o.UDPSize(), r.CheckingDisabled, do, do)
			}
			if !r.RecursionAvailable || !r.RecursionDesired || r.Authoritative {
				t.Errorf("flags RA=%v RD=%v AA=%v, want RA, RD echoed and no AA", r.RecursionAvailable, r.RecursionDesired, r.Authoritative)
			}
		}
		r := ask(t, e.addr, "udp", name, mdns.TypeA, 0)
		if r.IsEdns0() != nil {
			t.Errorf("OPT record in the answer to a query without EDNS")
		}
	}
}

func TestMalformedRequestsGetErrorsNotForwarded(t *testing.T) {
	e := startEnv(t, nil)
	tests := []struct {
		name  string
		msg   func() *mdns.Msg
		rcode int
	}{
		{"an update is not implemented", func() *mdns.Msg {
			m := new(mdns.Msg)
			m.SetUpdate("example.com.")
			return m
		}, mdns.RcodeNotImplemented},
		{"two questions are a format error", func() *mdns.Msg {
			m := new(mdns.Msg)
			m.SetQuestion("a.example.", mdns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, mdns.RcodeFormatError},
		{"EDNS version 1 is a bad version", func() *mdns.Msg {
			m := new(mdns.Msg)
			m.SetQuestion("a.example.", mdns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
			return m
		}, mdns.RcodeBadVers},
		{"a zone transfer is refused", func() *mdns.Msg {
			m := new(mdns.Msg)
			m.SetAxfr("example.com.")
			return m
		}, mdns.RcodeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.up.total.Load()
			r := exchange(t, e.addr, "udp", tt.msg())
			if r.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
			}
			if e.up.total.Load() != before {
				t.Errorf("the request reached the upstream")
			}
		})
	}
}

func TestUpstreamDownGivesServfailThenRecovers(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		o.Timeout = 500 * time.Millisecond
		o.AttemptTimeout = 250 * time.Millisecond
		o.ProbeInterval = 50 * time.Millisecond
	})
	port := e.up.addr.Port()
	e.up.stop()
	r := ask(t, e.addr, "udp", "down.example.com.", mdns.TypeA, 1232)
	if r.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("rcode %s with the upstream down, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	if ede := extendedError(r); ede != mdns.ExtendedErrorCodeNoReachableAuthority {
		t.Errorf("extended error %d, want %d (no reachable authority)", ede, mdns.ExtendedErrorCodeNoReachableAuthority)
	}
	// Once marked down, queries still fail fast.
	ask(t, e.addr, "udp", "down2.example.com.", mdns.TypeA, 0)
	if e.srv.upstreams.ups[0].healthy.Load() {
		t.Errorf("upstream still marked healthy after failures")
	}
	// The cluster zone is unaffected.
	if r := ask(t, e.addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA, 0); r.Rcode != mdns.RcodeSuccess {
		t.Errorf("cluster name: rcode %s, want NOERROR", mdns.RcodeToString[r.Rcode])
	}

	startFake(t, port, internet(t))
	eventually.True(t, "the upstream to be probed back up", func() bool { return e.srv.upstreams.ups[0].healthy.Load() })
	r = ask(t, e.addr, "udp", "back.example.com.", mdns.TypeA, 0)
	if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("after recovery: rcode %s with %d answers, want an answer", mdns.RcodeToString[r.Rcode], len(r.Answer))
	}
}

func TestASilentUpstreamGivesServfailAtTheDeadline(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		o.Timeout = 300 * time.Millisecond
		o.AttemptTimeout = 100 * time.Millisecond
	})
	m := new(mdns.Msg)
	m.SetQuestion("silent.example.com.", mdns.TypeA)
	c := &mdns.Client{Timeout: 10 * time.Second}
	r, _, err := c.Exchange(m, e.addr)
	if err != nil {
		t.Fatalf("query to a silent upstream: %v (want SERVFAIL, not a hang)", err)
	}
	if r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
	if n := e.up.count("silent.example.com.", "A", "udp"); n < 2 {
		t.Errorf("asked the silent upstream %d times, want a resend after the attempt timeout", n)
	}
}

func TestFailoverSkipsADeadUpstream(t *testing.T) {
	// A port nobody listens on: the kernel refuses at once.
	dead := deadPort(t)
	e := startEnv(t, func(o *Options) {
		o.Upstreams = []netip.AddrPort{dead, o.Upstreams[0]}
		o.ProbeInterval = time.Hour // keep it down for the test
	})
	for i := range 4 {
		name := "f" + string(rune('a'+i)) + ".example.com."
		r := ask(t, e.addr, "udp", name, mdns.TypeA, 0)
		if r.Rcode != mdns.RcodeSuccess {
			t.Fatalf("query %d: rcode %s, want NOERROR from the live upstream", i, mdns.RcodeToString[r.Rcode])
		}
	}
	if e.srv.upstreams.ups[0].healthy.Load() {
		t.Errorf("dead upstream still marked healthy")
	}
	if !e.srv.upstreams.ups[1].healthy.Load() {
		t.Errorf("live upstream marked down")
	}
}

// deadPort returns a loopback UDP address with nothing listening.
func deadPort(t *testing.T) netip.AddrPort {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(pc.LocalAddr().String())
	pc.Close()
	return ap
}

func TestServfailFromOneUpstreamTriesTheNext(t *testing.T) {
	failing := startFake(t, 0, func(q mdns.Question) *mdns.Msg {
		return &mdns.Msg{MsgHdr: mdns.MsgHdr{Rcode: mdns.RcodeServerFailure}}
	})
	e := startEnv(t, func(o *Options) { o.Upstreams = []netip.AddrPort{failing.addr, o.Upstreams[0]} })
	for i := range 3 {
		r := ask(t, e.addr, "udp", "s"+string(rune('a'+i))+".example.com.", mdns.TypeA, 0)
		if r.Rcode != mdns.RcodeSuccess {
			t.Errorf("rcode %s, want the good upstream's NOERROR", mdns.RcodeToString[r.Rcode])
		}
	}
	// With only failing answers, the client gets the SERVFAIL.
	r := ask(t, e.addr, "udp", "fail.example.com.", mdns.TypeA, 0)
	if r.Rcode != mdns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
}

func TestIdenticalQueriesInFlightAreAskedOnce(t *testing.T) {
	e := startEnv(t, func(o *Options) {
		// The first query waits upstream until all have joined it.
		o.Timeout, o.AttemptTimeout = time.Minute, time.Minute
	})
	gate := make(chan struct{})
	e.kube.mu.Lock()
	e.kube.gate = gate
	e.kube.mu.Unlock()
	const n = 20
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range n {
		wg.Go(func() {
			m := new(mdns.Msg)
			// Each asker uses its own case; they still share one trip.
			name := []byte("slow.default.svc.cluster.local.")
			if i%2 == 1 {
				name[0] = 'S'
			}
			m.SetQuestion(string(name), mdns.TypeA)
			c := &mdns.Client{Timeout: 20 * time.Second}
			r, _, err := c.Exchange(m, e.addr)
			if err != nil || r.Id != m.Id || r.Question[0].Name != string(name) || len(r.Answer) != 1 {
				t.Errorf("asker %d: %v %v", i, err, r)
				bad.Add(1)
			}
		})
	}
	eventually.True(t, "19 queries to join the first one in flight", func() bool { return e.srv.flight.joined.Load() == n-1 })
	close(gate)
	wg.Wait()
	if got := e.kube.count("slow.default.svc.cluster.local.", "A", "udp"); got != 1 {
		t.Errorf("cluster DNS asked %d times for %d identical queries, want 1", got, n)
	}
}

func TestMetricsAreServed(t *testing.T) {
	e := startEnv(t, func(o *Options) { o.MetricsAddr = "127.0.0.1:0" })
	ask(t, e.addr, "udp", "m.example.com.", mdns.TypeA, 0)
	ask(t, e.addr, "udp", "m.example.com.", mdns.TypeA, 0)
	want := []string{
		`meshexp_dns_requests_total{proto="udp"} 2`,
		`meshexp_dns_cache_hits_total 1`,
		`meshexp_dns_cache_misses_total 1`,
		`meshexp_dns_responses_total{rcode="NOERROR"} 2`,
		`meshexp_dns_upstream_requests_total{group="upstream",upstream="` + e.up.addr.String() + `"} 1`,
		`meshexp_dns_request_duration_seconds_count 2`,
	}
	// A response is counted once it has been written, so the client can
	// hold its answer a moment before the server has counted it.
	eventually.NoError(t, "the metrics to count both requests", func() error {
		resp, err := http.Get("http://" + e.srv.MetricsAddr().String() + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				return fmt.Errorf("metrics lack %q:\n%s", w, body)
			}
		}
		return nil
	})
}

func TestPreopenedSocketsAndDialControlAreUsed(t *testing.T) {
	pc, ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var controls atomic.Int32
	e := startEnv(t, func(o *Options) {
		o.Listen = "invalid: ignored with pre-opened sockets"
		o.PacketConns = []net.PacketConn{pc}
		o.UDPReaders = 3
		o.Listeners = []net.Listener{ln}
		o.Control = func(network, address string, c syscall.RawConn) error {
			controls.Add(1)
			return nil
		}
	})
	if e.addr != pc.LocalAddr().String() {
		t.Fatalf("serving on %s, want the pre-opened %s", e.addr, pc.LocalAddr())
	}
	ask(t, e.addr, "udp", "ctl.example.com.", mdns.TypeA, 0)
	ask(t, e.addr, "tcp", "big.default.svc.cluster.local.", mdns.TypeA, 0)
	// One UDP socket per upstream and one TCP connection for the retry.
	if n := controls.Load(); n < 3 {
		t.Errorf("Control ran %d times, want once per upstream socket (at least 3)", n)
	}
}

func TestRunStopsWhenItsContextEnds(t *testing.T) {
	o := DefaultOptions()
	o.Listen = "127.0.0.1:0"
	o.ClusterDNS = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}
	o.Upstreams = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}
	srv, err := New(o, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	ask(t, srv.Addr().String(), "udp", "x.example.", mdns.TypeA, 0)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s after cancel")
	}
	if _, err := net.ListenPacket("udp", srv.Addr().String()); err != nil {
		t.Errorf("the UDP port is still held after Run returned: %v", err)
	}
}

func extendedError(m *mdns.Msg) uint16 {
	if o := m.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if e, ok := opt.(*mdns.EDNS0_EDE); ok {
				return e.InfoCode
			}
		}
	}
	return 0xFFFF
}

func TestAWildcardListenerAnswersFromTheAddressAsked(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("source address selection is implemented on Linux only")
	}
	e := startEnv(t, func(o *Options) { o.Listen = "0.0.0.0:0" })
	_, port, _ := net.SplitHostPort(e.addr)
	// Every 127/8 address is local; the reply to 127.0.0.2 must come from
	// 127.0.0.2, or the client's connected socket drops it.
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		r := ask(t, net.JoinHostPort(ip, port), "udp", "wild.example.com.", mdns.TypeA, 0)
		if len(r.Answer) != 1 {
			t.Errorf("asking %s: %d answers, want 1", ip, len(r.Answer))
		}
	}
}

func TestPipelinedTCPQueriesAreAllAnswered(t *testing.T) {
	e := startEnv(t, nil)
	c, err := net.Dial("tcp", e.srv.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	names := []string{"p1.example.com.", "web.default.svc.cluster.local.", "p1.example.com.", "nx.example.com."}
	var batch []byte
	for i, name := range names {
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		m.Id = uint16(100 + i)
		b := mustPack(t, m)
		batch = append(batch, byte(len(b)>>8), byte(len(b)))
		batch = append(batch, b...)
	}
	if _, err := c.Write(batch); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	seen := map[uint16]string{}
	for range names {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			t.Fatalf("read length after %d answers: %v", len(seen), err)
		}
		b := make([]byte, int(l[0])<<8|int(l[1]))
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		var r mdns.Msg
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		seen[r.Id] = r.Question[0].Name
	}
	for i, name := range names {
		if seen[uint16(100+i)] != name {
			t.Errorf("answer for ID %d is for %q, want %q", 100+i, seen[uint16(100+i)], name)
		}
	}
}
