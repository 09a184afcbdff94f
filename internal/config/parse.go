package config

import (
	"fmt"
	"net/netip"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// invalid is a parse or validation failure: what is wrong and the fix.
type invalid struct{ msg, fix string }

func (e *invalid) Error() string { return e.msg }

func badf(fix, format string, args ...any) error {
	return &invalid{msg: fmt.Sprintf(format, args...), fix: fix}
}

// maxShown is how much of a bad value a message repeats.
const maxShown = 64

// quote quotes a value for a message, cut short when it is long: a 20 MiB
// value is named, never echoed.
func quote(v string) string {
	if len(v) <= maxShown {
		return strconv.Quote(v)
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return strconv.Quote(v[:cut]) + fmt.Sprintf("… (%d bytes)", len(v))
}

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = strings.TrimSpace(v); return nil }
}

// domain reads a DNS domain; a trailing dot (the fully qualified
// spelling) is dropped, since the proxy and the TLS names want it without.
func domain(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		v = strings.TrimSpace(v)
		if len(v) > 1 {
			v = strings.TrimSuffix(v, ".")
		}
		*field(c) = v
		return nil
	}
}

func enum(field func(*Config) *string, allowed ...string) func(*Config, string) error {
	return func(c *Config, v string) error {
		v = strings.TrimSpace(v)
		if !slices.Contains(allowed, v) {
			return badf("use one of: "+strings.Join(allowed, ", "), "%s is not a valid choice", quote(v))
		}
		*field(c) = v
		return nil
	}
}

// ParseBool is the one reading of a boolean, the same in flags, the
// environment and the config file: true, yes, on, 1 and false, no, off, 0,
// in any case. (strconv.ParseBool's t/f are not taken: a YAML reader would
// see strings there.)
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, badf("use true or false (yes/no, on/off and 1/0 are read the same)", "%s is not a boolean", quote(v))
}

func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := ParseBool(v)
		if err != nil {
			return err
		}
		*field(c) = b
		return nil
	}
}

// duration reads a duration; its bounds (bounds.go) are checked by Load,
// which knows the setting.
func duration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return badf("use a duration such as 30s, 2m or 1h30m", "%s is not a duration", quote(v))
		}
		if d < 0 {
			return badf("use a positive duration such as 30s or 2m", "%s is negative", quote(v))
		}
		*field(c) = d
		return nil
	}
}

// integer reads a whole number from min to max.
func integer(field func(*Config) *int64, min, max int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		fix := fmt.Sprintf("use a whole number from %d to %d", min, max)
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return badf(fix, "%s is not a whole number", quote(v))
		}
		if n < min || n > max {
			return badf(fix, "%d is out of range", n)
		}
		*field(c) = n
		return nil
	}
}

// ParsePort parses a TCP/UDP port number, 1–65535.
func ParsePort(v string) (uint16, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, badf("use a number from 1 to 65535", "%s is not a port number", quote(v))
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
			return nil, badf("use ports 1-65535 or ranges like 8000-8100", "%s: %v", quote(item), err)
		}
		to := from
		if isRange {
			if to, err = ParsePort(hi); err != nil {
				return nil, badf("use ports 1-65535 or ranges like 8000-8100", "%s: %v", quote(item), err)
			}
			if to < from {
				return nil, badf("write the lower port first, e.g. 8000-8100", "range %s is reversed", quote(item))
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
		if strings.Contains(item, "%") {
			return nil, noZone(item)
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			if a, aerr := netip.ParseAddr(item); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, badf("use CIDR notation such as 10.0.0.0/8 or fd00::/8", "%s is not a CIDR", quote(item))
			}
		}
		if p.Masked() != p {
			return nil, badf(fmt.Sprintf("did you mean %s?", p.Masked()), "%s has host bits set", quote(item))
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
		if strings.Contains(item, "%") {
			return nil, noZone(item)
		}
		if a, err := netip.ParseAddr(item); err == nil {
			out = append(out, netip.AddrPortFrom(a.Unmap(), 0))
			continue
		}
		ap, err := netip.ParseAddrPort(item)
		if err != nil {
			return nil, badf("use IP, IP:port or [IPv6]:port", "%s is not a destination", quote(item))
		}
		if ap.Port() == 0 {
			return nil, badf("leave the port out to exempt every port", "%s: port 0 is not a port", quote(item))
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
			if strings.Contains(item, "%") {
				return noZone(item)
			}
			a, err := netip.ParseAddr(item)
			if err != nil {
				return badf("give an IPv4 and/or an IPv6 address of this host", "%s is not an IP address", quote(item))
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
			if strings.Contains(item, "%") {
				return noZone(item)
			}
			if a, err := netip.ParseAddr(item); err == nil {
				out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
				continue
			}
			ap, err := netip.ParseAddrPort(item)
			if err != nil || ap.Port() == 0 {
				return badf("use IP or IP:PORT, e.g. 192.168.1.10:30053", "%s is not a DNS server address", quote(item))
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
			return badf("use a non-zero 32-bit number such as "+DefaultControlMark, "%s is not a packet mark", quote(v))
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
	n, numeric, err := parseID(name, "uid")
	if err != nil {
		return User{}, err
	}
	if numeric {
		u.UID, u.GID = n, n
		if pw, err := user.LookupId(name); err == nil {
			if g, err := strconv.ParseUint(pw.Gid, 10, 32); err == nil {
				u.GID = uint32(g)
			}
		}
	} else {
		pw, err := user.Lookup(name)
		if err != nil {
			return User{}, badf("create the user, or give a numeric uid", "user %s does not exist on this host", quote(name))
		}
		uid, _ := strconv.ParseUint(pw.Uid, 10, 32)
		gid, _ := strconv.ParseUint(pw.Gid, 10, 32)
		u.UID, u.GID = uint32(uid), uint32(gid)
	}
	if hasGroup {
		n, numeric, err := parseID(group, "gid")
		if err != nil {
			return User{}, err
		}
		if numeric {
			u.GID = n
		} else {
			g, err := user.LookupGroup(group)
			if err != nil {
				return User{}, badf("create the group, or give a numeric gid", "group %s does not exist on this host", quote(group))
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

// noZone refuses an IPv6 zone (fe80::1%eth0): addresses and prefixes
// here are matched by the kernel's rules and routes, which have no zones,
// and netip would drop it without a word.
func noZone(item string) error {
	return badf("leave the zone (%name) out: rules and routes match addresses without one", "%s has an IPv6 zone", quote(item))
}

// maxID is the largest uid or gid accepted: Kubernetes' runAsUser limit
// (2^31-1). 4294967295 is (uid_t)-1, which setuid reads as "no change".
const maxID = 1<<31 - 1

func parseID(s, what string) (uint32, bool, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		if _, ierr := strconv.ParseInt(s, 10, 64); ierr == nil || strings.Trim(s, "0123456789") == "" {
			return 0, true, badf(fmt.Sprintf("use a %s from 0 to %d", what, maxID), "%s %s is out of range", what, quote(s))
		}
		return 0, false, nil
	}
	if n > maxID {
		return 0, true, badf(fmt.Sprintf("use a %s from 0 to %d (4294967295 is -1, which means \"no change\" to the kernel)", what, maxID), "%s %d is out of range", what, n)
	}
	return uint32(n), true, nil
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
