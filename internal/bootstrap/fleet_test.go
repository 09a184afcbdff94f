package bootstrap

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/fleet"
)

func TestTheAgentGetsTheHostsSettings(t *testing.T) {
	c, probs := config.LoadArgs(config.ScopeBootstrap, []string{
		"--controller-addr", "ctl.example:8443", "--group", "web", "--workload-ip", "192.0.2.7",
		"--spire-socket", "/run/mx/api.sock", "--trust-anchor-dir", "/etc/mx",
	}, map[string]string{"WORKLOAD_NAME": "web-1", "WORKLOAD_NAMESPACE": "shop", "MESHEXP_WORKLOAD": "/bin/true", "NODE_NAME": "vm-1"})
	if c == nil || len(probs.Errors()) > 0 {
		t.Fatal(probs)
	}
	args, probs := FleetAgent(c, "http://127.0.0.1:4192/ready", "/run/meshexp/netns-1.registration", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(args[:len(fleet.AgentArgs)], fleet.AgentArgs) {
		t.Fatalf("args start %v, want %v", args, fleet.AgentArgs)
	}
	got := " " + strings.Join(args, " ") + " "
	for _, want := range []string{
		"--socket /run/mx/api.sock", "--id " + c.SPIFFEID(), "--trust-anchor /etc/mx/ca.crt",
		"--controller-addr ctl.example:8443", "--controller-identity " + c.ControllerIdentity(),
		"--group web", "--namespace shop", "--name web-1", "--ip 192.0.2.7", "--ready-url http://127.0.0.1:4192/ready",
		"--state-dir /run/meshexp/netns-1.registration",
	} {
		if !strings.Contains(got, " "+want+" ") {
			t.Errorf("agent args lack %q: %s", want, got)
		}
	}
}

func TestTheAgentReportsMeshexpsOwnReadiness(t *testing.T) {
	const proxy = "http://127.0.0.1:4191/ready"
	for _, tc := range []struct{ name, status, want string }{
		{"the admin endpoint on loopback is used", "127.0.0.1:4192", "http://127.0.0.1:4192/ready"},
		{"an admin endpoint on every address is reached on loopback", "0.0.0.0:9000", "http://127.0.0.1:9000/ready"},
		{"an IPv6 admin endpoint keeps its brackets", "[::1]:9000", "http://[::1]:9000/ready"},
		{"without the admin endpoint the proxy's readiness is used", config.StatusOff, proxy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fleetReadyURL(&config.Config{StatusAddr: tc.status}, proxy); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
