package route

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func node(name string, cidrs []string, ips ...string) Node {
	return Node{Name: name, PodCIDRs: cidrs, InternalIPs: ips}
}

func TestFromNodes(t *testing.T) {
	legacy := node("b-legacy", nil, "192.168.1.12")
	legacy.PodCIDR = "10.244.2.0/24"
	routes, notes := FromNodes([]Node{
		node("c-dual", []string{"10.244.3.0/24", "fd00:244:3::/64"}, "192.168.1.13", "fd00::13"),
		node("a-v4", []string{"10.244.1.0/24"}, "192.168.1.11"),
		legacy,
		node("d-no-cidr", nil, "192.168.1.14"),
		node("e-v6-cidr-no-v6-ip", []string{"fd00:244:5::/64"}, "192.168.1.15"),
	})
	var got []string
	for _, r := range routes {
		got = append(got, r.String()+" "+r.From)
	}
	want := []string{
		"10.244.1.0/24 via 192.168.1.11 node/a-v4",
		"10.244.2.0/24 via 192.168.1.12 node/b-legacy",
		"10.244.3.0/24 via 192.168.1.13 node/c-dual",
		"fd00:244:3::/64 via fd00::13 node/c-dual",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "d-no-cidr") || !strings.Contains(notes[1], "e-v6-cidr-no-v6-ip") {
		t.Errorf("notes = %q, want one for each node that cannot be routed", notes)
	}
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"10.244.1.0/24=192.168.1.11", "10.244.1.0/24 via 192.168.1.11", ""},
		{"fd00:244::/64=fd00::11", "fd00:244::/64 via fd00::11", ""},
		{"10.244.1.0/24", "", "want CIDR=VIA"},
		{"10.244.1.1/24=192.168.1.11", "", "host bits set; did you mean 10.244.1.0/24"},
		{"10.244.1.0/24=fd00::1", "", "address family differs"},
		{"10.244.1.0/24=127.0.0.1", "", "not a unicast address of a node"},
		{"10.244.1.0/33=192.168.1.11", "", `CIDR "10.244.1.0/33"`},
		{"10.244.1.0/24=node1", "", `gateway "node1"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseRoute(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRoute(%q) = %v, %v; want an error containing %q", tt.in, r, err, tt.wantErr)
				}
				return
			}
			if err != nil || r.String() != tt.want {
				t.Fatalf("ParseRoute(%q) = %v, %v; want %s", tt.in, r, err, tt.want)
			}
		})
	}
}

func TestTwoGatewaysForOneDestinationAreRefused(t *testing.T) {
	a := Route{Dst: netip.MustParsePrefix("10.244.1.0/24"), Via: netip.MustParseAddr("192.168.1.11"), From: "node/a"}
	b := Route{Dst: a.Dst, Via: netip.MustParseAddr("192.168.1.12"), From: "node/b"}
	if _, err := Dedup([]Route{a, b}); err == nil || !strings.Contains(err.Error(), "node/a") || !strings.Contains(err.Error(), "node/b") {
		t.Fatalf("Dedup = %v, want an error naming both nodes", err)
	}
	got, err := Dedup([]Route{a, a})
	if err != nil || len(got) != 1 {
		t.Fatalf("Dedup of a repeated route = %v, %v; want one route", got, err)
	}
}

func TestNodeFromReadsPodCIDRsAndOnlyInternalIPs(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Node",
		"metadata":   map[string]any{"name": "n1"},
		"spec":       map[string]any{"podCIDR": "10.244.1.0/24", "podCIDRs": []any{"10.244.1.0/24", "fd00:244:1::/64"}},
		"status": map[string]any{"addresses": []any{
			map[string]any{"type": "Hostname", "address": "n1"},
			map[string]any{"type": "ExternalIP", "address": "203.0.113.1"},
			map[string]any{"type": "InternalIP", "address": "192.168.1.11"},
			map[string]any{"type": "InternalIP", "address": "fd00::11"},
		}},
	}}
	got, err := nodeFrom(u)
	if err != nil {
		t.Fatal(err)
	}
	want := Node{Name: "n1", PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24", "fd00:244:1::/64"}, InternalIPs: []string{"192.168.1.11", "fd00::11"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("nodeFrom = %+v, want %+v", got, want)
	}
}
