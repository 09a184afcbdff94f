package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// fakeDNS is a real DNS server on loopback (UDP and TCP on one port),
// answering from a handler and counting what it was asked.
type fakeDNS struct {
	t      *testing.T
	addr   netip.AddrPort
	mu     sync.Mutex
	hits   map[string]int // "name type proto"
	total  atomic.Int64
	gate   chan struct{} // when set, names starting with "slow." wait on it
	udp    *mdns.Server
	tcp    *mdns.Server
	answer func(q mdns.Question) *mdns.Msg
}

// startFake serves answer on 127.0.0.1 (port 0 picks one).
func startFake(t *testing.T, port uint16, answer func(q mdns.Question) *mdns.Msg) *fakeDNS {
	t.Helper()
	f := &fakeDNS{t: t, hits: map[string]int{}, answer: answer}
	pc, ln, err := Listen(context.Background(), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String())
	if err != nil {
		t.Fatalf("start fake DNS server: %v", err)
	}
	f.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	f.udp = &mdns.Server{PacketConn: pc, Handler: f, NotifyStartedFunc: notify}
	f.tcp = &mdns.Server{Listener: ln, Handler: f, NotifyStartedFunc: notify}
	go f.udp.ActivateAndServe()
	go f.tcp.ActivateAndServe()
	for range 2 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("fake DNS server did not start within 10s")
		}
	}
	t.Cleanup(f.stop)
	return f
}

func (f *fakeDNS) stop() {
	f.udp.Shutdown()
	f.tcp.Shutdown()
}

func (f *fakeDNS) ServeDNS(w mdns.ResponseWriter, r *mdns.Msg) {
	q := r.Question[0]
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	f.mu.Lock()
	f.hits[fmt.Sprintf("%s %s %s", strings.ToLower(q.Name), mdns.TypeToString[q.Qtype], proto)]++
	gate := f.gate
	f.mu.Unlock()
	f.total.Add(1)
	if gate != nil && strings.HasPrefix(strings.ToLower(q.Name), "slow.") {
		<-gate
	}
	m := f.answer(q)
	if m == nil {
		return // silent: a server that lost the query
	}
	rcode := m.Rcode
	m.SetReply(r)
	m.Rcode = rcode
	m.Authoritative = true
	m.Compress = true
	if proto == "udp" {
		size := mdns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// count returns how often name (lower case, fully qualified) of type typ
// was asked over proto ("udp" or "tcp").
func (f *fakeDNS) count(name, typ, proto string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[name+" "+typ+" "+proto]
}

func rr(t *testing.T, s string) mdns.RR {
	t.Helper()
	r, err := mdns.NewRR(s)
	if err != nil {
		t.Fatalf("bad test record %q: %v", s, err)
	}
	return r
}

// kubeDNS plays kube-dns: a few services under svc.cluster.local, PTR
// records for the service network, NXDOMAIN with the zone's SOA otherwise.
func kubeDNS(t *testing.T) func(mdns.Question) *mdns.Msg {
	soa := rr(t, "svc.cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5")
	return func(q mdns.Question) *mdns.Msg {
		m := new(mdns.Msg)
		name := strings.ToLower(q.Name)
		switch {
		case name == "web.default.svc.cluster.local." && q.Qtype == mdns.TypeA:
			m.Answer = append(m.Answer, rr(t, q.Name+" 30 IN A 10.96.0.10"))
		case name == "big.default.svc.cluster.local." && q.Qtype == mdns.TypeA:
			for i := range 100 {
				m.Answer = append(m.Answer, rr(t, fmt.Sprintf("%s 30 IN A 10.97.0.%d", q.Name, i)))
			}
		case name == "medium.default.svc.cluster.local." && q.Qtype == mdns.TypeA:
			for i := range 40 {
				m.Answer = append(m.Answer, rr(t, fmt.Sprintf("%s 30 IN A 10.98.0.%d", q.Name, i)))
			}
		case name == "svc.cluster.local." && q.Qtype == mdns.TypeSOA:
			m.Answer = append(m.Answer, soa)
		case name == "10.0.96.10.in-addr.arpa." && q.Qtype == mdns.TypePTR:
			m.Answer = append(m.Answer, rr(t, q.Name+" 30 IN PTR web.default.svc.cluster.local."))
		case strings.HasPrefix(name, "slow."):
			m.Answer = append(m.Answer, rr(t, q.Name+" 30 IN A 10.96.0.99"))
		default:
			m.Rcode = mdns.RcodeNameError
			m.Ns = append(m.Ns, soa)
		}
		return m
	}
}

// internet plays the world's resolvers: any name has an A record, except
// the nx. and nodata. names and the silent. ones, which get no answer.
func internet(t *testing.T) func(mdns.Question) *mdns.Msg {
	soa := rr(t, "example. 120 IN SOA ns.example. hostmaster.example. 1 7200 1800 86400 10")
	return func(q mdns.Question) *mdns.Msg {
		m := new(mdns.Msg)
		name := strings.ToLower(q.Name)
		switch {
		case strings.HasPrefix(name, "silent."):
			return nil
		case strings.HasPrefix(name, "nx."):
			m.Rcode = mdns.RcodeNameError
			m.Ns = append(m.Ns, soa)
		case strings.HasPrefix(name, "nosoa."):
			m.Rcode = mdns.RcodeNameError
		case strings.HasPrefix(name, "nodata."), q.Qtype != mdns.TypeA && q.Qtype != mdns.TypeNS:
			m.Ns = append(m.Ns, soa)
		case strings.HasPrefix(name, "fail."):
			m.Rcode = mdns.RcodeServerFailure
		case q.Qtype == mdns.TypeNS:
			m.Answer = append(m.Answer, rr(t, q.Name+" 3600 IN NS a.root-servers.net."))
		default:
			m.Answer = append(m.Answer, rr(t, q.Name+" 60 IN A 192.0.2.1"))
		}
		return m
	}
}

// fakeClock is the cache's clock in tests: it moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testEnv is a forwarder between a fake kube-dns and a fake upstream.
type testEnv struct {
	srv   *Server
	kube  *fakeDNS
	up    *fakeDNS
	clock *fakeClock
	addr  string
}

// startEnv starts the fakes and a forwarder; tweak adjusts its options.
func startEnv(t *testing.T, tweak func(*Options)) *testEnv {
	t.Helper()
	e := &testEnv{clock: newFakeClock()}
	e.kube = startFake(t, 0, kubeDNS(t))
	e.up = startFake(t, 0, internet(t))
	o := DefaultOptions()
	o.Listen = "127.0.0.1:0"
	o.ClusterDNS = []netip.AddrPort{e.kube.addr}
	o.Upstreams = []netip.AddrPort{e.up.addr}
	o.ClusterCIDRs = []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}
	o.Now = e.clock.Now
	o.LogInterval = 0
	if tweak != nil {
		tweak(&o)
	}
	e.srv = runServer(t, o)
	e.addr = e.srv.Addr().String()
	return e
}

// runServer starts a Server and stops it (checking Run's result) at cleanup.
func runServer(t *testing.T, o Options) *Server {
	t.Helper()
	srv, err := New(o, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of its context ending")
		}
	})
	return srv
}

// ask sends a query for name/typ over proto and returns the response.
func ask(t *testing.T, addr, proto, name string, typ uint16, edns uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, typ)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	return exchange(t, addr, proto, m)
}

func exchange(t *testing.T, addr, proto string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: proto, Timeout: 10 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s over %s: %v", m.Question[0].Name, proto, err)
	}
	if r.Id != m.Id {
		t.Fatalf("response ID %d, want %d", r.Id, m.Id)
	}
	return r
}
