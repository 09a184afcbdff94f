package netfilter

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   []string // substrings, one per expected problem, in order
	}{
		{"the defaults are valid", func(*Options) {}, nil},
		{"proxy uid 0 is refused because root would escape the mesh", func(o *Options) { o.ProxyUID = 0 }, []string{"proxy-uid: 0 (root) would exempt every root process"}},
		{"uid -1 is refused", func(o *Options) { o.ProxyUID = 1<<32 - 1 }, []string{"proxy-uid: 4294967295"}},
		{"a zero port is refused", func(o *Options) { o.InboundPort = 0 }, []string{"inbound-port: 0 is not a port"}},
		{"the outbound port may not equal the inbound port", func(o *Options) { o.OutboundPort = o.InboundPort }, []string{"outbound-port: 4143 is also the inbound-port"}},
		{"a reversed range is refused", func(o *Options) { o.SkipOutboundPorts = []PortRange{{6000, 5000}} }, []string{"skip-outbound-ports: range 6000-5000 is reversed"}},
		{"port 0 in a skip list is refused", func(o *Options) { o.SkipInboundPorts = []PortRange{{0, 10}} }, []string{"skip-inbound-ports: \"0:10\": port 0"}},
		{"a subnet with host bits is refused with the fix", func(o *Options) { o.SkipOutboundSubnets = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")} }, []string{"skip-outbound-subnets: 10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?"}},
		{"an invalid subnet is refused", func(o *Options) { o.SkipOutboundSubnets = []netip.Prefix{{}} }, []string{"skip-outbound-subnets: an empty or invalid subnet"}},
		{"an unknown IPv6 mode is refused", func(o *Options) { o.IPv6 = "yes" }, []string{"intercept-ipv6: \"yes\""}},
		{"an unknown backend is refused", func(o *Options) { o.Backend = "nftables" }, []string{"intercept-backend: \"nftables\""}},
		{"every problem is reported at once", func(o *Options) {
			o.ProxyUID = 0
			o.SkipOutboundPorts = []PortRange{{9, 1}}
			o.Backend = "x"
		}, []string{"proxy-uid", "skip-outbound-ports", "intercept-backend"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.change(&o)
			err := o.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var inv *InvalidOptionsError
			if !errors.As(err, &inv) {
				t.Fatalf("Validate() = %v, want *InvalidOptionsError", err)
			}
			if len(inv.Problems) != len(tc.want) {
				t.Fatalf("got %d problems, want %d: %v", len(inv.Problems), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(inv.Problems[i].String(), w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, inv.Problems[i], w)
				}
			}
			if _, perr := Plan(o); perr == nil {
				t.Error("Plan accepted options Validate refused")
			}
		})
	}
}

func TestParseDestination(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "192.0.2.1", want: "192.0.2.1:0"},
		{in: "192.0.2.1:8081", want: "192.0.2.1:8081"},
		{in: "2001:db8::1", want: "[2001:db8::1]:0"},
		{in: "[2001:db8::1]:8081", want: "[2001:db8::1]:8081"},
		{in: "::ffff:192.0.2.1", want: "192.0.2.1:0"},
		{in: "spire.example.com:8081", err: "is not IP, IP:port or [IPv6]:port"},
		{in: "192.0.2.1:0", err: "leave the port out"},
		{in: "192.0.2.1:70000", err: "is not IP"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDestination(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseDestination(%q) error = %v, want %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("ParseDestination(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}
