package main

import (
	"crypto/x509"
	"encoding/json"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/standin"
)

func TestEverySVIDSwapIsReportedWithItsSerialAndExpiry(t *testing.T) {
	ca := standin.NewCA(t)
	api := standin.NewWorkloadAPI(t)
	api.Set(ca.MintSVID(t, webID, time.Hour))
	p, admin := readyStandin(t, ca, api.Addr(), nil)
	eventually.True(t, "/ready", func() bool { return isReady(t, admin) })
	api.Set(ca.MintSVID(t, webID, 2*time.Hour))

	var rep identityReport
	eventually.True(t, "two swaps on /identity", func() bool {
		_, body := get(t, admin+"/identity")
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("/identity is not JSON: %v\n%s", err, body)
		}
		return len(rep.Swaps) == 2
	})
	first, second := rep.Swaps[0], rep.Swaps[1]
	if first.Serial == second.Serial || first.Serial == "" {
		t.Errorf("serials %q and %q: want two different ones", first.Serial, second.Serial)
	}
	if !second.At.After(first.At) || !second.At.Before(first.NotAfter) {
		t.Errorf("second swap at %s, want after %s and before the first SVID's expiry %s", second.At, first.At, first.NotAfter)
	}
	if d := second.NotAfter.Sub(first.NotAfter); d < 50*time.Minute {
		t.Errorf("second SVID expires %s after the first, want about 1h", d)
	}
	p.logLine("SVID swapped at=")
}

func TestAnUpdateRepeatingTheSVIDIsNotASwap(t *testing.T) {
	var l swapLog
	ca := standin.NewCA(t)
	chain, err := x509.ParseCertificates(ca.MintSVID(t, webID, time.Hour).X509Svid)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if !l.record(now, chain[0]) {
		t.Fatal("the first SVID was not a swap")
	}
	if l.record(now.Add(time.Second), chain[0]) {
		t.Error("the same SVID again counted as a swap")
	}
	if len(l.swaps) != 1 || l.repeats != 1 {
		t.Errorf("swaps %d repeats %d, want 1 and 1", len(l.swaps), l.repeats)
	}
}
