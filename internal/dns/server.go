package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the forwarder. New opens its sockets; Run serves until its
// context ends.
type Server struct {
	opts   Options
	logger *slog.Logger
	now    func() time.Time

	cache     *cache // nil when the cache is off
	flight    flight
	zones     []zoneRoute
	upstreams *group   // everything outside the cluster zones
	groups    []*group // cluster first, then upstreams

	udp       []net.PacketConn
	readers   []net.PacketConn // udp and the duplicates the readers use
	tcp       []net.Listener
	metricsLn net.Listener

	sem    chan struct{} // bounds queries waiting on upstreams
	shared *stats        // counters of TCP and of the forwarding path

	statsMu  sync.Mutex
	allStats []*stats
	overload atomic.Uint64

	baseCtx context.Context // ends when Run shuts down; stops probes and forwards
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}

	running   atomic.Bool
	closeOnce sync.Once
}

// New validates opts, resolves the upstreams (from ResolvConf when none are
// given) and opens the sockets, so that a port already taken fails here,
// before the caller changes anything else.
func New(opts Options, logger *slog.Logger) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ups := opts.Upstreams
	if len(ups) == 0 {
		var err error
		if ups, err = opts.resolvConfUpstreams(); err != nil {
			return nil, &FieldError{Field: "resolv-conf", Err: err}
		}
	}
	s := &Server{
		opts:   opts,
		logger: logger,
		now:    opts.Now,
		sem:    make(chan struct{}, opts.MaxConcurrent),
		conns:  make(map[net.Conn]struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.shared = s.newStats()
	if opts.CacheSize > 0 {
		s.cache = newCache(opts.CacheSize, opts.CacheMaxBytes, opts.MinTTL, opts.MaxTTL, opts.NegativeMaxTTL)
	}
	if err := s.buildRoutes(ups); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		s.closeSockets()
		return nil, err
	}
	return s, nil
}

func (s *Server) buildRoutes(ups []netip.AddrPort) error {
	d := net.Dialer{Control: s.opts.Control}
	zones := s.opts.clusterZones()
	// The cluster servers are probed with the SOA of the service zone,
	// which kube-dns answers itself; other upstreams with the root's NS
	// (the question CoreDNS's forward plugin probes with).
	clusterProbe, err := zoneWire("svc." + fqdnLower(s.opts.ClusterDomain))
	if err != nil {
		return &FieldError{Field: "cluster-domain", Err: err}
	}
	cluster := &group{name: "cluster", probe: append(clusterProbe, 0, typeSOA, 0, 1)}
	for _, a := range s.opts.ClusterDNS {
		cluster.ups = append(cluster.ups, newUpstream(a, d, cluster.probe, s.opts.UpstreamPortReuse))
	}
	s.upstreams = &group{name: "upstream", probe: []byte{0, 0, 2, 0, 1}}
	for _, a := range ups {
		s.upstreams.ups = append(s.upstreams.ups, newUpstream(a, d, s.upstreams.probe, s.opts.UpstreamPortReuse))
	}
	s.groups = []*group{cluster, s.upstreams}
	for _, z := range zones {
		w, err := zoneWire(z)
		if err != nil {
			return &FieldError{Field: "cluster-zone", Err: err}
		}
		s.zones = append(s.zones, zoneRoute{zone: z, wire: w, g: cluster})
	}
	// Longest zone first, so the most specific one wins.
	slices.SortStableFunc(s.zones, func(a, b zoneRoute) int { return len(b.wire) - len(a.wire) })
	return nil
}

func (s *Server) open() error {
	if len(s.opts.PacketConns) > 0 {
		s.udp = s.opts.PacketConns
		s.tcp = s.opts.Listeners
	} else {
		pc, ln, err := Listen(context.Background(), s.opts.Listen)
		if err != nil {
			return &FieldError{Field: "listen", Err: err}
		}
		s.udp, s.tcp = []net.PacketConn{pc}, []net.Listener{ln}
	}
	n := s.opts.UDPReaders
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	for _, pc := range s.udp {
		conns, err := readerConns(pc, n)
		if err != nil {
			return err
		}
		s.readers = append(s.readers, conns...)
	}
	if s.opts.MetricsAddr != "" {
		ln, err := net.Listen("tcp", s.opts.MetricsAddr)
		if err != nil {
			return &FieldError{Field: "metrics-addr", Err: fmt.Errorf("listen on %s: %w", s.opts.MetricsAddr, err)}
		}
		s.metricsLn = ln
	}
	return nil
}

// Addr is the address served over UDP (TCP has the same port).
func (s *Server) Addr() net.Addr { return s.udp[0].LocalAddr() }

// TCPAddr is the address served over TCP.
func (s *Server) TCPAddr() net.Addr { return s.tcp[0].Addr() }

// MetricsAddr is the metrics listener's address, nil without one.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// Zones lists the zones sent to the cluster DNS servers.
func (s *Server) Zones() []string {
	var zs []string
	for _, z := range s.zones {
		zs = append(zs, z.zone)
	}
	return zs
}

// Upstreams lists the servers for names outside the cluster zones.
func (s *Server) Upstreams() []netip.AddrPort {
	var as []netip.AddrPort
	for _, u := range s.upstreams.ups {
		as = append(as, u.addr)
	}
	return as
}

// Run serves until ctx ends, then closes the sockets, waits for queries in
// flight (bounded by Options.Timeout) and returns nil. It returns an error
// when a socket fails.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("dns: Run called twice")
	}
	errc := make(chan error, len(s.udp)+len(s.tcp)+1)
	for _, pc := range s.readers {
		w := s.newWorker(s.newStats())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.serveUDP(pc, w); err != nil {
				errc <- err
			}
		}()
	}
	for _, ln := range s.tcp {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.serveTCP(ln); err != nil {
				errc <- err
			}
		}()
	}
	var hs *http.Server
	if s.metricsLn != nil {
		hs = &http.Server{Handler: s.metricsHandler(), ReadHeaderTimeout: 5 * time.Second}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := hs.Serve(s.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve metrics: %w", err)
			}
		}()
	}
	if s.opts.LogInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.logStats(s.baseCtx)
		}()
	}
	s.logger.Info("dns forwarder serving", "addr", s.Addr().String(), "cluster_zones", s.Zones(),
		"cluster_dns", s.opts.ClusterDNS, "upstreams", s.Upstreams())

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.cancel()
	if hs != nil {
		hs.Close()
	}
	s.closeSockets()
	s.wg.Wait()
	for _, u := range s.allUpstreams() {
		u.closeIdle()
	}
	s.logger.Info("dns forwarder stopped")
	return err
}

// Close releases the sockets of a Server whose Run was never called (Run
// closes them itself).
func (s *Server) Close() error {
	s.cancel()
	s.closeSockets()
	return nil
}

func (s *Server) closeSockets() {
	s.closeOnce.Do(func() {
		closeConns(s.udp)
		closeConns(s.readers)
		for _, ln := range s.tcp {
			ln.Close()
		}
		if s.metricsLn != nil {
			s.metricsLn.Close()
		}
		s.connsMu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.connsMu.Unlock()
	})
}

func (s *Server) logStats(ctx context.Context) {
	t := time.NewTicker(s.opts.LogInterval)
	defer t.Stop()
	var l statsLogger
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.logStatsOnce(&l)
		}
	}
}

func (s *Server) startProbe(u *upstream) {
	if !u.probing.CompareAndSwap(false, true) {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		u.probe(s.baseCtx, s)
	}()
}

// newID returns a random query ID for upstream queries (RFC 5452 §9.2).
func (s *Server) newID() uint16 { return uint16(rand.Uint32()) }

func fqdnLower(s string) string {
	if s == "" || s[len(s)-1] != '.' {
		s += "."
	}
	return toLowerASCII(s)
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
