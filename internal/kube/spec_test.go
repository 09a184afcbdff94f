package kube

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// demoWorkload is the demo's template filled in: name, identity and server
// name as the proxy environment derives them, port 8000 named http, a
// Service on port 80.
func demoWorkload() Workload {
	return Workload{
		Name:        "vm-1",
		Namespace:   "mixed-env",
		Identity:    "spiffe://root.linkerd.cluster.local/vm-1",
		ServerName:  "vm-1.cluster.local",
		IPs:         []netip.Addr{netip.MustParseAddr("192.0.2.10")},
		Ports:       []Port{{Name: "http", Port: 8000, Protocol: "TCP"}},
		ServicePort: 80,
		// meshexp's defaults for --inbound-port and --opaque-ports.
		ProxyInboundPort: 4143,
		OpaquePorts:      "25,587,3306,4444,5432,6379,9300,11211",
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(w *Workload)
		want   string // substring of the error; "" means valid
	}{
		{"the demo's workload is valid", func(*Workload) {}, ""},
		{"a dual-stack workload with two ports and labels is valid", func(w *Workload) {
			w.IPs = append(w.IPs, netip.MustParseAddr("2001:db8::10"))
			w.Ports = append(w.Ports, Port{Name: "dns", Port: 53, Protocol: "UDP"})
			w.Labels = map[string]string{"team": "payments", "example.com/tier": "db"}
		}, ""},
		{"an upper-case name is rejected because it names a Service", func(w *Workload) { w.Name = "VM1" }, `workload name "VM1"`},
		{"a name starting with a digit is rejected (DNS-1035)", func(w *Workload) { w.Name = "1vm" }, `workload name "1vm"`},
		{"an empty namespace is rejected", func(w *Workload) { w.Namespace = "" }, `workload namespace ""`},
		{"an identity that is not a spiffe URI is rejected", func(w *Workload) { w.Identity = "vm-1" }, `identity "vm-1"`},
		{"a server name with a space is rejected", func(w *Workload) { w.ServerName = "vm 1" }, `server name "vm 1"`},
		{"no IP is rejected", func(w *Workload) { w.IPs = nil }, "workload IPs: none given"},
		{"three IPs are rejected", func(w *Workload) {
			w.IPs = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1")}
		}, "at most two"},
		{"two IPv4 addresses are rejected", func(w *Workload) {
			w.IPs = []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}
		}, "at most one IPv4 and one IPv6"},
		{"a loopback IP is rejected", func(w *Workload) { w.IPs = []netip.Addr{netip.MustParseAddr("127.0.0.1")} }, "not reachable from the cluster"},
		{"no port is rejected", func(w *Workload) { w.Ports = nil }, "ports: none given"},
		{"a port name longer than 15 characters is rejected", func(w *Workload) { w.Ports[0].Name = "a-very-long-port-name" }, `port name "a-very-long-port-name"`},
		{"a duplicate port name is rejected", func(w *Workload) { w.Ports = append(w.Ports, Port{Name: "http", Port: 8001, Protocol: "TCP"}) }, "given twice"},
		{"port 0 is rejected", func(w *Workload) { w.Ports[0].Port = 0 }, "out of range"},
		{"protocol SCTP is rejected", func(w *Workload) { w.Ports[0].Protocol = "SCTP" }, `protocol "SCTP"`},
		{"the proxy port first is rejected because the first port is the Service's", func(w *Workload) { w.Ports[0].Name = "linkerd-proxy" }, "first port is the Service's"},
		{"a linkerd-proxy port equal to the proxy's inbound port is accepted", func(w *Workload) {
			w.Ports = append(w.Ports, Port{Name: "linkerd-proxy", Port: 4143, Protocol: "TCP"})
		}, ""},
		{"a linkerd-proxy port other than the proxy's inbound port is rejected", func(w *Workload) {
			w.Ports = append(w.Ports, Port{Name: "linkerd-proxy", Port: 4000, Protocol: "TCP"})
		}, "differs from the proxy's inbound port 4143"},
		{"opaque ports with a range are accepted", func(w *Workload) { w.OpaquePorts = "3306,4000-4100" }, ""},
		{"opaque ports with a word are rejected", func(w *Workload) { w.OpaquePorts = "3306,mysql" }, `"mysql" is not a port or a range`},
		{"an inverted opaque port range is rejected", func(w *Workload) { w.OpaquePorts = "5000-4000" }, `"5000-4000" is not a port or a range`},
		{"service port 70000 is rejected", func(w *Workload) { w.ServicePort = 70000 }, "service port 70000"},
		{"the workload_name label cannot be overridden", func(w *Workload) { w.Labels = map[string]string{"workload_name": "other"} }, `label "workload_name"`},
		{"a label value with a space is rejected", func(w *Workload) { w.Labels = map[string]string{"team": "a b"} }, `label team value "a b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := demoWorkload()
			tt.change(&w)
			err := w.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	w := Workload{Name: "Bad", Namespace: "ns"}
	err := w.Validate()
	for _, want := range []string{"workload name", "identity", "server name", "workload IPs", "ports"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		in      string
		want    Port
		wantErr string
	}{
		{"http:8000", Port{"http", 8000, "TCP"}, ""},
		{"dns:53/UDP", Port{"dns", 53, "UDP"}, ""},
		{"dns:53/udp", Port{"dns", 53, "UDP"}, ""},
		{"admin:9000/TCP", Port{"admin", 9000, "TCP"}, ""},
		{"8000", Port{}, "want NAME:PORT"},
		{"http:", Port{}, "want NAME:PORT"},
		{"http:80x", Port{}, "not a port number"},
		{"http:+80", Port{}, "not a port number"},
		{"http:65536", Port{}, "out of range"},
		{"http:80/SCTP", Port{}, `protocol "SCTP"`},
		{"HTTP:80", Port{}, `name "HTTP"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePort(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePort(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePort(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePortsReadsMESHEXP_PORTS(t *testing.T) {
	got, err := ParsePorts("http:8000, admin:9000,")
	if err != nil {
		t.Fatal(err)
	}
	want := []Port{{"http", 8000, "TCP"}, {"admin", 9000, "TCP"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("ParsePorts = %+v, want %+v", got, want)
	}
}

func TestParseLabel(t *testing.T) {
	if k, v, err := ParseLabel("example.com/team=payments"); err != nil || k != "example.com/team" || v != "payments" {
		t.Errorf("ParseLabel = %q %q %v", k, v, err)
	}
	if k, v, err := ParseLabel("empty="); err != nil || k != "empty" || v != "" {
		t.Errorf("ParseLabel(empty=) = %q %q %v, want an empty value accepted", k, v, err)
	}
	for _, bad := range []string{"novalue", "=v", "bad key=v", "k=bad value"} {
		if _, _, err := ParseLabel(bad); err == nil {
			t.Errorf("ParseLabel(%q) = nil error, want one", bad)
		}
	}
}

func TestNextCondition(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	now := time.Date(2026, 11, 1, 12, 5, 0, 0, time.UTC)
	readyOld := &Condition{Type: ConditionReady, Status: "True", Reason: "ProxyReady", Message: "ok", LastTransitionTime: &t0}

	t.Run("the same status, reason and message is not written again", func(t *testing.T) {
		if _, changed := nextCondition(readyOld, true, "ProxyReady", "ok", now); changed {
			t.Fatal("changed = true, want false")
		}
	})
	t.Run("a new message keeps the transition time", func(t *testing.T) {
		got, changed := nextCondition(readyOld, true, "ProxyReady", "still ok", now)
		if !changed || !got.LastTransitionTime.Equal(&t0) {
			t.Fatalf("got %+v changed=%v, want changed with lastTransitionTime %v", got, changed, t0)
		}
	})
	t.Run("a status flip moves the transition time to now", func(t *testing.T) {
		got, changed := nextCondition(readyOld, false, "ProxyNotReady", "down", now)
		if !changed || got.Status != "False" || !got.LastTransitionTime.Time.Equal(now) {
			t.Fatalf("got %+v changed=%v, want False at %v", got, changed, now)
		}
	})
	t.Run("no condition yet is a transition", func(t *testing.T) {
		got, changed := nextCondition(nil, false, "ProxyNotReady", "waiting", now)
		if !changed || got.LastTransitionTime == nil {
			t.Fatalf("got %+v changed=%v", got, changed)
		}
	})
}
