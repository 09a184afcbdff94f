package spire

import (
	"strings"
	"testing"
	"time"
)

func TestLifetimesFollowSPIREsRules(t *testing.T) {
	for _, tc := range []struct {
		name      string
		svid, ca  time.Duration
		wantError string
	}{
		{"the defaults are accepted", DefaultSVIDTTL, DefaultCATTL, ""},
		{"a CA exactly six times the SVID is accepted", time.Minute, 6 * time.Minute, ""},
		{"the shortest SVID is accepted", 30 * time.Second, 3 * time.Minute, ""},
		{"a CA under six times the SVID is refused", time.Hour, 5 * time.Hour, "less than 6 times the SVID lifetime 1h"},
		{"an SVID shorter than 30s is refused", 10 * time.Second, time.Hour, "shorter than 30s"},
		{"an SVID longer than seven days is refused", 200 * time.Hour, 2000 * time.Hour, "longer than 168h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckLifetimes(tc.svid, tc.ca)
			if tc.wantError == "" {
				if err != nil {
					t.Fatalf("CheckLifetimes(%s, %s) = %v", tc.svid, tc.ca, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Fatalf("CheckLifetimes(%s, %s) = %v, want an error containing %q", tc.svid, tc.ca, err, tc.wantError)
			}
		})
	}
}

func TestLifetimesAreRenderedIntoTheServerConfig(t *testing.T) {
	opts := goldenOptions()["embedded-root"]
	opts.SVIDTTL, opts.CATTL, opts.AgentTTL = 90*time.Second, 9*time.Minute, time.Hour
	files, err := RenderConfigs(opts)
	if err != nil {
		t.Fatal(err)
	}
	server := files[opts.withDefaults().layout().serverConf]
	for _, want := range []string{`default_x509_svid_ttl = "1m30s"`, `ca_ttl = "9m"`, `agent_ttl = "1h"`} {
		if !strings.Contains(server, want) {
			t.Errorf("server.conf lacks %s:\n%s", want, server)
		}
	}
	opts.CATTL = 5 * time.Minute
	if _, err := RenderConfigs(opts); err == nil || !strings.Contains(err.Error(), "less than 6 times") {
		t.Errorf("a CA TTL under six SVID TTLs rendered: %v", err)
	}
}

func TestTheEmbeddedServerIssuesSVIDsOfTheConfiguredLifetime(t *testing.T) {
	t.Parallel()
	bin := requireSPIRE(t)
	opts, _ := embeddedOptions(t, bin)
	opts.SVIDTTL, opts.CATTL = time.Minute, 6*time.Minute
	logger, _ := testLogger(t)
	id := startIdentity(t, opts, logger)
	leaf := id.SVID().Certificates[0]
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < 50*time.Second || got > 70*time.Second {
		t.Errorf("SVID lifetime = %s, want about 1m (SPIRE backdates NotBefore by 10s)", got)
	}
}
