package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/testutil/standin"
)

func TestSIGTERMClosesListenersAndExitsZero(t *testing.T) {
	p := certified(t, nil)
	in := p.addr("Inbound")
	// An idle keep-alive connection must not hold the exit up.
	c, err := net.DialTimeout("tcp", in, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))

	if code := p.terminate(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	p.logLine("Received shutdown signal")
	if _, err := net.DialTimeout("tcp", in, time.Second); err == nil {
		t.Error("the inbound listener still accepts after exit")
	}
}

func TestTheShutdownEndpointIsOffUnlessEnabled(t *testing.T) {
	p := certified(t, nil)
	admin := "http://" + p.addr("Admin")
	resp, err := http.Post(admin+"/shutdown", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("POST /shutdown without %s = %d, want 404", envShutdownEnabled, resp.StatusCode)
	}
	if code, _ := get(t, admin+"/live"); code != 200 {
		t.Error("the stand-in stopped answering after a refused /shutdown")
	}
}

func TestTheShutdownEndpointStopsTheProxyWhenEnabled(t *testing.T) {
	p := certified(t, map[string]string{envShutdownEnabled: "true"})
	admin := "http://" + p.addr("Admin")
	if code, _ := get(t, admin+"/shutdown"); code != 405 {
		t.Errorf("GET /shutdown = %d, want 405", code)
	}
	resp, err := http.Post(admin+"/shutdown", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /shutdown = %d, want 200", resp.StatusCode)
	}
	if code := p.exit(); code != 0 {
		t.Fatalf("exit status %d after /shutdown, want 0", code)
	}
	p.logLine("Received shutdown via admin interface")
}

func TestJSONLogsAreOneObjectALine(t *testing.T) {
	p := certified(t, map[string]string{envLogFormat: "json"})
	p.terminate()
	lines := strings.Split(strings.TrimSpace(p.out.String()), "\n")
	for _, line := range lines {
		var rec struct {
			Timestamp string         `json:"timestamp"`
			Level     string         `json:"level"`
			Fields    map[string]any `json:"fields"`
			Target    string         `json:"target"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if rec.Level == "" || rec.Fields["message"] == nil || rec.Target != logTarget {
			t.Errorf("line lacks level, fields.message or target: %s", line)
		}
	}
}

func TestAPortInUseIsAnInitializationFailure(t *testing.T) {
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ca := standin.NewCA(t)
	env := runnableEnv(t, ca.RootPEM(), "unix://"+standin.SocketPath(t))
	env[envInboundListenAddr] = busy.Addr().String()
	code, out := runToExit(t, env)
	if code != exitInitErr {
		t.Fatalf("exit status %d with the inbound port taken, want %d; output:\n%s", code, exitInitErr, out)
	}
	if !strings.Contains(out, "Initialization failure") || !strings.Contains(out, busy.Addr().String()) {
		t.Errorf("the failure does not name the address; output:\n%s", out)
	}
}

func TestRunningAsRootIsLoudlyWarned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: runs as root only (the warning is about uid 0)")
	}
	ca := standin.NewCA(t)
	p, _ := readyStandin(t, ca, "unix://"+standin.SocketPath(t), nil)
	line := p.logLine("RUNNING AS ROOT")
	if !strings.Contains(line, " WARN ") || !strings.Contains(line, "2102") {
		t.Errorf("root warning %q, want a WARN naming uid 2102", line)
	}
	p.terminate()
}
