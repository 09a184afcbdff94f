package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/dns"
)

// runDNS executes the CLI with exactly env as the environment.
func runDNS(ctx context.Context, args []string, env map[string]string) (code int, stderr string) {
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = execute(ctx, args, lookup, &out, &errb)
	return code, errb.String()
}

func TestDNSBadInputExitsTwoAndNamesFlagAndVariable(t *testing.T) {
	base := []string{"dns", "--cluster-dns", "192.0.2.10:30053", "--dns-upstream", "192.0.2.53"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"cluster DNS is required", []string{"dns", "--dns-upstream", "192.0.2.53"}, nil,
			[]string{"--cluster-dns [env MESHEXP_DNS_CLUSTER_DNS]: the DNS forwarder needs at least one"}},
		{"a host name is not a server address", append(base, "--dns-upstream", "dns.example"), nil,
			[]string{"--dns-upstream: ", `"dns.example" is not a DNS server address`}},
		{"a bad variable is named", base, map[string]string{"MESHEXP_DNS_TIMEOUT": "soon"},
			[]string{"MESHEXP_DNS_TIMEOUT: ", `"soon" is not a duration`}},
		{"a bad CIDR is named", append(base, "--dns-cluster-cidrs", "10.96.0.0/40"), nil,
			[]string{"--dns-cluster-cidrs: "}},
		{"every problem is listed at once", append(base, "--dns-cache-size", "-5", "--dns-udp-size", "99", "--dns-listen", "localhost:53"), nil,
			[]string{"--dns-cache-size", "--dns-udp-size", "--dns-listen: "}},
		{"a missing resolv.conf is named", []string{"dns", "--cluster-dns", "192.0.2.10", "--dns-resolv-conf", "/nonexistent/resolv.conf"}, nil,
			[]string{"--dns-resolv-conf: ", "/nonexistent/resolv.conf"}},
		{"pointing the resolver needs port 53", append(base, "--dns-listen", "127.0.0.1:5353", "--dns-point-resolver", "/tmp/x"), nil,
			[]string{"--dns-point-resolver: ", "port 53"}},
		{"an attempt timeout longer than the timeout", append(base, "--dns-timeout", "1s", "--dns-attempt-timeout", "2s"), nil,
			[]string{"--dns-attempt-timeout: ", "at most --dns-timeout"}},
		{"a timeout beyond its bounds", append(base, "--dns-timeout", "700000h"), nil,
			[]string{"--dns-timeout: ", "is outside 10ms–1m"}},
		{"a trailing-dot cluster domain that is not a domain", base, map[string]string{"MESHEXP_CLUSTER_DOMAIN": "clu ster."},
			[]string{"MESHEXP_CLUSTER_DOMAIN: "}},
		{"an old flag name with a bad value names the old flag", []string{"dns", "--cluster-dns", "192.0.2.10", "--upstream", "dns.example"}, nil,
			[]string{"--upstream: ", `"dns.example" is not a DNS server address`, "is an old name", "input=--upstream", "use --dns-upstream"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stderr := runDNS(context.Background(), tt.args, tt.env)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitUsage, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestDNSOldNamesStillWorkAndWarn: the command's own names from before it
// shared bootstrap's registry keep their meaning, each with a warning that
// names the new one.
func TestDNSOldNamesStillWorkAndWarn(t *testing.T) {
	c, probs := config.LoadArgs(config.ScopeDNSCommand,
		[]string{"--upstream", "192.0.2.53", "--pod-cidr", "10.244.0.0/16", "--service-cidr", "10.96.0.0/12", "--point-resolver", "/tmp/r", "--timeout", "3s", "--namespace", "shop"},
		map[string]string{"MESHEXP_DNS_CLUSTER_DOMAIN": "example.internal", "MESHEXP_DNS_CLUSTER_DNS": "192.0.2.10"})
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintln(c.DNS.Upstreams, c.DNS.ClusterCIDRs, c.DNS.PointResolver, c.DNS.Timeout, c.WorkloadNamespace, c.ClusterDomain); got != "[192.0.2.53:53] [10.244.0.0/16 10.96.0.0/12] /tmp/r 3s shop example.internal\n" {
		t.Errorf("old names read as %s", got)
	}
	var warned []string
	for _, w := range probs.Warnings() {
		warned = append(warned, w.String())
	}
	for _, want := range []string{"--upstream: is an old name and will go away (fix: use --dns-upstream)", "--pod-cidr", "--point-resolver", "--timeout", "--namespace", "MESHEXP_DNS_CLUSTER_DOMAIN: is an old name and will go away (fix: use MESHEXP_CLUSTER_DOMAIN)"} {
		if !strings.Contains(strings.Join(warned, "\n"), want) {
			t.Errorf("no warning %q in:\n%s", want, strings.Join(warned, "\n"))
		}
	}
	// The new names are bootstrap's: one name per setting.
	for _, name := range []string{"dns-upstream", "dns-point-resolver", "dns-cluster-cidrs", "cluster-domain", "dns-listen", "cluster-dns"} {
		s := config.Lookup(name)
		if s == nil || s.Scope&config.ScopeBootstrap == 0 || s.Scope&config.ScopeDNSCommand == 0 {
			t.Errorf("%s is not shared by bootstrap and dns", name)
		}
	}
}

// TestDNSDefaultsAreTheForwardersDefaults keeps the registry's defaults
// for the forwarder equal to internal/dns's.
func TestDNSDefaultsAreTheForwardersDefaults(t *testing.T) {
	c, probs := config.LoadArgs(config.ScopeDNSCommand, nil, map[string]string{"MESHEXP_DNS_CLUSTER_DNS": "192.0.2.10"})
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	got, want := dnsServerOptions(c), dns.DefaultOptions()
	got.ClusterDNS = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("registry defaults give\n%+v\nwant dns.DefaultOptions\n%+v", got, want)
	}
}

func TestDNSServesAndStopsOnCancel(t *testing.T) {
	addr := freeUDPAndTCPPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	env := map[string]string{
		"MESHEXP_DNS_LISTEN":          addr,
		"MESHEXP_DNS_CLUSTER_DNS":     "127.0.0.1:1", // nothing there: SERVFAIL
		"MESHEXP_DNS_UPSTREAM":        "127.0.0.1:1",
		"MESHEXP_DNS_TIMEOUT":         "300ms",
		"MESHEXP_DNS_ATTEMPT_TIMEOUT": "100ms",
	}
	go func() {
		code, stderr := runDNS(ctx, []string{"dns", "--log-level", "error"}, env)
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr)
		}
		done <- code
	}()
	m := new(mdns.Msg)
	m.SetQuestion("web.default.svc.cluster.local.", mdns.TypeA)
	c := &mdns.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, _, err := c.Exchange(m, addr)
		if err == nil {
			if r.Rcode != mdns.RcodeServerFailure {
				t.Errorf("rcode %s with no cluster DNS reachable, want SERVFAIL", mdns.RcodeToString[r.Rcode])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after 20s waiting for meshexp dns to answer on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("meshexp dns did not stop within 30s of cancel")
	}
}

// freeUDPAndTCPPort finds a loopback port free for both protocols.
func freeUDPAndTCPPort(t *testing.T) string {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		ln, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return ""
}
