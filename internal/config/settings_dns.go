package config

import "time"

// The DNS forwarder's tuning, which only `meshexp dns` exposes (bootstrap
// keeps the forwarder's defaults). Each keeps the environment variable the
// command always had; its old flag name, without the dns- prefix, still
// works with a warning. The defaults are internal/dns.DefaultOptions (a
// test in internal/cli checks).
func init() {
	old := func(flag string) []Alias { return []Alias{{Flag: flag, Scope: ScopeDNSServer}} }
	dur := func(f func(d *DNS) *time.Duration) func(*Config, string) error {
		return duration(func(c *Config) *time.Duration { return f(&c.DNS) })
	}
	num := func(f func(d *DNS) *int64, min, max int64) func(*Config, string) error {
		return integer(func(c *Config) *int64 { return f(&c.DNS) }, min, max)
	}
	register(
		&Setting{Name: "dns-cluster-zones", Env: []string{"MESHEXP_DNS_CLUSTER_ZONES"}, List: true, Group: "dns", Scope: ScopeDNSServer,
			Aliases: []Alias{{Flag: "cluster-zone", Env: "MESHEXP_DNS_CLUSTER_ZONE", Scope: ScopeDNSServer}},
			Usage:   "more zones for --cluster-dns (e.g. cluster.local. for pod records too)",
			parse: func(c *Config, v string) error {
				c.DNS.ClusterZones = splitList(v)
				return nil
			}},
		&Setting{Name: "dns-resolv-conf", Env: []string{"MESHEXP_DNS_RESOLV_CONF"}, Default: "/etc/resolv.conf", Group: "dns", Scope: ScopeDNSServer, Aliases: old("resolv-conf"),
			Usage: "file whose nameservers are the upstreams when --dns-upstream is not given (on systemd-resolved hosts: /run/systemd/resolve/resolv.conf)",
			parse: str(func(c *Config) *string { return &c.DNS.ResolvConf })},
		&Setting{Name: "dns-timeout", Env: []string{"MESHEXP_DNS_TIMEOUT"}, Default: "2s", Group: "dns", Scope: ScopeDNSServer, Aliases: old("timeout"),
			Usage: "answer SERVFAIL when no upstream answered a query within this",
			Kind:  "duration", parse: dur(func(d *DNS) *time.Duration { return &d.Timeout })},
		&Setting{Name: "dns-attempt-timeout", Env: []string{"MESHEXP_DNS_ATTEMPT_TIMEOUT"}, Default: "1s", Group: "dns", Scope: ScopeDNSServer, Aliases: old("attempt-timeout"),
			Usage: "give up on one upstream after this and try the next",
			Kind:  "duration", parse: dur(func(d *DNS) *time.Duration { return &d.AttemptTimeout })},
		&Setting{Name: "dns-max-fails", Env: []string{"MESHEXP_DNS_MAX_FAILS"}, Default: "2", Group: "dns", Scope: ScopeDNSServer, Aliases: old("max-fails"),
			Usage: "failures in a row that mark an upstream down until a probe succeeds",
			Kind:  "int", parse: num(func(d *DNS) *int64 { return &d.MaxFails }, 1, 1000)},
		&Setting{Name: "dns-probe-interval", Env: []string{"MESHEXP_DNS_PROBE_INTERVAL"}, Default: "500ms", Group: "dns", Scope: ScopeDNSServer, Aliases: old("probe-interval"),
			Usage: "how often an upstream marked down is probed",
			Kind:  "duration", parse: dur(func(d *DNS) *time.Duration { return &d.ProbeInterval })},
		&Setting{Name: "dns-upstream-port-reuse", Env: []string{"MESHEXP_DNS_UPSTREAM_PORT_REUSE"}, Default: "256", Group: "dns", Scope: ScopeDNSServer, Aliases: old("upstream-port-reuse"),
			Usage: "queries one upstream socket carries before a new one on a random port replaces it (1: a new port for every query, as dnsmasq does)",
			Kind:  "int", parse: num(func(d *DNS) *int64 { return &d.UpstreamPortReuse }, 1, 65536)},
		&Setting{Name: "dns-cache-size", Env: []string{"MESHEXP_DNS_CACHE_SIZE"}, Default: "10000", Group: "dns", Scope: ScopeDNSServer, Aliases: old("cache-size"),
			Usage: "answers kept in the cache (0 turns the cache off)",
			Kind:  "int", parse: num(func(d *DNS) *int64 { return &d.CacheSize }, 0, 10_000_000)},
		&Setting{Name: "dns-cache-max-bytes", Env: []string{"MESHEXP_DNS_CACHE_MAX_BYTES"}, Default: "33554432", Group: "dns", Scope: ScopeDNSServer, Aliases: old("cache-max-bytes"),
			Usage: "approximate memory bound of the cache in bytes",
			Kind:  "int", parse: num(func(d *DNS) *int64 { return &d.CacheMaxBytes }, 64<<10, 16<<30)},
		&Setting{Name: "dns-min-ttl", Env: []string{"MESHEXP_DNS_MIN_TTL"}, Default: "0s", Group: "dns", Scope: ScopeDNSServer, Aliases: old("min-ttl"),
			Usage: "keep answers in the cache at least this long",
			Kind:  "duration", parse: dur(func(d *DNS) *time.Duration { return &d.MinTTL })},
		&Setting{Name: "dns-max-ttl", Env: []string{"MESHEXP_DNS_MAX_TTL"}, Default: "1h", Group: "dns", Scope: ScopeDNSServer, Aliases: old("max-ttl"),
			Usage: "keep answers in the cache at most this long",
			Kind:  "duration", parse: dur(func(d *DNS) *time.Duration { return &d.MaxTTL })},
		&Setting{Name: "dns-negative-max-ttl", Env: []string{"MESHEXP_DNS_NEGATIVE_MAX_TTL"}, Default: "30m", Group: "dns", Scope: ScopeDNSServer, Aliases: old("negative-max-ttl"),
			Usage: "keep NXDOMAIN and NODATA answers at most this long (RFC 2308: the SOA minimum applies first)",
			Kind:  "duration", parse: dur(func(d *DNS) *time.Duration { return &d.NegativeMaxTTL })},
		&Setting{Name: "dns-udp-size", Env: []string{"MESHEXP_DNS_UDP_SIZE"}, Default: "1232", Group: "dns", Scope: ScopeDNSServer, Aliases: old("udp-size"),
			Usage: "EDNS buffer size advertised to clients and upstreams (DNS Flag Day 2020)",
			Kind:  "int", parse: num(func(d *DNS) *int64 { return &d.UDPSize }, 512, 4096)},
		&Setting{Name: "dns-udp-readers", Env: []string{"MESHEXP_DNS_UDP_READERS"}, Default: "0", Group: "dns", Scope: ScopeDNSServer, Aliases: old("udp-readers"),
			Usage: "goroutines reading the UDP socket, each on its own descriptor of it (0: one per CPU)",
			Kind:  "int", parse: num(func(d *DNS) *int64 { return &d.UDPReaders }, 0, 64)},
		&Setting{Name: "dns-max-concurrent", Env: []string{"MESHEXP_DNS_MAX_CONCURRENT"}, Default: "1000", Group: "dns", Scope: ScopeDNSServer, Aliases: old("max-concurrent"),
			Usage: "queries waiting on upstreams at once; beyond it clients get SERVFAIL",
			Kind:  "int", parse: num(func(d *DNS) *int64 { return &d.MaxConcurrent }, 1, 1_000_000)},
		&Setting{Name: "dns-tcp-idle-timeout", Env: []string{"MESHEXP_DNS_TCP_IDLE_TIMEOUT"}, Default: "10s", Group: "dns", Scope: ScopeDNSServer, Aliases: old("tcp-idle-timeout"),
			Usage: "close client TCP connections idle this long",
			Kind:  "duration", parse: dur(func(d *DNS) *time.Duration { return &d.TCPIdleTimeout })},
		&Setting{Name: "dns-metrics-addr", Env: []string{"MESHEXP_DNS_METRICS_ADDR"}, Group: "dns", Scope: ScopeDNSServer, Aliases: old("metrics-addr"),
			Usage: "serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9153); off when empty",
			Kind:  "addr", parse: str(func(c *Config) *string { return &c.DNS.MetricsAddr })},
		&Setting{Name: "dns-log-interval", Env: []string{"MESHEXP_DNS_LOG_INTERVAL"}, Default: "5m", Group: "dns", Scope: ScopeDNSServer, Aliases: old("log-interval"),
			Usage: "log a line of counters this often (0 turns it off)",
			Kind:  "duration", parse: dur(func(d *DNS) *time.Duration { return &d.LogInterval })},
	)
}
