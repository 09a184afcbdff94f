//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// TestBootstrapRunsTheDNSForwarder: with --dns, names under
// svc.cluster.local go to the cluster's DNS server and the rest to the
// upstream, both servers living in the peer namespace, and the pointed
// resolv.conf is restored at shutdown.
func TestBootstrapRunsTheDNSForwarder(t *testing.T) {
	h := newHost(t)
	peer := h.pair.PeerAddr4.String()
	h.serveDNSInPeer(t, net.JoinHostPort(peer, "30053"), "web.e2e.svc.cluster.local.", "10.96.0.10")
	h.serveDNSInPeer(t, net.JoinHostPort(peer, "5353"), "example.org.", "192.0.2.1")
	resolv := filepath.Join(h.base, "resolv.conf")
	const original = "nameserver 198.51.100.53\nsearch corp.example\n"
	if err := os.WriteFile(resolv, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	h.env = append(h.env, "MESHEXP_DNS=true", "MESHEXP_DNS_CLUSTER_DNS="+peer+":30053",
		"MESHEXP_DNS_UPSTREAM="+peer+":5353", "MESHEXP_DNS_POINT_RESOLVER="+resolv)
	h.start()

	for _, q := range []struct{ name, want string }{
		{"web.e2e.svc.cluster.local.", "10.96.0.10"},
		{"example.org.", "192.0.2.1"},
	} {
		for _, proto := range []string{"udp", "tcp"} {
			got, err := h.lookup(proto, q.name)
			if err != nil || got != q.want {
				t.Errorf("%s over %s = %q, %v; want %s", q.name, proto, got, err, q.want)
			}
		}
	}
	// The forwarder's counters are on meshexp's admin endpoint too.
	if m, err := h.get("http://127.0.0.1:4192/metrics"); err != nil || !strings.Contains(m, `meshexp_dns_requests_total{proto="udp"} `) || !strings.Contains(m, `meshexp_dns_requests_total{proto="tcp"} `) {
		t.Errorf("admin /metrics lacks the DNS counters (%v):\n%s", err, m)
	}
	pointed, _ := os.ReadFile(resolv)
	if !strings.Contains(string(pointed), "nameserver 127.0.0.1") || !strings.Contains(string(pointed), "e2e.svc.cluster.local") {
		t.Errorf("resolv.conf not pointed at the forwarder with a pod's search list:\n%s", pointed)
	}

	h.signal(syscall.SIGTERM)
	if code := h.wait(60 * time.Second); code != 0 {
		t.Errorf("exit status = %d, want 0", code)
	}
	if restored, _ := os.ReadFile(resolv); string(restored) != original {
		t.Errorf("resolv.conf not restored:\n%s", restored)
	}
	h.assertClean()
}

// serveDNSInPeer answers name with an A record, over UDP and TCP, on addr
// inside the peer namespace.
func (h *host) serveDNSInPeer(t *testing.T, addr, name, ip string) {
	t.Helper()
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && strings.EqualFold(r.Question[0].Name, name) && r.Question[0].Qtype == mdns.TypeA {
			rr, _ := mdns.NewRR(fmt.Sprintf("%s 30 IN A %s", name, ip))
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	if err := h.pair.Peer.Do(func() (err error) {
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return err
		}
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	udp := &mdns.Server{PacketConn: pc, Handler: handler}
	tcp := &mdns.Server{Listener: ln, Handler: handler}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
}

// lookup asks meshexp's forwarder (127.0.0.1:53 in the host namespace) for
// name's A record as root, over proto.
func (h *host) lookup(proto, name string) (string, error) {
	var answer string
	err := h.pair.NS.Do(func() error {
		c := &mdns.Client{Net: proto, Timeout: 5 * time.Second}
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		conn, err := c.Dial("127.0.0.1:53")
		if err != nil {
			return err
		}
		defer conn.Close()
		r, _, err := c.ExchangeWithConnContext(context.Background(), m, conn)
		if err != nil {
			return err
		}
		for _, rr := range r.Answer {
			if a, ok := rr.(*mdns.A); ok {
				answer = a.A.String()
			}
		}
		if answer == "" {
			return fmt.Errorf("no A record: %s", mdns.RcodeToString[r.Rcode])
		}
		return nil
	})
	return answer, err
}
