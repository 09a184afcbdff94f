package kube

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the rendering (run with -update if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := demoWorkload()
			tt.change(&w)
			got, err := RenderYAML(&w)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, got)
		})
	}
}

func TestRenderRBAC(t *testing.T) {
	w := demoWorkload()
	got, err := RenderRBAC(&w).YAML()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "rbac.yaml", got)
}
