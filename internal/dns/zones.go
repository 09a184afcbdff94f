package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
)

// ClusterZones lists the zones routed to the cluster DNS servers for o:
// svc.<ClusterDomain>., the extra ClusterZones, and the reverse zones of
// ClusterCIDRs, lower case, fully qualified, without duplicates.
func (o *Options) clusterZones() []string {
	zones := []string{"svc." + mdns.Fqdn(strings.ToLower(o.ClusterDomain))}
	for _, z := range o.ClusterZones {
		zones = append(zones, mdns.Fqdn(strings.ToLower(z)))
	}
	for _, p := range o.ClusterCIDRs {
		zones = append(zones, ReverseZones(p)...)
	}
	slices.Sort(zones)
	return slices.Compact(zones)
}

// ReverseZones returns the reverse-lookup zones that together cover p
// exactly: one zone when the prefix ends on an octet (IPv4) or nibble (IPv6)
// boundary, else one per value of the partly covered octet or nibble
// (10.96.0.0/12 gives 96.10.in-addr.arpa. … 111.10.in-addr.arpa.). This is
// how kube-dns answers PTR queries for pods and services (Kubernetes DNS
// spec, "PTR records"), so a host sees the same names a pod does.
func ReverseZones(p netip.Prefix) []string {
	p = p.Masked()
	addr, bits := p.Addr(), p.Bits()
	var digits []int // most significant first: octets or nibbles
	var width, base int
	var suffix string
	if addr.Is4() {
		a := addr.As4()
		for _, o := range a {
			digits = append(digits, int(o))
		}
		width, base, suffix = 8, 10, "in-addr.arpa."
	} else {
		a := addr.As16()
		for _, o := range a {
			digits = append(digits, int(o>>4), int(o&0xF))
		}
		width, base, suffix = 4, 16, "ip6.arpa."
	}
	full, rem := bits/width, bits%width
	name := func(ds []int) string {
		var b strings.Builder
		for i := len(ds) - 1; i >= 0; i-- {
			b.WriteString(strconv.FormatInt(int64(ds[i]), base))
			b.WriteByte('.')
		}
		b.WriteString(suffix)
		return b.String()
	}
	if rem == 0 {
		return []string{name(digits[:full])}
	}
	var zones []string
	first := digits[full]
	for i := range 1 << (width - rem) {
		ds := append(slices.Clone(digits[:full]), first+i)
		zones = append(zones, name(ds))
	}
	return zones
}

// zoneWire converts a fully qualified lower-case name to wire form.
func zoneWire(zone string) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := mdns.PackDomainName(zone, buf, 0, nil, false)
	if err != nil {
		return nil, fmt.Errorf("zone %q: %w", zone, err)
	}
	return buf[:n], nil
}
