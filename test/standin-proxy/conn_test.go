package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
	"github.com/meshexp/meshexp/internal/testutil/standin"
)

var answerRE = regexp.MustCompile(`^meshexp-standin (inbound|outbound|control) orig_dst=(\S+) peer=(\S+) identity=(\S+)\n$`)

// parseAnswer splits the stand-in's line into listener, orig_dst, peer and
// identity.
func parseAnswer(t *testing.T, line string) (string, string, string, string) {
	t.Helper()
	m := answerRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("answer %q is not the stand-in's line", line)
	}
	return m[1], m[2], m[3], m[4]
}

// certified starts a stand-in that holds webID's SVID.
func certified(t *testing.T, extra map[string]string) *proc {
	t.Helper()
	ca := standin.NewCA(t)
	api := standin.NewWorkloadAPI(t)
	api.Set(ca.MintSVID(t, webID, time.Hour))
	p, admin := readyStandin(t, ca, api.Addr(), extra)
	eventually.True(t, "/ready", func() bool { return isReady(t, admin) })
	return p
}

func TestADirectConnectionIsAnsweredWithItsLocalAddress(t *testing.T) {
	p := certified(t, nil)
	for _, iface := range []struct{ log, name string }{{"Inbound", "inbound"}, {"Outbound", "outbound"}, {"Tap", "control"}} {
		t.Run("on the "+iface.name+" listener a client that speaks first gets the line", func(t *testing.T) {
			addr := p.addr(iface.log)
			c, err := net.DialTimeout("tcp", addr, waitFor)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitFor))
			io.WriteString(c, "hello\n")
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			dir, dst, peer, id := parseAnswer(t, line)
			if dir != iface.name || dst != addr || peer != c.LocalAddr().String() || id != webID {
				t.Errorf("answer %q, want %s orig_dst=%s peer=%s identity=%s", line, iface.name, addr, c.LocalAddr(), webID)
			}
		})
	}
	t.Run("a client that waits gets the line unasked", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", p.addr("Inbound"), waitFor)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitFor))
		b, err := io.ReadAll(c) // the stand-in closes its side after the line
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		parseAnswer(t, string(b))
	})
}

func TestHTTPClientsGetTheLineAsA200Body(t *testing.T) {
	p := certified(t, nil)
	out := p.addr("Outbound")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: waitFor}
	var peers []string
	for i := 0; i < 3; i++ {
		resp, err := client.Get("http://" + out + "/anything?x=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Meshexp-Standin") != "outbound" {
			t.Fatalf("GET = %d %v, want 200 with X-Meshexp-Standin: outbound", resp.StatusCode, resp.Header)
		}
		_, dst, peer, id := parseAnswer(t, string(body))
		if dst != out || id != webID {
			t.Errorf("body %q, want orig_dst=%s identity=%s", body, out, webID)
		}
		peers = append(peers, peer)
	}
	if peers[0] != peers[2] {
		t.Errorf("keep-alive not honoured: requests came from %v", peers)
	}

	resp, err := client.Post("http://"+p.addr("Inbound")+"/", "text/plain", strings.NewReader("a body to drain"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if dir, _, _, _ := parseAnswer(t, string(body)); dir != "inbound" {
		t.Errorf("POST answered by %s, want inbound", dir)
	}

	_, m := get(t, "http://"+p.addr("Admin")+"/metrics")
	if v := metric(m, `tcp_open_total{direction="outbound"}`); v != "1" {
		t.Errorf(`tcp_open_total{direction="outbound"} = %q, want 1 (one keep-alive connection)`, v)
	}
	if v := metric(m, `tcp_open_total{direction="inbound"}`); v != "1" {
		t.Errorf(`tcp_open_total{direction="inbound"} = %q, want 1`, v)
	}
}

func TestAConnectionBeforeTheSVIDSaysSo(t *testing.T) {
	ca := standin.NewCA(t)
	p, _ := readyStandin(t, ca, "unix://"+standin.SocketPath(t), nil)
	_, body := get(t, "http://"+p.addr("Inbound")+"/")
	if _, _, _, id := parseAnswer(t, body); id != "none" {
		t.Errorf("identity=%s before any SVID, want none", id)
	}
}
