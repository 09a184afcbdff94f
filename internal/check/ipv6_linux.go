//go:build linux

package check

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
)

// IPv6State reports whether the namespace has IPv6 and whether the
// configured interception mode (auto, on, off) fits: "on" without IPv6
// fails; "off" with a global IPv6 address warns, since that traffic then
// bypasses the proxy.
func IPv6State(mode string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		disabled := true
		if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6"); err == nil {
			disabled = strings.TrimSpace(string(b)) == "1"
		}
		global := false
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && n.IP.To4() == nil && n.IP.IsGlobalUnicast() {
					global = true
				}
			}
		}
		state := "IPv6 disabled"
		switch {
		case !disabled && global:
			state = "IPv6 enabled with a global address"
		case !disabled:
			state = "IPv6 enabled, no global address"
		}
		switch {
		case mode == "on" && disabled:
			return state, fmt.Errorf("--intercept-ipv6 on but IPv6 is disabled on this host")
		case mode == "off" && global:
			return state, Warnf("--intercept-ipv6 off but the host has a global IPv6 address: IPv6 traffic bypasses the proxy")
		}
		return state + ", interception " + mode, nil
	}
}
