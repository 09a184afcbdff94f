package cli

import (
	"strings"
	"testing"
)

func TestRouteBadInputExitsTwo(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing to route", []string{"route", "add"}, "give --from-cluster or --via IP --cidr CIDR"},
		{"a gateway without destinations", []string{"route", "add", "--via", "192.0.2.1"}, "give the destinations with --cidr"},
		{"destinations without a gateway", []string{"route", "add", "--cidr", "10.244.1.0/24"}, "give the gateway with --via"},
		{"two gateways for three destinations", []string{"route", "add", "--via", "192.0.2.1", "--via", "192.0.2.2", "--cidr", "10.1.0.0/16", "--cidr", "10.2.0.0/16", "--cidr", "10.3.0.0/16"}, "2 --via for 3 --cidr"},
		{"host bits in a CIDR", []string{"route", "add", "--via", "192.0.2.1", "--cidr", "10.244.1.1/24"}, "did you mean 10.244.1.0/24"},
		{"an IPv6 CIDR via an IPv4 gateway", []string{"route", "add", "--via", "192.0.2.1", "--cidr", "fd00::/64"}, "address family differs"},
		{"a node selector without --from-cluster", []string{"route", "add", "--via", "192.0.2.1", "--cidr", "10.1.0.0/16", "--node-selector", "a=b"}, "only with --from-cluster"},
		{"a bad CIDR to remove", []string{"route", "remove", "--cidr", "10.1.0.0"}, `--cidr "10.1.0.0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, tt.args, nil)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
}
