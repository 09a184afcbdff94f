package kube_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
)

func TestANamedCauseWithdrawsReadinessAtOnceWithItsReason(t *testing.T) {
	srv := kubetest.Get(t)
	h := newHost(t, srv)
	proxy := newProxyStandIn(t)
	proxy.ready.Store(true)
	var expired atomic.Bool
	readiness := func() (bool, string, string) {
		if expired.Load() {
			return false, "IdentityExpired", "the proxy's SVID expired"
		}
		return true, "", ""
	}
	opts := fastOptions()
	opts.FailureThreshold = 1000 // a plain probe failure would never withdraw
	opts.Gate = readiness
	run(t, h, kube.HTTPProbe(proxy.url, nil), opts)
	h.waitReady(t, "True", kube.ReasonProxyReady)

	expired.Store(true)
	h.waitReady(t, "False", "IdentityExpired")
	c, _, err := h.ready(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Message, "SVID expired") {
		t.Errorf("message %q does not say why", c.Message)
	}
	expired.Store(false)
	h.waitReady(t, "True", kube.ReasonProxyReady)
}
