package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// runDNS executes the CLI with exactly env as the environment.
func runDNS(ctx context.Context, args []string, env map[string]string) (code int, stderr string) {
	var out, errb bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = execute(ctx, args, lookup, &out, &errb)
	return code, errb.String()
}

func TestDNSBadInputExitsTwoAndNamesFlagAndVariable(t *testing.T) {
	base := []string{"dns", "--cluster-dns", "192.0.2.10:30053", "--upstream", "192.0.2.53"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"cluster DNS is required", []string{"dns", "--upstream", "192.0.2.53"}, nil,
			[]string{"--cluster-dns (MESHEXP_DNS_CLUSTER_DNS): at least one"}},
		{"a host name is not a server address", append(base, "--upstream", "dns.example"), nil,
			[]string{"--upstream (MESHEXP_DNS_UPSTREAM)", `"dns.example" is not an IP`}},
		{"a bad variable is named", base, map[string]string{"MESHEXP_DNS_TIMEOUT": "soon"},
			[]string{"--timeout (MESHEXP_DNS_TIMEOUT)", `"soon" is not a duration`}},
		{"a bad CIDR is named", append(base, "--service-cidr", "10.96.0.0/40"), nil,
			[]string{"--service-cidr (MESHEXP_DNS_SERVICE_CIDR)"}},
		{"every problem is listed at once", append(base, "--cache-size", "-5", "--udp-size", "99", "--listen", "localhost:53"), nil,
			[]string{"--cache-size", "--udp-size", "--listen (MESHEXP_DNS_LISTEN)"}},
		{"a missing resolv.conf is named", []string{"dns", "--cluster-dns", "192.0.2.10", "--resolv-conf", "/nonexistent/resolv.conf"}, nil,
			[]string{"--resolv-conf (MESHEXP_DNS_RESOLV_CONF)", "/nonexistent/resolv.conf"}},
		{"pointing the resolver needs port 53", append(base, "--listen", "127.0.0.1:5353", "--point-resolver", "/tmp/x"), nil,
			[]string{"--point-resolver (MESHEXP_DNS_POINT_RESOLVER)", "port 53"}},
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

// TestDNSReadmeListsEveryFlag keeps internal/dns/README.md's settings table
// in step with the command's flags.
func TestDNSReadmeListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../dns/README.md")
	if err != nil {
		t.Fatal(err)
	}
	f := &dnsFlags{}
	for _, s := range dnsSettings(f) {
		row := "| `--" + s.name + "` | `" + s.env() + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("internal/dns/README.md lacks a row starting %q", row)
		}
	}
}
