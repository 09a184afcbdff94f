package config

import (
	"strings"
	"testing"
)

func TestFleetSettingsAreCheckedNamingTheFlag(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fleet Fleet
		reg   bool
		want  []string // substrings of the problems, in order; none: valid
	}{
		{name: "no controller is valid", fleet: Fleet{}},
		{name: "a controller with a group is valid", fleet: Fleet{ControllerAddr: "ctl.example.com:8443", Group: "web"}},
		{name: "a TLS name as the identity is valid", fleet: Fleet{ControllerAddr: "10.0.0.1:8443", Group: "web", ControllerIdentity: "meshexp-controller.meshexp-system.svc"}},
		{name: "a group without a controller is refused", fleet: Fleet{Group: "web"}, want: []string{"--controller-addr [env MESHEXP_CONTROLLER_ADDR]: not set"}},
		{name: "a controller without a group is refused", fleet: Fleet{ControllerAddr: "ctl:8443"}, want: []string{"--group [env MESHEXP_GROUP]: required with --controller-addr"}},
		{name: "an address without a port is refused", fleet: Fleet{ControllerAddr: "ctl", Group: "web"}, want: []string{`"ctl" is not host:port`}},
		{name: "a bad group name is refused", fleet: Fleet{ControllerAddr: "ctl:8443", Group: "Web_1"}, want: []string{`--group [env MESHEXP_GROUP]: "Web_1" is not a valid name`}},
		{name: "a bad identity is refused", fleet: Fleet{ControllerAddr: "ctl:8443", Group: "web", ControllerIdentity: "http://x"}, want: []string{"--controller-identity"}},
		{name: "direct registration and the controller together are refused", fleet: Fleet{ControllerAddr: "ctl:8443", Group: "web"}, reg: true, want: []string{"--register [env MESHEXP_REGISTER]: set together with --controller-addr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Fleet: tc.fleet, Register: Register{Enabled: tc.reg}, TrustDomain: "root.linkerd.cluster.local"}
			v := &validator{c: c}
			v.fleet()
			if len(v.probs) != len(tc.want) {
				t.Fatalf("problems %v, want %d", v.probs, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(v.probs[i].String(), w) {
					t.Errorf("problem %q does not say %q", v.probs[i], w)
				}
			}
		})
	}
	c := &Config{TrustDomain: "example.org"}
	if got := c.ControllerIdentity(); got != "spiffe://example.org/ns/meshexp-system/sa/meshexp-controller" {
		t.Errorf("default controller identity %s", got)
	}
}
