package main

import (
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/standin"
)

const webID = "spiffe://root.linkerd.cluster.local/web" // default.env's server ID

// readyStandin starts the stand-in against api and returns it with its admin
// base URL.
func readyStandin(t *testing.T, ca *standin.CA, api string, extra map[string]string) (*proc, string) {
	t.Helper()
	env := runnableEnv(t, ca.RootPEM(), api)
	for k, v := range extra {
		env[k] = v
	}
	p := start(t, env, nil)
	return p, "http://" + p.addr("Admin")
}

func isReady(t *testing.T, admin string) bool {
	code, _ := get(t, admin+"/ready")
	return code == 200
}

func TestReadyFlipsOnceTheWorkloadAPIGivesAVerifiedSVID(t *testing.T) {
	ca := standin.NewCA(t)
	api := standin.NewWorkloadAPI(t)
	p, admin := readyStandin(t, ca, api.Addr(), nil)

	if code, body := get(t, admin+"/live"); code != 200 || body != "live\n" {
		t.Errorf("/live = %d %q, want 200 \"live\\n\"", code, body)
	}
	// With no SVID the agent answers PermissionDenied and the stand-in
	// retries; it must have asked at least once and still be unready.
	eventually.True(t, "the stand-in to call the Workload API", func() bool { return api.Streams() > 0 })
	if code, body := get(t, admin+"/ready"); code != 503 || body != "not ready\n" {
		t.Fatalf("/ready before any SVID = %d %q, want 503 \"not ready\\n\"", code, body)
	}

	set := time.Now()
	api.Set(ca.MintSVID(t, webID, time.Hour))
	eventually.True(t, "/ready to answer 200 after the SVID was issued", func() bool { return isReady(t, admin) })
	t.Logf("ready %v after the SVID was set", time.Since(set).Round(time.Millisecond))
	if _, body := get(t, admin+"/ready"); body != "ready\n" {
		t.Errorf("/ready body %q, want \"ready\\n\"", body)
	}
	p.logLine("Certified identity id=" + webID)
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)); err == nil {
		if m := regexp.MustCompile(`VmRSS:\s+(\d+ kB)`).FindSubmatch(st); m != nil {
			t.Logf("stand-in RSS once ready: %s", m[1])
		}
	}
	_, m := get(t, admin+"/metrics")
	if v := metric(m, "identity_cert_refresh_count"); v != "1" {
		t.Errorf("identity_cert_refresh_count = %q, want 1", v)
	}
	if metric(m, "identity_cert_expiration_timestamp_seconds") == "" {
		t.Errorf("identity_cert_expiration_timestamp_seconds missing:\n%s", m)
	}
}

func TestRotatedSVIDsReplaceTheHeldOne(t *testing.T) {
	ca := standin.NewCA(t)
	api := standin.NewWorkloadAPI(t)
	api.Set(ca.MintSVID(t, webID, time.Hour))
	_, admin := readyStandin(t, ca, api.Addr(), nil)
	eventually.True(t, "/ready", func() bool { return isReady(t, admin) })
	_, m := get(t, admin+"/metrics")
	first := metric(m, "identity_cert_expiration_timestamp_seconds")

	api.Set(ca.MintSVID(t, webID, 3*time.Hour))
	eventually.True(t, "the rotated SVID to be taken", func() bool {
		_, m := get(t, admin+"/metrics")
		return metric(m, "identity_cert_refresh_count") == "2"
	})
	_, m = get(t, admin+"/metrics")
	if second := metric(m, "identity_cert_expiration_timestamp_seconds"); second == first {
		t.Errorf("expiry still %s after rotation to a longer SVID", first)
	}
	if !isReady(t, admin) {
		t.Error("not ready after rotation")
	}
}

func TestSVIDsThatDoNotMatchOrDoNotVerifyAreNotUsed(t *testing.T) {
	ca := standin.NewCA(t)
	other := standin.NewCA(t) // a different trust anchor: its SVIDs must not verify
	cases := []struct {
		name   string
		issuer *standin.CA
		id     string
		ttl    time.Duration
		log    string
	}{
		{"an SVID for another workload leaves the stand-in unready", ca, "spiffe://root.linkerd.cluster.local/db", time.Hour, "no matching SVID found"},
		{"an SVID from another trust anchor leaves the stand-in unready", other, webID, time.Hour, "does not verify against " + envTrustAnchors},
		{"an expired SVID leaves the stand-in unready", ca, webID, -time.Second, "does not verify against " + envTrustAnchors},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			api := standin.NewWorkloadAPI(t)
			api.Set(tc.issuer.MintSVID(t, tc.id, tc.ttl))
			p, admin := readyStandin(t, ca, api.Addr(), nil)
			p.logLine(tc.log)
			if isReady(t, admin) {
				t.Fatal("/ready is 200 with an unusable SVID")
			}
			_, m := get(t, admin+"/metrics")
			if v := metric(m, "identity_svid_rejected_total"); v == "0" || v == "" {
				t.Errorf("identity_svid_rejected_total = %q, want > 0", v)
			}
		})
	}
}

func TestAnSVIDThatFailsToVerifyDoesNotReplaceTheHeldOne(t *testing.T) {
	ca := standin.NewCA(t)
	other := standin.NewCA(t)
	api := standin.NewWorkloadAPI(t)
	api.Set(ca.MintSVID(t, webID, time.Hour))
	p, admin := readyStandin(t, ca, api.Addr(), nil)
	eventually.True(t, "/ready", func() bool { return isReady(t, admin) })

	api.Set(other.MintSVID(t, webID, time.Hour))
	p.logLine("does not verify")
	_, m := get(t, admin+"/metrics")
	if v := metric(m, "identity_cert_refresh_count"); v != "1" {
		t.Errorf("identity_cert_refresh_count = %q after a bad rotation, want 1", v)
	}
	if !isReady(t, admin) {
		t.Error("a bad rotation made the stand-in unready; the proxy keeps its certificate")
	}
}

func TestTheSVIDIsPickedAmongSeveralByServerID(t *testing.T) {
	ca := standin.NewCA(t)
	api := standin.NewWorkloadAPI(t)
	api.Set(ca.MintSVID(t, "spiffe://root.linkerd.cluster.local/other", time.Hour), ca.MintSVID(t, webID, time.Hour))
	_, admin := readyStandin(t, ca, api.Addr(), nil)
	eventually.True(t, "/ready with the second of two SVIDs", func() bool { return isReady(t, admin) })
}

func TestASocketThatAppearsLaterIsPickedUp(t *testing.T) {
	ca := standin.NewCA(t)
	path := standin.SocketPath(t)
	p, admin := readyStandin(t, ca, "unix://"+path, nil)
	// The stand-in is retrying against a socket that does not exist yet, as
	// while a SPIRE agent starts.
	p.logLine("retrying with a backoff")
	if isReady(t, admin) {
		t.Fatal("ready without a Workload API")
	}
	api := standin.NewWorkloadAPIAt(t, path)
	api.Set(ca.MintSVID(t, webID, time.Hour))
	appeared := time.Now()
	eventually.True(t, "/ready after the socket appeared", func() bool { return isReady(t, admin) })
	t.Logf("ready %v after the socket appeared", time.Since(appeared).Round(time.Millisecond))
}
