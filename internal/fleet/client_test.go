package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

func TestTheProbeFlipsOnlyAfterItsThresholds(t *testing.T) {
	var next error
	c := &Client{o: ClientOptions{Ready: func(context.Context) error { return next }}}
	p := &prober{}
	o := Probe{TimeoutSeconds: 1, FailureThreshold: 3, SuccessThreshold: 2}
	steps := []struct {
		fail bool
		want bool
	}{
		{false, true},                             // the first result counts at once
		{true, true}, {true, true}, {true, false}, // three failures
		{false, false}, {false, true}, // two successes
		{true, true}, {false, true}, {true, true}, // a failure streak broken by a success
	}
	for i, s := range steps {
		next = nil
		if s.fail {
			next = errors.New("503")
		}
		c.probe(context.Background(), p, o)
		if p.ready != s.want {
			t.Fatalf("step %d: ready %t, want %t", i, p.ready, s.want)
		}
	}
	if p.reason != "ProxyReady" {
		t.Errorf("reason %q", p.reason)
	}
}

func TestAClientWithoutItsSettingsIsRefusedNamingEach(t *testing.T) {
	_, err := NewClient(ClientOptions{Addr: "no-port"})
	for _, want := range []string{`controller address "no-port"`, "controller TLS", "group", "readiness probe"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	if _, err := NewClient(ClientOptions{Addr: "ctl:8443", TLS: &tls.Config{}, Group: "g", Namespace: "n", Ready: func(context.Context) error { return nil }}); err != nil {
		t.Errorf("valid options refused: %v", err)
	}
}
