//go:build linux

package image

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// ctr is one `docker run -it` of the seed's line, attached through a
// pseudo-terminal (script(1)), with `docker logs -f` captured beside it.
type ctr struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer // what the terminal showed
	logs   *syncBuffer // docker logs -f
	done   chan struct{}
	logged chan struct{} // closed when follow is done (logs written, or the run ended)
	status int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// demo is what a seed run needs besides the image: a trust anchor made by
// `meshexp certs root` and a DNS server the test runs.
type demo struct {
	certs string
	dnsIP string
	names map[string]string // DNS name → IPv4 address
	mu    sync.Mutex
}

// seedLine is the demo's podman line with docker in place of podman and
// its flags unchanged; extra flags (only for the negative tests) go before
// the image.
func (d *demo) seedLine(name, image string, extra ...string) []string {
	host, _ := os.Hostname()
	args := []string{"docker", "run", "-it", "--rm", "--name", name,
		"--dns=" + d.dnsIP, "--cap-add=NET_ADMIN",
		"-v", d.certs + ":/opt/spire/certs",
		"-e", "WORKLOAD_NAME=web", "-e", "WORKLOAD_NAMESPACE=mixed-env", "-e", "NODE_NAME=" + host,
		"-p", "8000:8000"}
	args = append(args, extra...)
	return append(args, image)
}

// newDemo makes the trust anchor with meshexp's own command (run from the
// image) and starts a DNS server on the default bridge's gateway, the
// address containers on it reach the host at.
func newDemo(t testing.TB) *demo {
	t.Helper()
	prepare(t)
	d := &demo{names: map[string]string{}}
	d.certs = filepath.Join(env.work, name("certs"))
	if err := os.MkdirAll(d.certs, 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, "run", "--rm", "--network=none", "-v", d.certs+":/out", "--entrypoint", "/usr/local/bin/meshexp",
		env.image, "certs", "root", "--out-dir", "/out")
	d.dnsIP = bridgeGateway(t)
	mux := mdns.NewServeMux()
	mux.HandleFunc("meshexp.test.", func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		d.mu.Lock()
		ip := d.names[strings.ToLower(r.Question[0].Name)]
		d.mu.Unlock()
		if ip != "" && r.Question[0].Qtype == mdns.TypeA {
			m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)})
		} else if ip == "" {
			m.Rcode = mdns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	for _, n := range []string{"udp", "tcp"} {
		srv := &mdns.Server{Addr: net.JoinHostPort(d.dnsIP, "53"), Net: n, Handler: mux}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() { started <- srv.ListenAndServe() }()
		if err := <-started; err != nil {
			t.Fatalf("DNS server on %s/%s: %v", srv.Addr, n, err)
		}
		t.Cleanup(func() { srv.Shutdown() })
	}
	return d
}

func (d *demo) setName(n, ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.names[strings.ToLower(n)] = ip
}

// run starts args (a docker run -it line) on a pseudo-terminal.
func run(t testing.TB, name string, args []string) *ctr {
	t.Helper()
	c := &ctr{t: t, name: name, out: &syncBuffer{}, logs: &syncBuffer{}, done: make(chan struct{}), logged: make(chan struct{})}
	c.cmd = exec.Command("script", "-qefc", shellJoin(args), "/dev/null")
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	c.cmd.Stdin = nil
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := c.cmd.Wait()
		c.status = 0
		if ee, ok := err.(*exec.ExitError); ok {
			c.status = ee.ExitCode()
		} else if err != nil {
			c.status = -1
		}
		close(c.done)
	}()
	t.Cleanup(func() {
		docker("rm", "-f", name)
		select {
		case <-c.done:
		case <-time.After(time.Minute):
			c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("%s terminal:\n%s\ndocker logs:\n%s", name, c.out.String(), c.logs.String())
		}
	})
	go c.follow()
	return c
}

// follow captures docker logs -f once the container exists; it ends with
// the container, so the teardown is in it even after --rm removed it.
func (c *ctr) follow() {
	defer close(c.logged)
	for {
		select {
		case <-c.done:
			return
		default:
		}
		cmd := exec.Command("docker", "logs", "-f", c.name)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		// Before the container runs, docker logs -f returns at once, with
		// success and nothing: only a follow that saw output is the one.
		cmd.Run()
		if buf.Len() > 100 {
			c.logs.Write(buf.Bytes())
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor polls f until it succeeds or the run ends.
func (c *ctr) waitFor(what string, f func() error) {
	c.t.Helper()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-c.done:
			c.t.Fatalf("%s: docker run exited with %d while waiting for %s (last: %v)\n%s", c.name, c.status, what, err, c.out.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitRunning waits for meshexp's "running" line: the workload started
// after the proxy was ready.
func (c *ctr) waitRunning() {
	c.t.Helper()
	c.waitFor("meshexp to report running", func() error {
		if strings.Contains(c.out.String(), "msg=running") {
			return nil
		}
		return fmt.Errorf("not running yet")
	})
}

// wait waits for docker run to exit and returns its status.
// wait returns docker run's exit status once it and the logs it printed
// are in (docker logs -f ends with the container, not with docker run).
func (c *ctr) wait() int {
	c.t.Helper()
	<-c.done
	<-c.logged
	return c.status
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// httpGet fetches url from the host (loopback only in these tests).
func httpGet(ctx context.Context, url string) (string, error) {
	cmd := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "5", url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("curl %s: %v: %s", url, err, out)
	}
	return string(out), nil
}

// bridgeGateway is the host's address on Docker's default bridge (docker0),
// which containers on it reach the host at.
func bridgeGateway(t testing.TB) string {
	t.Helper()
	ifc, err := net.InterfaceByName("docker0")
	if err != nil {
		t.Fatalf("finding Docker's default bridge: %v", err)
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Fatalf("docker0 has no IPv4 address")
	return ""
}

var errNotYet = fmt.Errorf("not yet")
