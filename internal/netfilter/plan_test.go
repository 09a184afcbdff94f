package netfilter

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/golden"
)

// render is what `meshexp intercept install --dry-run` prints for rs given
// each family's current nat table.
func render(t *testing.T, rs *Ruleset, current map[Family]*Table) []byte {
	t.Helper()
	var b bytes.Buffer
	for i := range rs.Families {
		fr := &rs.Families[i]
		in, err := InstallInput(fr, current[fr.Family])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "# %s\n%s", fr.Family, in)
	}
	return b.Bytes()
}

func customOptions() Options {
	o := DefaultOptions()
	o.ProxyUID = 1337
	o.InboundPort, o.OutboundPort, o.AdminPort, o.ControlPort = 14143, 14140, 14191, 14190
	o.SkipInboundPorts = []PortRange{Port(22), {5000, 5010}}
	// 20 ports and 2 ranges: more than one multiport match takes.
	for p := uint16(1); p <= 20; p++ {
		o.SkipOutboundPorts = append(o.SkipOutboundPorts, Port(p*100))
	}
	o.SkipOutboundPorts = append(o.SkipOutboundPorts, PortRange{6000, 6100}, PortRange{7000, 7100}, Port(100))
	o.SkipOutboundSubnets = []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00:10:96::/108")}
	o.InboundPorts = []PortRange{Port(8080), {9000, 9100}}
	o.ExemptDestinations = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.10:8081"), netip.AddrPortFrom(netip.MustParseAddr("2001:db8::10"), 0)}
	o.ControlMark = 0x40000000
	o.IPv6 = IPv6On
	o.Backend = BackendLegacy
	return o
}

func TestPlanGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"default.restore", DefaultOptions()},
		{"custom.restore", customOptions()},
	} {
		t.Run("the "+strings.TrimSuffix(tc.name, ".restore")+" settings render as the golden restore input", func(t *testing.T) {
			rs, err := Plan(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tc.name, render(t, rs, nil))
		})
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	a, _ := Plan(customOptions())
	b, _ := Plan(customOptions())
	if !bytes.Equal(render(t, a, nil), render(t, b, nil)) {
		t.Fatal("two plans of the same options differ")
	}
}

func TestPlanWithIPv6Off(t *testing.T) {
	o := customOptions()
	o.IPv6 = IPv6Off
	rs, err := Plan(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Families) != 1 || rs.Families[0].Family != IPv4 || rs.Family(IPv6) != nil {
		t.Fatalf("families = %+v, want IPv4 only", rs.Families)
	}
	for _, r := range rs.Families[0].Rules {
		if strings.Contains(r.Spec, ":") && strings.Contains(r.Spec, "-d fd") {
			t.Errorf("IPv4 plan holds an IPv6 rule: %s", r)
		}
	}
}

func TestPlanNeverExemptsRoot(t *testing.T) {
	rs, err := Plan(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range rs.Families {
		for _, r := range fr.Rules {
			if strings.Contains(r.Spec, "--uid-owner 0 ") {
				t.Errorf("%s plan exempts root: %s", fr.Family, r)
			}
		}
	}
}

func TestMultiportGroupsRespectTheKernelLimit(t *testing.T) {
	var rs []PortRange
	for p := uint16(1); p <= 40; p++ {
		rs = append(rs, PortRange{p * 10, p*10 + 1})
	}
	for _, g := range multiportGroups(rs) {
		n := 0
		for _, item := range strings.Split(g, ",") {
			n++
			if strings.Contains(item, ":") {
				n++
			}
		}
		if n > multiportLimit {
			t.Errorf("group %q counts %d ports, limit %d", g, n, multiportLimit)
		}
	}
}
