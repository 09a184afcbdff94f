package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestAGroupAdmitsByPathPrefixOrListAndNamesTheWorkloadAfterTheLastSegment(t *testing.T) {
	g := &Group{Namespace: "ns", Name: "web"}
	g.Spec.Identities.PathPrefix = "/hosts/"
	g.Spec.Identities.IDs = []string{"spiffe://td/db/db-1"}
	for _, tc := range []struct {
		id, name, err string
	}{
		{id: "spiffe://td/hosts/web-1", name: "web-1"},
		{id: "spiffe://td/hosts/eu/web-2", name: "web-2"},
		{id: "spiffe://td/db/db-1", name: "db-1"},
		{id: "spiffe://td/hosts", err: "may not join ExternalGroup ns/web"},
		{id: "spiffe://td/hostsx/a", err: "may not join"},
		{id: "spiffe://td/db/db-2", err: `it admits path prefix "/hosts/" and 1 listed ID(s)`},
		{id: "spiffe://td/hosts/Web_1", err: `last path segment "Web_1" names the ExternalWorkload and is not a valid name`},
	} {
		name, err := g.Admit(spiffeid.RequireFromString(tc.id))
		switch {
		case tc.err == "" && (err != nil || name != tc.name):
			t.Errorf("%s: got %q, %v; want %q", tc.id, name, err, tc.name)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: got %v; want an error saying %q", tc.id, err, tc.err)
		}
	}
}

func TestAGroupWithoutADeadHostPolicyUsesTheDefaults(t *testing.T) {
	g := &Group{}
	if g.NotReadyAfter() != 15*time.Second || g.DeleteAfter() != 10*time.Minute {
		t.Errorf("defaults %s, %s", g.NotReadyAfter(), g.DeleteAfter())
	}
	g.Spec.DeadHost.NotReadyAfterSeconds = 30
	if heartbeat(g) != 10 {
		t.Errorf("heartbeat %d: want a third of the grace", heartbeat(g))
	}
}

func TestTheSweepMarksSilentHostsThenGoneOnlyOnce(t *testing.T) {
	h := newHub()
	h.startLeading()
	g := &Group{Name: "web"}
	g.Spec.DeadHost.NotReadyAfterSeconds, g.Spec.DeadHost.DeleteAfterSeconds = 10, 60
	t0 := time.Now()
	key := keyOf("ns", "web-1")
	h.report(key, "web", "spiffe://td/hosts/web-1", reportOf(true), t0)
	groupOf := func(string, string) *Group { return g }
	for _, tc := range []struct {
		at    time.Duration
		phase int
	}{{5 * time.Second, phaseLive}, {10 * time.Second, phaseSilent}, {30 * time.Second, phaseSilent}, {60 * time.Second, phaseGone}} {
		h.sweep(t0.Add(tc.at), groupOf)
		if _, phase, _ := h.get(key); phase != tc.phase {
			t.Errorf("after %s: phase %d, want %d", tc.at, phase, tc.phase)
		}
	}
	h.report(key, "web", "spiffe://td/hosts/web-1", reportOf(true), t0.Add(61*time.Second))
	if _, phase, _ := h.get(key); phase != phaseLive {
		t.Errorf("a report did not bring the host back: phase %d", phase)
	}
}

// TestAFollowerKeepsNoReportsAndALeaderForgetsThemWhenItStepsDown: a
// follower only relays (a new leader starts from the objects), so its
// memory does not grow with every host it ever served.
func TestAFollowerKeepsNoReportsAndALeaderForgetsThemWhenItStepsDown(t *testing.T) {
	h := newHub()
	now := time.Now()
	for i := range 1000 {
		h.report(keyOf("ns", fmt.Sprintf("web-%d", i)), "web", "spiffe://td/hosts/web", reportOf(true), now)
	}
	if n := h.len(); n != 0 {
		t.Errorf("a follower keeps %d hosts' reports", n)
	}
	h.startLeading()
	h.report(keyOf("ns", "web-1"), "web", "spiffe://td/hosts/web-1", reportOf(true), now)
	if _, _, ok := h.get(keyOf("ns", "web-1")); !ok || h.len() != 1 {
		t.Fatalf("the leader did not keep a report: %d hosts", h.len())
	}
	h.stopLeading()
	if n := h.len(); n != 0 {
		t.Errorf("a leader that stepped down keeps %d hosts", n)
	}
	h.report(keyOf("ns", "web-2"), "web", "spiffe://td/hosts/web-2", reportOf(true), now)
	if n := h.len(); n != 0 {
		t.Errorf("after stepping down it keeps reports again: %d hosts", n)
	}
}
