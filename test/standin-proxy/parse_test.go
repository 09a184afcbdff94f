package main

import (
	"testing"
	"time"
)

// The cases below come from linkerd2-proxy's own unit tests of the same
// parsers (linkerd/app/src/env/types.rs), so the stand-in agrees with the
// proxy on the edges.

func TestDurationsParseAsTheProxyParsesThem(t *testing.T) {
	good := map[string]time.Duration{
		"0": 0, "100ms": 100 * time.Millisecond, "3s": 3 * time.Second, "5m": 5 * time.Minute,
		"1h": time.Hour, "2d": 48 * time.Hour, " 23s\t": 23 * time.Second, "1000ms": time.Second, "0ms": 0,
	}
	for in, want := range good {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1", ".123h", "1.23h", "1 ms", "12moons", "12y", "-1s", "1m30s", "123456789012345678901234567890ms"} {
		if d, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, d)
		}
	}
}

func TestPortRangeSetsParseAsTheProxyParsesThem(t *testing.T) {
	good := map[string]int{ // value → number of ranges
		"": 0, "1-65535": 1, "1-2,42-420": 2, "1-2,42,80-420": 3, "40,30,20,1": 4, "1,,,,2": 2, "1, 2,\t3- 5": 3, "1, , 2,": 2,
		"25,587,3306,4444,5432,6379,9300,11211": 8,
	}
	for in, n := range good {
		if got, err := parsePortRangeSet(in); err != nil || len(got) != n {
			t.Errorf("parsePortRangeSet(%q) = %v, %v; want %d ranges", in, got, err, n)
		}
	}
	for _, in := range []string{"asdf", "80, 443, http", "80,http-443", "80-79", "1,2,5-2", "-1", "1,2-,50", "69420", "1-69420"} {
		if _, err := parsePortRangeSet(in); err == nil {
			t.Errorf("parsePortRangeSet(%q) succeeded, want an error", in)
		}
	}
}

func TestDNSSuffixesParseAsTheProxyParsesThem(t *testing.T) {
	for in, n := range map[string]int{"": 0, ",,,": 0, ".": 1, "a.b.c": 1, "a.b.c.": 1, " a.b.c. , d.e.f. ": 2, "mUlti.CasE.nAmE": 1} {
		if got, err := parseDNSSuffixes(in); err != nil || len(got) != n {
			t.Errorf("parseDNSSuffixes(%q) = %v, %v; want %d", in, got, err, n)
		}
	}
	if _, err := parseDNSSuffixes("a .b.c"); err == nil {
		t.Error(`parseDNSSuffixes("a .b.c") succeeded, want an error`)
	}
}

func TestIPSetsParseAsTheProxyParsesThem(t *testing.T) {
	for _, in := range []string{"127.0.0.1", "127.0.0.1,10.0.2.42", "127.0.0.1,10.0.2.42,192.168.0.69", "::1"} {
		if _, err := parseIPSet(in); err != nil {
			t.Errorf("parseIPSet(%q): %v", in, err)
		}
	}
	for _, in := range []string{"", "blaah", "10.4.0.555", "10.4.0.3,foobar,192.168.0.69", "10.0.1.1/24", "127.0.0.1, 10.0.0.1"} {
		if _, err := parseIPSet(in); err == nil {
			t.Errorf("parseIPSet(%q) succeeded, want an error", in)
		}
	}
}

func TestAddressesParseAsTheProxyParsesThem(t *testing.T) {
	for _, in := range []string{"0.0.0.0:4143", "127.0.0.1:4140", "[::]:4143", "[::1]:0"} {
		if _, err := parseSocketAddr(in); err != nil {
			t.Errorf("parseSocketAddr(%q): %v", in, err)
		}
	}
	for _, in := range []string{"localhost:4143", "4143", "0.0.0.0", "0.0.0.0:65536", "::1:4143", ""} {
		if _, err := parseSocketAddr(in); err == nil {
			t.Errorf("parseSocketAddr(%q) succeeded, want an error", in)
		}
	}
	loopback := map[string]bool{
		"linkerd-dst-headless.linkerd.svc.cluster.local.:8086": false,
		"10.0.0.1:8086": false, "127.0.0.1:8086": true, "[::1]:8090": true, "localhost.:8086": true, "localhost:8086": false,
	}
	for in, want := range loopback {
		a, err := parseControlAddr(in)
		if err != nil || a.loopback != want {
			t.Errorf("parseControlAddr(%q) = %+v, %v; want loopback=%v", in, a, err, want)
		}
	}
	for _, in := range []string{"linkerd-dst", "bad host:80", "host:http", ":8086", "host.-x:1"} {
		if _, err := parseControlAddr(in); err == nil {
			t.Errorf("parseControlAddr(%q) succeeded, want an error", in)
		}
	}
}

func TestDNSNamesFollowWebPKIRules(t *testing.T) {
	for _, in := range []string{"web.cluster.local", "web.cluster.local.", "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local", "_svc.example", "a"} {
		if err := checkDNSName(in); err != nil {
			t.Errorf("checkDNSName(%q): %v", in, err)
		}
	}
	for _, in := range []string{"", ".", "a..b", "-a.b", "a-.b", "a b", "10.0.0.1", "a.123", "é.example"} {
		if err := checkDNSName(in); err == nil {
			t.Errorf("checkDNSName(%q) succeeded, want an error", in)
		}
	}
}

func TestWorkloadAPIAddressesResolveToSocketPaths(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///tmp/spire-agent/public/api.sock": "/tmp/spire-agent/public/api.sock",
		"unix:/run/api.sock":                      "/run/api.sock",
		"/run/api.sock":                           "/run/api.sock",
	} {
		if got, err := workloadAPIPath(in); err != nil || got != want {
			t.Errorf("workloadAPIPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "unix:", "tcp://127.0.0.1:8081", "unix:tcp://x"} {
		if _, err := workloadAPIPath(in); err == nil {
			t.Errorf("workloadAPIPath(%q) succeeded, want an error", in)
		}
	}
}

func TestTheSPIREBackoffGrowsFrom100msTo1sWithJitter(t *testing.T) {
	st := defaultSPIREBackoff.NewBackoff()
	var waits []time.Duration
	for i := 0; i < 8; i++ {
		waits = append(waits, st.Next())
	}
	bases := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000, 1000}
	for i, w := range waits {
		base := bases[i] * time.Millisecond
		if w < base || w > base+base/10 || w > time.Second {
			t.Errorf("wait %d = %v, want within [%v, min(%v, 1s)]", i, w, base, base+base/10)
		}
	}
	st.Reset()
	if w := st.Next(); w > 110*time.Millisecond {
		t.Errorf("after Reset the wait is %v, want about 100ms", w)
	}
	for _, bad := range []struct {
		min, max time.Duration
		jitter   float64
	}{{2 * time.Second, time.Second, 0}, {0, 0, 0}, {0, time.Second, -1}, {0, time.Second, 101}} {
		if _, err := newExpBackoff(bad.min, bad.max, bad.jitter); err == nil {
			t.Errorf("newExpBackoff(%v, %v, %v) succeeded, want an error", bad.min, bad.max, bad.jitter)
		}
	}
}

func TestLogLevelsComeFromTheGlobalDirective(t *testing.T) {
	for in, want := range map[string]string{"info": "INFO", "warn,linkerd=info": "WARN", "linkerd=debug": "INFO", "debug": "DEBUG", "error": "ERROR", "off": "ERROR"} {
		if got := levelName(logLevelOf(in)); got != want {
			t.Errorf("logLevelOf(%q) = %s, want %s", in, got, want)
		}
	}
}
