package dns

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets are the histogram's upper bounds. Loopback cache hits sit
// in the tens of microseconds, forwarded queries in the milliseconds.
var latencyBuckets = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

// rcodeNames label the responses counter; other rcodes count as "other".
var rcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "other"}

// stats are the counters of one serving goroutine (each UDP reader has its
// own, so two cores answering from the cache never share a cache line) or
// of the shared slow path. Scrapes add them up.
type stats struct {
	udp, tcp     atomic.Uint64
	hits, misses atomic.Uint64
	truncated    atomic.Uint64
	rcodes       [len(rcodeNames)]atomic.Uint64
	buckets      [len(latencyBuckets) + 1]atomic.Uint64
	sumNanos     atomic.Uint64
	_            [64]byte
}

func (st *stats) observe(resp []byte, d time.Duration) {
	if len(resp) >= headerLen {
		rc := int(resp[3] & 0xF)
		if rc >= len(rcodeNames)-1 {
			rc = len(rcodeNames) - 1
		}
		st.rcodes[rc].Add(1)
		if resp[2]&(flagTC>>8) != 0 {
			st.truncated.Add(1)
		}
	}
	i := 0
	for i < len(latencyBuckets) && d > latencyBuckets[i] {
		i++
	}
	st.buckets[i].Add(1)
	st.sumNanos.Add(uint64(d))
}

// totals is a snapshot of all counters.
type totals struct {
	udp, tcp, hits, misses, truncated uint64
	coalesced, overload               uint64
	rcodes                            [len(rcodeNames)]uint64
	buckets                           [len(latencyBuckets) + 1]uint64
	sumNanos                          uint64
	upstreamReqs, upstreamErrs        uint64
}

func (s *Server) newStats() *stats {
	st := new(stats)
	s.statsMu.Lock()
	s.allStats = append(s.allStats, st)
	s.statsMu.Unlock()
	return st
}

func (s *Server) totals() totals {
	var t totals
	s.statsMu.Lock()
	all := s.allStats
	s.statsMu.Unlock()
	for _, st := range all {
		t.udp += st.udp.Load()
		t.tcp += st.tcp.Load()
		t.hits += st.hits.Load()
		t.misses += st.misses.Load()
		t.truncated += st.truncated.Load()
		for i := range st.rcodes {
			t.rcodes[i] += st.rcodes[i].Load()
		}
		for i := range st.buckets {
			t.buckets[i] += st.buckets[i].Load()
		}
		t.sumNanos += st.sumNanos.Load()
	}
	t.coalesced = s.flight.joined.Load()
	t.overload = s.overload.Load()
	for _, u := range s.allUpstreams() {
		t.upstreamReqs += u.requests.Load()
		t.upstreamErrs += u.errs.Load()
	}
	return t
}

func (s *Server) allUpstreams() []*upstream {
	var ups []*upstream
	for _, g := range s.groups {
		ups = append(ups, g.ups...)
	}
	return ups
}

// WriteMetrics writes the forwarder's counters in the Prometheus text
// format, for an endpoint that serves them beside its own (bootstrap's
// admin endpoint).
func (s *Server) WriteMetrics(w io.Writer) error { return s.writeMetrics(w) }

// writeMetrics writes the Prometheus text exposition format (version 0.0.4).
func (s *Server) writeMetrics(w io.Writer) error {
	t := s.totals()
	entries, bytes := s.cache.stats()
	b := bufio.NewWriter(w)
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v int) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	fmt.Fprintf(b, "# HELP meshexp_dns_requests_total DNS requests received, by transport.\n# TYPE meshexp_dns_requests_total counter\n")
	fmt.Fprintf(b, "meshexp_dns_requests_total{proto=\"udp\"} %d\nmeshexp_dns_requests_total{proto=\"tcp\"} %d\n", t.udp, t.tcp)
	fmt.Fprintf(b, "# HELP meshexp_dns_responses_total DNS responses sent, by rcode.\n# TYPE meshexp_dns_responses_total counter\n")
	for i, n := range rcodeNames {
		fmt.Fprintf(b, "meshexp_dns_responses_total{rcode=%q} %d\n", n, t.rcodes[i])
	}
	counter("meshexp_dns_truncated_total", "Responses sent with TC set because they exceeded the client's size.", t.truncated)
	counter("meshexp_dns_cache_hits_total", "Requests answered from the cache.", t.hits)
	counter("meshexp_dns_cache_misses_total", "Requests that were not in the cache.", t.misses)
	counter("meshexp_dns_cache_evictions_total", "Cache entries evicted to stay within the size bounds.", s.cache.evictions.Load())
	gauge("meshexp_dns_cache_entries", "Answers in the cache.", entries)
	gauge("meshexp_dns_cache_bytes", "Approximate memory held by the cache.", bytes)
	counter("meshexp_dns_coalesced_total", "Requests that joined an identical request already in flight upstream.", t.coalesced)
	counter("meshexp_dns_overload_total", "Requests answered SERVFAIL because too many were in flight.", t.overload)
	fmt.Fprintf(b, "# HELP meshexp_dns_upstream_requests_total Queries sent to each upstream.\n# TYPE meshexp_dns_upstream_requests_total counter\n")
	for _, g := range s.groups {
		for _, u := range g.ups {
			fmt.Fprintf(b, "meshexp_dns_upstream_requests_total{group=%q,upstream=%q} %d\n", g.name, u.name, u.requests.Load())
		}
	}
	fmt.Fprintf(b, "# HELP meshexp_dns_upstream_errors_total Failed exchanges with each upstream (timeouts, refused connections, malformed answers).\n# TYPE meshexp_dns_upstream_errors_total counter\n")
	for _, g := range s.groups {
		for _, u := range g.ups {
			fmt.Fprintf(b, "meshexp_dns_upstream_errors_total{group=%q,upstream=%q} %d\n", g.name, u.name, u.errs.Load())
		}
	}
	fmt.Fprintf(b, "# HELP meshexp_dns_upstream_tcp_retries_total Truncated UDP answers asked again over TCP.\n# TYPE meshexp_dns_upstream_tcp_retries_total counter\n")
	for _, g := range s.groups {
		for _, u := range g.ups {
			fmt.Fprintf(b, "meshexp_dns_upstream_tcp_retries_total{group=%q,upstream=%q} %d\n", g.name, u.name, u.tcpRetries.Load())
		}
	}
	fmt.Fprintf(b, "# HELP meshexp_dns_upstream_healthy Whether each upstream is considered up (1) or down (0).\n# TYPE meshexp_dns_upstream_healthy gauge\n")
	for _, g := range s.groups {
		for _, u := range g.ups {
			v := 0
			if u.healthy.Load() {
				v = 1
			}
			fmt.Fprintf(b, "meshexp_dns_upstream_healthy{group=%q,upstream=%q} %d\n", g.name, u.name, v)
		}
	}
	const h = "meshexp_dns_request_duration_seconds"
	fmt.Fprintf(b, "# HELP %s Time from receiving a request to sending its response.\n# TYPE %s histogram\n", h, h)
	var cum uint64
	for i, le := range latencyBuckets {
		cum += t.buckets[i]
		fmt.Fprintf(b, "%s_bucket{le=\"%s\"} %d\n", h, strconv.FormatFloat(le.Seconds(), 'g', -1, 64), cum)
	}
	cum += t.buckets[len(latencyBuckets)]
	fmt.Fprintf(b, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %s\n%s_count %d\n", h, cum, h,
		strconv.FormatFloat(time.Duration(t.sumNanos).Seconds(), 'g', -1, 64), h, cum)
	return b.Flush()
}

func (s *Server) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := s.writeMetrics(w); err != nil {
			s.logger.Debug("dns metrics write failed", "err", err)
		}
	})
	return mux
}

// logStats logs what changed since the previous line, every interval.
type statsLogger struct {
	mu   sync.Mutex
	prev totals
}

func (s *Server) logStatsOnce(l *statsLogger) {
	t := s.totals()
	l.mu.Lock()
	p := l.prev
	l.prev = t
	l.mu.Unlock()
	n := (t.udp + t.tcp) - (p.udp + p.tcp)
	var mean time.Duration
	if n > 0 {
		mean = time.Duration((t.sumNanos - p.sumNanos) / n)
	}
	entries, _ := s.cache.stats()
	s.logger.Info("dns stats",
		"queries", n,
		"cache_hits", t.hits-p.hits,
		"cache_misses", t.misses-p.misses,
		"coalesced", t.coalesced-p.coalesced,
		"upstream_queries", t.upstreamReqs-p.upstreamReqs,
		"upstream_errors", t.upstreamErrs-p.upstreamErrs,
		"servfail", t.rcodes[rcodeServFail]-p.rcodes[rcodeServFail],
		"mean_latency", mean,
		"cache_entries", entries)
}
