package dns

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func validOptions() Options {
	o := DefaultOptions()
	o.ClusterDNS = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.10:30053")}
	o.Upstreams = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53")}
	return o
}

func TestValidateNamesEveryBadOption(t *testing.T) {
	tests := []struct {
		name   string
		change func(o *Options)
		fields []string
	}{
		{"valid options pass", func(o *Options) {}, nil},
		{"a host name is not a listen address", func(o *Options) { o.Listen = "localhost:53" }, []string{"listen"}},
		{"cluster DNS is required", func(o *Options) { o.ClusterDNS = nil }, []string{"cluster-dns"}},
		{"a cluster DNS port of zero is refused", func(o *Options) { o.ClusterDNS = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:0")} }, []string{"cluster-dns"}},
		{"the root is not a cluster domain", func(o *Options) { o.ClusterDomain = "." }, []string{"cluster-domain"}},
		{"a bad extra zone is named", func(o *Options) { o.ClusterZones = []string{"a..b"} }, []string{"cluster-zone"}},
		{"an attempt longer than the query is refused", func(o *Options) { o.AttemptTimeout = 3 * time.Second }, []string{"attempt-timeout"}},
		{"every problem is reported at once", func(o *Options) {
			o.Timeout = 0
			o.AttemptTimeout = 0
			o.MaxFails = 0
			o.ProbeInterval = 0
			o.UpstreamPortReuse = 0
			o.CacheSize = -1
			o.MinTTL = 2 * time.Hour
			o.MaxTTL = 0
			o.NegativeMaxTTL = -1
			o.UDPSize = 100
			o.UDPReaders = -1
			o.MaxConcurrent = 0
			o.TCPIdleTimeout = 0
			o.MetricsAddr = "nowhere"
			o.LogInterval = -1
		}, []string{"timeout", "attempt-timeout", "max-fails", "probe-interval", "upstream-port-reuse", "cache-size", "min-ttl", "max-ttl", "negative-max-ttl", "udp-size", "udp-readers", "max-concurrent", "tcp-idle-timeout", "metrics-addr", "log-interval"}},
		{"a small byte bound with the cache on is refused", func(o *Options) { o.CacheMaxBytes = 10 }, []string{"cache-max-bytes"}},
		{"a small byte bound with the cache off is fine", func(o *Options) { o.CacheMaxBytes = 10; o.CacheSize = 0 }, nil},
		{"without upstreams an unreadable resolv.conf is named", func(o *Options) {
			o.Upstreams = nil
			o.ResolvConf = "/nonexistent/resolv.conf"
		}, []string{"resolv-conf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := validOptions()
			tt.change(&o)
			err := o.Validate()
			var got []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var fe *FieldError
					if !errors.As(e, &fe) {
						t.Fatalf("error %v is not a FieldError", e)
					}
					got = append(got, fe.Field)
				}
			}
			if !slices.Equal(got, tt.fields) {
				t.Errorf("fields %q, want %q (error: %v)", got, tt.fields, err)
			}
		})
	}
}

func TestUpstreamsFromResolvConfLeaveOutTheForwarder(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		conf   string
		listen string
		want   []string
		fails  bool
	}{
		{"every nameserver is an upstream", "nameserver 192.0.2.1\nnameserver 2001:db8::1\n", "127.0.0.1:53", []string{"192.0.2.1:53", "[2001:db8::1]:53"}, false},
		{"our own address is left out", "nameserver 127.0.0.1\nnameserver 192.0.2.1\n", "127.0.0.1:53", []string{"192.0.2.1:53"}, false},
		{"systemd-resolved's stub is a different server", "nameserver 127.0.0.53\n", "127.0.0.1:53", []string{"127.0.0.53:53"}, false},
		{"on a high port, 127.0.0.1:53 is someone else", "nameserver 127.0.0.1\n", "127.0.0.1:5353", []string{"127.0.0.1:53"}, false},
		{"only ourselves is an error", "nameserver 127.0.0.1\n", "127.0.0.1:53", nil, true},
		{"no nameserver is an error", "search example.com\n", "127.0.0.1:53", nil, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "resolv"+string(rune('a'+i)))
			if err := os.WriteFile(path, []byte(tt.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			o := validOptions()
			o.Listen, o.ResolvConf = tt.listen, path
			ups, err := o.resolvConfUpstreams()
			if (err != nil) != tt.fails {
				t.Fatalf("err %v, want failure %v", err, tt.fails)
			}
			var got []string
			for _, u := range ups {
				got = append(got, u.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("upstreams %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseAddrPortDefaultsToPort53(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":        "192.0.2.1:53",
		"192.0.2.1:30053":  "192.0.2.1:30053",
		"2001:db8::1":      "[2001:db8::1]:53",
		"[2001:db8::1]:54": "[2001:db8::1]:54",
	} {
		got, err := ParseAddrPort(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseAddrPort(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "dns.example", "192.0.2.1:0", "192.0.2.1:x"} {
		if _, err := ParseAddrPort(in); err == nil {
			t.Errorf("ParseAddrPort(%q) accepted", in)
		}
	}
}
