package kube

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

// The benchmarks register and heartbeat N simulated hosts against one real
// API server, each host with its own least-privilege token (from the RBAC
// `meshexp workload rbac` prints) and its own connection, as real hosts
// would have. They report API writes per second and what kube-apiserver and
// etcd spent (CPU from /proc/PID/stat, RSS from /proc/PID/status).
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/kube/
//
// Sizes: 100, 500 and 2000 hosts, or -bench-hosts.
var benchHosts = flag.String("bench-hosts", "100,500,2000", "comma-separated fleet sizes for the registration benchmarks")

func benchSizes(b *testing.B) []int {
	var sizes []int
	for _, f := range strings.Split(*benchHosts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("-bench-hosts %q: want positive numbers separated by commas", *benchHosts)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// benchConcurrency is how many hosts talk to the API server at once in the
// throughput benchmarks: enough to keep it busy on 2 cores without
// measuring only queueing.
const benchConcurrency = 32

// writeCounter counts the requests that change something (non-GET) and
// the ones the API server throttled (429, retried by client-go).
type writeCounter struct{ writes, reads, throttled atomic.Int64 }

func (c *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return &countingTransport{c: c, rt: rt}
}

type countingTransport struct {
	c  *writeCounter
	rt http.RoundTripper
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if r.Method == http.MethodGet {
		t.c.reads.Add(1)
	} else {
		t.c.writes.Add(1)
	}
	if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
		t.c.throttled.Add(1)
	}
	return resp, err
}

// WrappedRoundTripper lets Client.Close reach the connections underneath.
func (t *countingTransport) WrappedRoundTripper() http.RoundTripper { return t.rt }

type benchFleet struct {
	hosts   []*Registrar
	clients []*Client
	counter *writeCounter
}

// close drops the hosts' connections.
func (f *benchFleet) close() {
	for _, c := range f.clients {
		c.Close()
	}
}

var (
	fleetsMu sync.Mutex
	fleets   = map[int]*benchFleet{}
)

// newFleet makes n hosts in a fresh namespace, each with its RBAC, token
// and client; none is registered yet.
func newFleet(b *testing.B, srv *kubetest.Server, n int) *benchFleet {
	b.Helper()
	ctx := context.Background()
	adminCfg := srv.AdminConfig()
	adminCfg.QPS, adminCfg.Burst = -1, 0 // setup is not what is measured
	admin, err := NewClient(adminCfg)
	if err != nil {
		b.Fatal(err)
	}
	ns := srv.CreateNamespace(b, fmt.Sprintf("bench-%d", n))
	f := &benchFleet{counter: &writeCounter{}, hosts: make([]*Registrar, n), clients: make([]*Client, n)}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	err = forEach(n, benchConcurrency, func(i int) error {
		w := Workload{
			Name:        fmt.Sprintf("host-%04d", i),
			Namespace:   ns,
			Identity:    fmt.Sprintf("spiffe://root.linkerd.cluster.local/host-%04d", i),
			ServerName:  fmt.Sprintf("host-%04d.cluster.local", i),
			IPs:         []netip.Addr{netip.AddrFrom4([4]byte{10, 200, byte(i >> 8), byte(i)})},
			Ports:       []Port{{Name: "http", Port: 8000, Protocol: ProtocolTCP}},
			ServicePort: 80,
		}
		rbac := RenderRBAC(&w)
		if err := admin.ApplyRBAC(ctx, rbac); err != nil {
			return err
		}
		token, _, err := admin.RequestToken(ctx, rbac, 24*time.Hour)
		if err != nil {
			return err
		}
		cfg := srv.TokenConfig(token)
		// Its own dialer gives each host its own transport and
		// connection, as separate machines have. client-go's default
		// client-side limit (QPS 5) stays: one host never needs more.
		var d net.Dialer
		cfg.Dial = d.DialContext
		cfg.WrapTransport = f.counter.wrap
		c, err := NewClient(cfg)
		if err != nil {
			return err
		}
		f.clients[i] = c
		r, err := NewRegistrar(c, w, func(context.Context) error { return nil }, Options{Holder: w.Name}, quiet)
		if err != nil {
			return err
		}
		f.hosts[i] = r
		return nil
	})
	if err != nil {
		b.Fatalf("set up %d hosts: %v", n, err)
	}
	return f
}

// register brings every host of f up at once, benchConcurrency at a time.
func (f *benchFleet) register(ctx context.Context) error {
	return forEach(len(f.hosts), benchConcurrency, func(i int) error {
		r := f.hosts[i]
		r.probeOnce(ctx)
		return r.sync(ctx)
	})
}

// forEach runs fn(0..n-1) on `workers` goroutines and returns the first error.
func forEach(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// serverUsage is kube-apiserver's and etcd's CPU time and RSS.
type serverUsage struct {
	apiCPU, etcdCPU time.Duration
	apiRSS, etcdRSS int64
}

func usage(b *testing.B, srv *kubetest.Server) serverUsage {
	b.Helper()
	var u serverUsage
	var err error
	if u.apiCPU, u.apiRSS, err = kubetest.ProcStats(srv.APIServerPID()); err != nil {
		b.Fatal(err)
	}
	if u.etcdCPU, u.etcdRSS, err = kubetest.ProcStats(srv.EtcdPID()); err != nil {
		b.Fatal(err)
	}
	return u
}

// spent accumulates what the servers spent over the timed parts.
type spent struct {
	apiCPU, etcdCPU time.Duration
	writes          int64
	elapsed         time.Duration
	last            serverUsage
}

func (s *spent) add(before, after serverUsage, writes int64, elapsed time.Duration) {
	s.apiCPU += after.apiCPU - before.apiCPU
	s.etcdCPU += after.etcdCPU - before.etcdCPU
	s.writes += writes
	s.elapsed += elapsed
	s.last = after
}

func (s *spent) report(b *testing.B) {
	secs := s.elapsed.Seconds()
	b.ReportMetric(float64(s.writes)/secs, "writes/s")
	if s.writes > 0 {
		b.ReportMetric(float64(s.apiCPU.Microseconds())/1000/float64(s.writes), "apiserver-cpu-ms/write")
		b.ReportMetric(float64(s.etcdCPU.Microseconds())/1000/float64(s.writes), "etcd-cpu-ms/write")
	}
	b.ReportMetric(s.apiCPU.Seconds()/secs, "apiserver-cores")
	b.ReportMetric(float64(s.last.apiRSS)/(1<<20), "apiserver-rss-MiB")
	b.ReportMetric(float64(s.last.etcdRSS)/(1<<20), "etcd-rss-MiB")
}

// BenchmarkRegister measures hosts coming up together: one op is N fresh
// hosts each applying its ExternalWorkload and Service, writing Ready=True
// and creating its Lease (4 writes per host). Making the hosts' RBAC and
// tokens is not timed.
func BenchmarkRegister(b *testing.B) {
	for _, n := range benchSizes(b) {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			b.StopTimer() // starting the server is not registration
			srv := kubetest.Get(b)
			ctx := context.Background()
			var s spent
			var throttled int64
			for range b.N {
				b.StopTimer()
				f := newFleet(b, srv, n)
				before := usage(b, srv)
				b.StartTimer()
				start := time.Now()
				err := f.register(ctx)
				elapsed := time.Since(start)
				b.StopTimer()
				if err != nil {
					b.Fatalf("register %d hosts: %v", n, err)
				}
				s.add(before, usage(b, srv), f.counter.writes.Load(), elapsed)
				throttled += f.counter.throttled.Load()
				f.close()
			}
			s.report(b)
			b.ReportMetric(float64(n*b.N)/s.elapsed.Seconds(), "hosts/s")
			b.ReportMetric(float64(throttled), "throttled-429")
		})
	}
}

// BenchmarkHeartbeat measures Lease renewals as fast as the API server
// takes them: one op renews every host's Lease once (one Update each).
func BenchmarkHeartbeat(b *testing.B) {
	for _, n := range benchSizes(b) {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			srv := kubetest.Get(b)
			f := registeredFleet(b, srv, n)
			ctx := context.Background()
			before := usage(b, srv)
			w0 := f.counter.writes.Load()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if err := forEach(n, benchConcurrency, func(i int) error {
					return f.hosts[i].lease.renew(ctx, time.Now())
				}); err != nil {
					b.Fatalf("renew: %v", err)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			var s spent
			s.add(before, usage(b, srv), f.counter.writes.Load()-w0, elapsed)
			s.report(b)
		})
	}
}

// BenchmarkSteadyState runs every host's real Registrar with the default
// intervals (probe every 10s, Lease renewed every 10s), started at even
// offsets over one interval as hosts that booted at different times would
// be, and measures one op = one 10s renew interval after a warm-up
// interval. This is the load a fleet of N hosts puts on the API server.
func BenchmarkSteadyState(b *testing.B) {
	for _, n := range benchSizes(b) {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			srv := kubetest.Get(b)
			f := registeredFleet(b, srv, n)
			interval := f.hosts[0].opts.RenewInterval
			idle := idleCores(b, srv, interval)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for i, r := range f.hosts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					select {
					case <-time.After(time.Duration(i) * interval / time.Duration(n)):
					case <-ctx.Done():
						return
					}
					_ = r.Run(ctx)
				}()
			}
			time.Sleep(interval + interval/2) // all started and past their first sync
			before := usage(b, srv)
			w0 := f.counter.writes.Load()
			b.ResetTimer()
			start := time.Now()
			time.Sleep(time.Duration(b.N) * interval)
			elapsed := time.Since(start)
			b.StopTimer()
			after := usage(b, srv)
			writes := f.counter.writes.Load() - w0
			// Stop without the graceful path's writes: this is not what is
			// measured, and a later run reuses the hosts.
			for _, r := range f.hosts {
				r.opts.ShutdownTimeout = time.Nanosecond
			}
			cancel()
			wg.Wait()
			for _, r := range f.hosts {
				r.registered = false // the next run re-learns the status
			}
			var s spent
			s.add(before, after, writes, elapsed)
			s.report(b)
			b.ReportMetric(idle, "apiserver-idle-cores")
		})
	}
}

var (
	idleOnce sync.Once
	idle     float64
)

// idleCores is kube-apiserver's CPU use with no client at all, measured
// once over one interval: its own background work (priority and fairness,
// lease and endpoint reconcilers), to subtract from the steady state.
func idleCores(b *testing.B, srv *kubetest.Server, window time.Duration) float64 {
	idleOnce.Do(func() {
		before := usage(b, srv)
		time.Sleep(window)
		idle = (usage(b, srv).apiCPU - before.apiCPU).Seconds() / window.Seconds()
	})
	return idle
}

// registeredFleet returns n registered hosts, made once per size and
// shared by the heartbeat and steady-state benchmarks.
func registeredFleet(b *testing.B, srv *kubetest.Server, n int) *benchFleet {
	b.Helper()
	fleetsMu.Lock()
	defer fleetsMu.Unlock()
	if f, ok := fleets[n]; ok {
		return f
	}
	f := newFleet(b, srv, n)
	if err := f.register(context.Background()); err != nil {
		b.Fatalf("register %d hosts: %v", n, err)
	}
	fleets[n] = f
	return f
}
