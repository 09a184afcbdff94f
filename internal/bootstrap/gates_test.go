package bootstrap

import "testing"

func TestAllGatesLetsTheFirstGateThatSaysNoSpeak(t *testing.T) {
	yes := func() (bool, string, string) { return true, "", "" }
	expired := func() (bool, string, string) { return false, "IdentityExpired", "the proxy's SVID expired" }
	probe := func() (bool, string, string) { return false, "ProbeFailed", "GET http://127.0.0.1:8000/healthz: 503" }

	if g := allGates(nil, nil); g != nil {
		t.Error("no gates at all must be no gate")
	}
	for _, tc := range []struct {
		name   string
		gates  []func() (bool, string, string)
		ok     bool
		reason string
	}{
		{"every gate ok is ok", []func() (bool, string, string){yes, nil, yes}, true, ""},
		{"the identity speaks before the probes", []func() (bool, string, string){expired, probe}, false, "IdentityExpired"},
		{"a failing probe speaks when the identity is fine", []func() (bool, string, string){nil, yes, probe}, false, "ProbeFailed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason, _ := allGates(tc.gates...)()
			if ok != tc.ok || reason != tc.reason {
				t.Errorf("got (%v, %q), want (%v, %q)", ok, reason, tc.ok, tc.reason)
			}
		})
	}
}
