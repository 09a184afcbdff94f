package config

import (
	"fmt"
	"net/netip"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"
)

// invalid is a parse or validation failure: what is wrong and the fix.
type invalid struct{ msg, fix string }

func (e *invalid) Error() string { return e.msg }

func badf(fix, format string, args ...any) error {
	return &invalid{msg: fmt.Sprintf(format, args...), fix: fix}
}

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = strings.TrimSpace(v); return nil }
}

func enum(field func(*Config) *string, allowed ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		v = strings.TrimSpace(v)
		if !slices.Contains(allowed, v) {
			return badf("use one of: "+strings.Join(allowed, ", "), "%q is not a valid choice", v)
		}
		*field(c) = v
		return nil
	}
}

func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return badf("use true or false", "%q is not a boolean", v)
		}
		*field(c) = b
		return nil
	}
}

func duration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return badf("use a positive duration such as 30s or 2m", "%q is not a positive duration", v)
		}
		*field(c) = d
		return nil
	}
}

// ParsePort parses a TCP/UDP port number, 1–65535.
func ParsePort(v string) (uint16, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, badf("use a number from 1 to 65535", "%q is not a port number", v)
	}
	if n < 1 || n > 65535 {
		return 0, badf("use a number from 1 to 65535", "port %d is out of range", n)
	}
	return uint16(n), nil
}

func port(field func(*Config) *uint16) func(*Config, string) error {
	return func(c *Config, v string) error {
		p, err := ParsePort(v)
		if err != nil {
			return err
		}
		*field(c) = p
		return nil
	}
}

// ParsePortRanges parses "80,443,8000-8100" (":" is accepted for ranges too,
// as iptables writes them).
func ParsePortRanges(v string) ([]PortRange, error) {
	var out []PortRange
	for _, item := range splitList(v) {
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			lo, hi, isRange = strings.Cut(item, ":")
		}
		from, err := ParsePort(lo)
		if err != nil {
			return nil, badf("use ports 1-65535 or ranges like 8000-8100", "%q: %v", item, err)
		}
		to := from
		if isRange {
			if to, err = ParsePort(hi); err != nil {
				return nil, badf("use ports 1-65535 or ranges like 8000-8100", "%q: %v", item, err)
			}
			if to < from {
				return nil, badf("write the lower port first, e.g. 8000-8100", "range %q is reversed", item)
			}
		}
		out = append(out, PortRange{From: from, To: to})
	}
	return out, nil
}

func portList(field func(*Config) *[]PortRange) func(*Config, string) error {
	return func(c *Config, v string) error {
		r, err := ParsePortRanges(v)
		if err != nil {
			return err
		}
		*field(c) = r
		return nil
	}
}

// ParsePrefixes parses a comma-separated list of CIDRs.
func ParsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range splitList(v) {
		p, err := netip.ParsePrefix(item)
		if err != nil {
			if a, aerr := netip.ParseAddr(item); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, badf("use CIDR notation such as 10.0.0.0/8 or fd00::/8", "%q is not a CIDR", item)
			}
		}
		if p.Masked() != p {
			return nil, badf(fmt.Sprintf("did you mean %s?", p.Masked()), "%q has host bits set", item)
		}
		out = append(out, p)
	}
	return out, nil
}

func prefixList(field func(*Config) *[]netip.Prefix) func(*Config, string) error {
	return func(c *Config, v string) error {
		p, err := ParsePrefixes(v)
		if err != nil {
			return err
		}
		*field(c) = p
		return nil
	}
}

// ParseDestinations parses "IP", "IP:port" and "[IPv6]:port" items; a
// missing port is port 0, meaning every port.
func ParseDestinations(v string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, item := range splitList(v) {
		if a, err := netip.ParseAddr(item); err == nil {
			out = append(out, netip.AddrPortFrom(a.Unmap(), 0))
			continue
		}
		ap, err := netip.ParseAddrPort(item)
		if err != nil {
			return nil, badf("use IP, IP:port or [IPv6]:port", "%q is not a destination", item)
		}
		if ap.Port() == 0 {
			return nil, badf("leave the port out to exempt every port", "%q: port 0 is not a port", item)
		}
		out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	return out, nil
}

func destinationList(field func(*Config) *[]netip.AddrPort) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := ParseDestinations(v)
		if err != nil {
			return err
		}
		*field(c) = d
		return nil
	}
}

func addrList(field func(*Config) *[]netip.Addr) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []netip.Addr
		for _, item := range splitList(v) {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return badf("give an IPv4 and/or an IPv6 address of this host", "%q is not an IP address", item)
			}
			out = append(out, a.Unmap())
		}
		*field(c) = out
		return nil
	}
}

func rawList(field func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = splitList(v); return nil }
}

func optionalPort(field func(*Config) *uint16) func(*Config, string) error {
	return func(c *Config, v string) error {
		if strings.TrimSpace(v) == "" {
			*field(c) = 0
			return nil
		}
		return port(field)(c, v)
	}
}

// dnsServers parses "IP" or "IP:PORT" items (port 53 when left out).
func dnsServers(field func(*Config) *[]netip.AddrPort) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []netip.AddrPort
		for _, item := range splitList(v) {
			if a, err := netip.ParseAddr(item); err == nil {
				out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
				continue
			}
			ap, err := netip.ParseAddrPort(item)
			if err != nil || ap.Port() == 0 {
				return badf("use IP or IP:PORT, e.g. 192.168.1.10:30053", "%q is not a DNS server address", item)
			}
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
		*field(c) = out
		return nil
	}
}

func mark(field func(*Config) *uint32) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 0, 32)
		if err != nil || n == 0 {
			return badf("use a non-zero 32-bit number such as "+DefaultControlMark, "%q is not a packet mark", v)
		}
		*field(c) = uint32(n)
		return nil
	}
}

// ParseUser resolves "uid", "name", "uid:gid" or "name:group". A bare uid
// or name takes the user's primary group when the user exists, else gid=uid.
func ParseUser(v string) (User, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return User{}, badf("give a uid (e.g. 2102) or a user name", "empty user")
	}
	name, group, hasGroup := strings.Cut(v, ":")
	u := User{Spec: v}
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		u.UID, u.GID = uint32(n), uint32(n)
		if pw, err := user.LookupId(name); err == nil {
			if g, err := strconv.ParseUint(pw.Gid, 10, 32); err == nil {
				u.GID = uint32(g)
			}
		}
	} else {
		pw, err := user.Lookup(name)
		if err != nil {
			return User{}, badf("create the user, or give a numeric uid", "user %q does not exist on this host", name)
		}
		uid, _ := strconv.ParseUint(pw.Uid, 10, 32)
		gid, _ := strconv.ParseUint(pw.Gid, 10, 32)
		u.UID, u.GID = uint32(uid), uint32(gid)
	}
	if hasGroup {
		if n, err := strconv.ParseUint(group, 10, 32); err == nil {
			u.GID = uint32(n)
		} else {
			g, err := user.LookupGroup(group)
			if err != nil {
				return User{}, badf("create the group, or give a numeric gid", "group %q does not exist on this host", group)
			}
			gid, _ := strconv.ParseUint(g.Gid, 10, 32)
			u.GID = uint32(gid)
		}
	}
	return u, nil
}

func userSpec(field func(*Config) *User) func(*Config, string) error {
	return func(c *Config, v string) error {
		u, err := ParseUser(v)
		if err != nil {
			return err
		}
		*field(c) = u
		return nil
	}
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
