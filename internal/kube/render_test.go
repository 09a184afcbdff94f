package kube

import (
	"net/netip"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/golden"
)

func TestRenderYAML(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		change func(w *Workload)
	}{
		{"the demo's workload renders like its template", "demo.yaml", func(*Workload) {}},
		{"a dual-stack workload with a UDP port, the proxy port and labels", "dualstack.yaml", func(w *Workload) {
			w.IPs = append(w.IPs, netip.MustParseAddr("2001:db8::10"))
			w.Ports = append(w.Ports,
				Port{Name: "dns", Port: 53, Protocol: "UDP"},
				Port{Name: "linkerd-proxy", Port: 4143, Protocol: "TCP"})
			w.Labels = map[string]string{"team": "payments", "location": "dc1"}
			w.ServicePort = 0
		}},
		{"an IPv6-only host whose proxy listens on another port with other opaque ports", "ipv6-proxy-ports.yaml", func(w *Workload) {
			w.IPs = []netip.Addr{netip.MustParseAddr("2001:db8::20")}
			w.ProxyInboundPort = 4200
			w.OpaquePorts = "3306,4000-4100"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := demoWorkload()
			tt.change(&w)
			got, err := RenderYAML(&w)
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, tt.golden, got)
		})
	}
}

func TestRenderRBAC(t *testing.T) {
	w := demoWorkload()
	got, err := RenderRBAC(&w).YAML()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "rbac.yaml", got)
}
