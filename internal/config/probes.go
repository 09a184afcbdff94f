package config

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Probes configures the workload's health probes, which Ready waits for
// beside the proxy. Each probe stays as written: internal/probe parses
// them, so there is one parser for the probe syntax.
type Probes struct {
	List             []string
	Period           time.Duration
	Timeout          time.Duration
	SuccessThreshold int
	FailureThreshold int
	InitialDelay     time.Duration
}

func count(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 {
			return badf("use a whole number of 1 or more", "%q is not a count", v)
		}
		*field(c) = n
		return nil
	}
}

func nonNegativeDuration(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 {
			return badf("use a duration such as 0s, 30s or 2m", "%q is not a duration", v)
		}
		*field(c) = d
		return nil
	}
}

// StatusOff turns meshexp's admin endpoint off.
const StatusOff = "off"

func statusAddr(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		v = strings.TrimSpace(v)
		if v != StatusOff {
			if _, err := netip.ParseAddrPort(v); err != nil {
				return badf("write IP:PORT, e.g. 127.0.0.1:4192, or off", "%q is not an IP:PORT", v)
			}
		}
		*field(c) = v
		return nil
	}
}
