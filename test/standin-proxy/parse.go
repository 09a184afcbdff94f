package main

// Parsers for the value formats linkerd2-proxy reads from its environment.
// Each mirrors the proxy's own parser (linkerd2-proxy
// linkerd/app/src/env/types.rs unless noted), including its quirks, so a
// value the stand-in accepts is one the real proxy accepts.

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// durationRE is parse_duration's regex: digits, an optional unit, and
// surrounding whitespace. No fractions, no space before the unit.
var durationRE = regexp.MustCompile(`^\s*(\d+)(ms|s|m|h|d)?\s*$`)

// parseDuration accepts what parse_duration accepts: "100ms", "3s", "5m",
// "1h", "2d"; a bare number only when it is 0.
func parseDuration(s string) (time.Duration, error) {
	m := durationRE.FindStringSubmatch(s)
	if m == nil {
		return 0, errors.New("not a valid duration (want digits and a unit: ms, s, m, h or d)")
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not an integer: %w", err)
	}
	var unit time.Duration
	switch m[2] {
	case "":
		if n == 0 {
			return 0, nil
		}
		return 0, errors.New("not a valid duration (a number other than 0 needs a unit: ms, s, m, h or d)")
	case "ms":
		unit = time.Millisecond
	case "s":
		unit = time.Second
	case "m":
		unit = time.Minute
	case "h":
		unit = time.Hour
	case "d":
		unit = 24 * time.Hour
	}
	if n > uint64(math.MaxInt64/int64(unit)) {
		return 0, errors.New("not a valid duration (too large)")
	}
	return time.Duration(n) * unit, nil
}

// parseDurationOpt is parse_duration_opt: empty means unset.
func parseDurationOpt(s string) (time.Duration, bool, error) {
	if s == "" {
		return 0, false, nil
	}
	d, err := parseDuration(s)
	return d, err == nil, err
}

// parseSocketAddr is parse_socket_addr: an IP literal and a port
// ("0.0.0.0:4143", "[::]:4143"); a host name is refused.
func parseSocketAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err == nil {
		if ap.Addr().Zone() != "" {
			return netip.AddrPort{}, errors.New("not a valid IP address: zones are not supported")
		}
		return ap, nil
	}
	if _, _, herr := splitHostPort(s); herr == nil {
		return netip.AddrPort{}, errors.New("host is not an IP address (want IP:PORT)")
	}
	return netip.AddrPort{}, fmt.Errorf("not a valid address (want IP:PORT): %w", err)
}

// parseSocketAddrs is parse_socket_addrs: one or two socket addresses
// separated by a comma.
func parseSocketAddrs(s string) ([]netip.AddrPort, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 2 {
		return nil, errors.New("only two addresses are supported")
	}
	out := make([]netip.AddrPort, 0, len(parts))
	for _, p := range parts {
		ap, err := parseSocketAddr(p)
		if err != nil {
			return nil, err
		}
		out = append(out, ap)
	}
	return out, nil
}

// controlAddr is a parsed LINKERD2_PROXY_*_SVC_ADDR: host:port where host
// is an IP literal or a DNS name (linkerd/addr/src/lib.rs Addr::from_str).
type controlAddr struct {
	host     string
	port     uint16
	ip       netip.Addr // valid when host is an IP literal
	loopback bool
}

func (a controlAddr) String() string {
	if a.ip.IsValid() {
		return netip.AddrPortFrom(a.ip, a.port).String()
	}
	return a.host + ":" + strconv.Itoa(int(a.port))
}

func parseControlAddr(s string) (controlAddr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return controlAddr{host: ap.Addr().String(), port: ap.Port(), ip: ap.Addr(), loopback: ap.Addr().IsLoopback()}, nil
	}
	host, port, err := splitHostPort(s)
	if err != nil {
		return controlAddr{}, err
	}
	if err := checkDNSName(host); err != nil {
		return controlAddr{}, fmt.Errorf("not a valid address: host %q: %w", host, err)
	}
	// Only the absolute name "localhost." counts as loopback
	// (linkerd/dns/name/src/name.rs is_localhost).
	return controlAddr{host: host, port: port, loopback: strings.EqualFold(host, "localhost.")}, nil
}

// splitHostPort splits at the last colon and parses the port as a u16.
func splitHostPort(s string) (string, uint16, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, errors.New("not a valid address: missing port (want HOST:PORT)")
	}
	p, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("not a valid address: bad port %q", s[i+1:])
	}
	return s[:i], uint16(p), nil
}

// checkDNSName follows linkerd/dns/name (webpki's DNS name rules from
// RFC 5280 §7.2, plus underscores): dot-separated labels of letters, digits,
// hyphens and underscores, 1–63 bytes each, no label starting or ending
// with a hyphen, at most 253 bytes, an optional trailing dot, and a last
// label that is not all digits (that would be an IP address).
func checkDNSName(s string) error {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return errors.New("not a valid DNS name: empty")
	}
	if len(name) > 253 {
		return errors.New("not a valid DNS name: longer than 253 bytes")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("not a valid DNS name: label %q must be 1 to 63 bytes", l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("not a valid DNS name: label %q starts or ends with a hyphen", l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("not a valid DNS name: label %q has the character %q", l, c)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return errors.New("not a valid DNS name: it looks like an IP address")
	}
	return nil
}

// identity is a parsed TLS identity (linkerd/identity Id): a URI when the
// value has a scheme, a DNS name otherwise.
type identity struct {
	raw string
	uri *url.URL
}

func (i identity) isSPIFFE() bool {
	return i.uri != nil && strings.EqualFold(i.uri.Scheme, "spiffe")
}

func parseIdentity(s string) (identity, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return identity{}, errors.New("not a valid identity name: a URI needs a scheme and an authority")
		}
		return identity{raw: s, uri: u}, nil
	}
	if err := checkDNSName(s); err != nil {
		return identity{}, fmt.Errorf("not a valid identity name: %w", err)
	}
	return identity{raw: s}, nil
}

// parseBool is Rust's bool::from_str: exactly "true" or "false".
func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errors.New(`not a boolean value: provided string was not "true" or "false"`)
}

// parseUint is Rust's integer from_str for an unsigned type of the given
// width: digits with an optional leading '+', no whitespace.
func parseUint(s string, bits int) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 10, bits)
	if err != nil {
		return 0, fmt.Errorf("not an integer (unsigned, %d bits)", bits)
	}
	return n, nil
}

// portRange is an inclusive range of ports.
type portRange struct{ lo, hi uint16 }

// parsePortRangeSet is parse_port_range_set: comma-separated ports and
// LOW-HIGH ranges; whitespace around items and empty items are ignored.
func parsePortRangeSet(s string) ([]portRange, error) {
	var out []portRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		l, err := parseUint(strings.TrimSpace(lo), 16)
		if err != nil {
			return nil, fmt.Errorf("not a valid port range: %q", part)
		}
		h := l
		if isRange {
			if h, err = parseUint(strings.TrimSpace(hi), 16); err != nil {
				return nil, fmt.Errorf("not a valid port range: %q", part)
			}
			if h < l {
				return nil, fmt.Errorf("not a valid port range: %q (%d is less than %d)", part, h, l)
			}
		}
		out = append(out, portRange{uint16(l), uint16(h)})
	}
	return out, nil
}

// parseNetworks is parse_networks: comma-separated CIDRs (ipnet's IpNet,
// which needs the /prefix); empty items are ignored.
func parseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, in := range strings.Split(s, ",") {
		in = strings.TrimSpace(in)
		if in == "" {
			continue
		}
		p, err := netip.ParsePrefix(in)
		if err != nil {
			return nil, fmt.Errorf("not a valid subnet mask: %q", in)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseDNSSuffixes is parse_dns_suffixes: comma-separated DNS names, "."
// for the root; empty items are ignored.
func parseDNSSuffixes(s string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if item != "." {
			if err := checkDNSName(item); err != nil {
				return nil, fmt.Errorf("not a valid DNS domain suffix: %q", item)
			}
		}
		out = append(out, strings.ToLower(item))
	}
	return out, nil
}

// parseIPSet is parse_ip_set. Unlike the other lists it neither trims nor
// skips empty items, so an empty value is invalid, as in the proxy.
func parseIPSet(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, item := range strings.Split(s, ",") {
		a, err := netip.ParseAddr(item)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("not a valid IP address: %q", item)
		}
		out = append(out, a)
	}
	return out, nil
}
