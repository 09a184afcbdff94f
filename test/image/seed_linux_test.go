//go:build linux

package image

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const spiffeID = "spiffe://root.linkerd.cluster.local/web"

// TestSeedLine runs the demo's line with docker and checks what the demo
// promised, then stops the container the way users do.
func TestSeedLine(t *testing.T) {
	d := newDemo(t)
	// The peer: a second meshed container of the same image (no published
	// port), which the first one's workload calls by name through the
	// test's DNS server.
	peer := name("peer")
	must(t, "run", "-d", "--rm", "--name", peer, "--dns="+d.dnsIP, "--cap-add=NET_ADMIN",
		"-v", d.certs+":/opt/spire/certs", "-e", "WORKLOAD_NAME=peer", "-e", "WORKLOAD_NAMESPACE=mixed-env",
		"-e", "NODE_NAME=peer-host", env.example)
	t.Cleanup(func() { docker("rm", "-f", peer) })
	peerIP := must(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", peer)
	d.setName("peer.meshexp.test.", peerIP)

	web := name("web")
	c := run(t, web, d.seedLine(web, env.example))
	c.waitRunning()
	webIP := must(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", web)

	t.Run("the proxy's uid gets an SVID that chains to the mounted trust anchor", func(t *testing.T) {
		out := must(t, "exec", "-u", "2102", web, "/usr/local/bin/meshexp", "identity", "fetch-svid",
			"-socket", "/run/meshexp/spire/public/api.sock", "-id", spiffeID, "-timeout", "30s")
		var chain []*x509.Certificate
		rest := []byte(out)
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			chain = append(chain, cert)
		}
		if len(chain) == 0 {
			t.Fatalf("no certificate from the Workload API: %q", out)
		}
		anchorPEM, err := os.ReadFile(filepath.Join(d.certs, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		roots.AppendCertsFromPEM(anchorPEM)
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatalf("the SVID does not chain to the trust anchor: %v", err)
		}
		if len(chain[0].URIs) != 1 || chain[0].URIs[0].String() != spiffeID {
			t.Fatalf("SVID URIs = %v, want %s", chain[0].URIs, spiffeID)
		}
	})

	t.Run("the interception rules are installed inside the container", func(t *testing.T) {
		rules := must(t, "exec", web, "iptables-save", "-t", "nat")
		for _, want := range []string{"-A PREROUTING -m comment --comment \"proxy-init/install-proxy-init-prerouting/meshexp\" -j PROXY_INIT_REDIRECT",
			"-A OUTPUT -m comment --comment \"proxy-init/install-proxy-init-output/meshexp\" -j PROXY_INIT_OUTPUT",
			"--to-ports 4143", "--to-ports 4140", "--uid-owner 2102"} {
			if !strings.Contains(rules, want) {
				t.Errorf("iptables-save -t nat in the container lacks %q:\n%s", want, rules)
			}
		}
	})

	t.Run("the proxy runs as 2102 and the workload as a non-root user", func(t *testing.T) {
		top := must(t, "top", web, "-eo", "pid,uid,args")
		var proxyUID, workloadUID string
		for _, line := range strings.Split(top, "\n") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			switch f[2] {
			case "/opt/linkerd/linkerd2-proxy":
				proxyUID = f[1]
			case "/workload/start":
				workloadUID = f[1]
			}
		}
		if proxyUID != "2102" {
			t.Errorf("proxy uid = %q, want 2102:\n%s", proxyUID, top)
		}
		if workloadUID == "" || workloadUID == "0" || workloadUID == "2102" {
			t.Errorf("workload uid = %q, want a non-root uid other than the proxy's:\n%s", workloadUID, top)
		}
	})

	t.Run("a request to the published port arrives at the proxy's inbound listener with its original destination", func(t *testing.T) {
		body, err := httpGet(context.Background(), "http://127.0.0.1:8000/whoami")
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("meshexp-standin inbound orig_dst=%s:8000 ", webIP)
		if !strings.HasPrefix(body, want) || !strings.Contains(body, "identity="+spiffeID) {
			t.Fatalf("GET 127.0.0.1:8000 = %q, want %q… with identity %s", body, want, spiffeID)
		}
	})

	t.Run("the workload's call to another container goes through the outbound listener", func(t *testing.T) {
		body := must(t, "exec", "-u", "workload", web, "/workload/start", "get", "http://peer.meshexp.test:8000/whoami")
		want := fmt.Sprintf("meshexp-standin outbound orig_dst=%s:8000 ", peerIP)
		if !strings.HasPrefix(body, want) {
			t.Fatalf("the workload's GET of the peer = %q, want %q…", body, want)
		}
	})

	t.Run("docker stop tears down in order and exits 0 within the grace period", func(t *testing.T) {
		must(t, "stop", "-t", "30", web)
		if st := c.wait(); st != 0 {
			t.Fatalf("docker run exited %d after docker stop, want 0 (137 would mean killed after the grace period)\n%s", st, c.out.String())
		}
		assertTeardown(t, c.logs.String())
	})
}

// assertTeardown checks meshexp's teardown steps appear in order.
func assertTeardown(t testing.TB, logs string) {
	t.Helper()
	steps := []string{"shutting down", "teardown step=workload", "teardown step=proxy", "teardown step=interception",
		"interception rules removed", "teardown step=identity", `child stopped" child=spire-server`}
	at := 0
	for _, s := range steps {
		i := strings.Index(logs[at:], s)
		if i < 0 {
			t.Fatalf("docker logs lack %q after the previous teardown step:\n%s", s, logs)
		}
		at += i
	}
}

func TestTheStandinNeverGoesIntoAReleaseTag(t *testing.T) {
	prepare(t)
	_, err := script([]string{"MESHEXP_IMAGE=meshexp:release", "MESHEXP_IMAGE_STANDIN=1"}, "hack/image.sh")
	if err == nil || !strings.Contains(err.Error(), "refusing to put the test stand-in proxy into meshexp:release") {
		t.Fatalf("hack/image.sh with the stand-in and a release tag: %v, want a refusal", err)
	}
}

func TestTheStandinImageNeverGoesIntoAReleaseTag(t *testing.T) {
	prepare(t)
	_, err := script([]string{"MESHEXP_IMAGE=meshexp:release", "MESHEXP_IMAGE_PROXY=meshexp-test/standin-proxy:latest"}, "hack/image.sh")
	if err == nil || !strings.Contains(err.Error(), "refusing to put the test stand-in proxy") {
		t.Fatalf("hack/image.sh with the stand-in image and a release tag: %v, want a refusal", err)
	}
}
