package dns

import (
	"net/netip"
	"slices"
	"testing"
)

func TestReverseZonesCoverThePrefixExactly(t *testing.T) {
	tests := []struct {
		prefix string
		first  string
		last   string
		count  int
	}{
		{"10.96.0.0/12", "96.10.in-addr.arpa.", "111.10.in-addr.arpa.", 16},
		{"10.244.0.0/16", "244.10.in-addr.arpa.", "244.10.in-addr.arpa.", 1},
		{"192.168.1.0/24", "1.168.192.in-addr.arpa.", "1.168.192.in-addr.arpa.", 1},
		{"10.0.0.0/8", "10.in-addr.arpa.", "10.in-addr.arpa.", 1},
		{"172.16.5.0/23", "4.16.172.in-addr.arpa.", "5.16.172.in-addr.arpa.", 2},
		{"fd00:10:96::/112", "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.", 1},
		{"fd00::/7", "c.f.ip6.arpa.", "d.f.ip6.arpa.", 2},
		{"10.96.5.7/12", "96.10.in-addr.arpa.", "111.10.in-addr.arpa.", 16},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			zs := ReverseZones(netip.MustParsePrefix(tt.prefix))
			if len(zs) != tt.count || zs[0] != tt.first || zs[len(zs)-1] != tt.last {
				t.Errorf("got %d zones %q … %q, want %d %q … %q", len(zs), zs[0], zs[len(zs)-1], tt.count, tt.first, tt.last)
			}
		})
	}
}

func TestZoneSuffixMatchesOnLabelBoundaries(t *testing.T) {
	zone, _ := zoneWire("svc.cluster.local.")
	tests := []struct {
		name string
		want bool
	}{
		{"svc.cluster.local.", true},
		{"web.default.svc.cluster.local.", true},
		{"xsvc.cluster.local.", false},
		{"cluster.local.", false},
		{"svc.cluster.local.example.", false},
		{".", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _ := zoneWire(tt.name)
			if got := hasZoneSuffix(n, zone); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClusterZonesCombineDomainExtraZonesAndCIDRs(t *testing.T) {
	o := DefaultOptions()
	o.ClusterDomain = "Corp.Example"
	o.ClusterZones = []string{"cluster.local", "svc.corp.example."}
	o.ClusterCIDRs = []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}
	got := o.clusterZones()
	want := []string{"244.10.in-addr.arpa.", "cluster.local.", "svc.corp.example."}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
