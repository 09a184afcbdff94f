package probe

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestProbesAreParsedFromTheirWrittenForm(t *testing.T) {
	for _, tc := range []struct {
		in, kind, err string
	}{
		{"http://127.0.0.1:8000/healthz", HTTP, ""},
		{"https://127.0.0.1:8443/ready", HTTP, ""},
		{"tcp://127.0.0.1:5432", TCP, ""},
		{"grpc://127.0.0.1:9000/my.Service", GRPC, ""},
		{"exec:/usr/local/bin/healthy --deep", Exec, ""},
		{"exec:healthy", "", "absolute command path"},
		{"tcp://127.0.0.1", "", "HOST:PORT"},
		{"udp://127.0.0.1:53", "", "unknown kind"},
		{"127.0.0.1:8000", "", "write http://"},
	} {
		sp, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || sp.Kind != tc.kind {
			t.Errorf("%s: %+v %v", tc.in, sp, err)
		}
	}
}

func mustParse(t *testing.T, s string) Spec {
	t.Helper()
	sp, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func once(t *testing.T, r Runner, s string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Once(ctx, mustParse(t, s))
}

func TestAnHTTPProbeSaysWhatItGotAndFromWhere(t *testing.T) {
	var code atomic.Int32
	code.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(code.Load())) }))
	defer srv.Close()
	url := srv.URL + "/healthz"
	if err := once(t, Runner{}, url); err != nil {
		t.Errorf("200: %v", err)
	}
	code.Store(503)
	if err := once(t, Runner{}, url); err == nil || err.Error() != "GET "+url+": 503" {
		t.Errorf("503: %v", err)
	}
	srv.Close()
	if err := once(t, Runner{}, url); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed: %v", err)
	}
}

func TestATCPProbePassesWhenSomethingListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := once(t, Runner{}, "tcp://"+addr); err != nil {
		t.Errorf("listening: %v", err)
	}
	l.Close()
	if err := once(t, Runner{}, "tcp://"+addr); err == nil || !strings.Contains(err.Error(), "TCP "+addr+": ") {
		t.Errorf("closed: %v", err)
	}
}

func TestAGRPCProbeAsksTheStandardHealthService(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	addr := l.Addr().String()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := once(t, Runner{}, "grpc://"+addr); err != nil {
		t.Errorf("serving: %v", err)
	}
	if err := once(t, Runner{}, "grpc://"+addr+"/orders"); err == nil || !strings.Contains(err.Error(), "service orders: NOT_SERVING") {
		t.Errorf("not serving: %v", err)
	}
}

func TestAnExecProbeRunsAsTheWorkloadsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	dir, err := os.MkdirTemp("", "mxprobe")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "healthy")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$(id -u)\" = 65534 ] || { echo \"running as $(id -u)\"; exit 3; }\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := once(t, Runner{UID: 65534, GID: 65534}, "exec:"+script); err != nil {
		t.Errorf("as 65534: %v", err)
	}
	if err := once(t, Runner{UID: 2102, GID: 2102}, "exec:"+script); err == nil || err.Error() != "exec "+script+": exit status 3: running as 2102" {
		t.Errorf("as 2102: %v", err)
	}
}

func TestASetFlipsOnlyAfterItsThresholds(t *testing.T) {
	var fail atomic.Bool
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		if fail.Load() {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	sp := mustParse(t, srv.URL+"/healthz")
	s := NewSet([]Spec{sp}, Timing{Period: time.Millisecond, FailureThreshold: 3, SuccessThreshold: 2}, Runner{}, slog.New(slog.DiscardHandler))
	if ok, reason, msg, _ := s.Status(); ok || reason != ReasonProbeFailed || msg != "not probed yet" {
		t.Errorf("before the first probe: %v %s %s", ok, reason, msg)
	}
	// Drive record by hand to check the thresholds exactly.
	fails := func(n int) {
		for range n {
			s.record(0, once(t, Runner{}, sp.Text), time.Now())
		}
	}
	fails(1)
	if ok, _, _, _ := s.Status(); ok {
		t.Error("passing after one success with successThreshold 2")
	}
	fails(1)
	if ok, _, _, _ := s.Status(); !ok {
		t.Error("not passing after two successes")
	}
	fail.Store(true)
	fails(2)
	if ok, _, _, _ := s.Status(); !ok {
		t.Error("failing after two failures with failureThreshold 3")
	}
	fails(1)
	ok, reason, msg, _ := s.Status()
	if ok || reason != ReasonProbeFailed || msg != "GET "+sp.Text+": 503" {
		t.Errorf("after three failures: %v %s %q", ok, reason, msg)
	}

	t.Run("run reports transitions on Changed", func(t *testing.T) {
		fail.Store(false)
		s := NewSet([]Spec{sp}, Timing{Period: time.Millisecond}, Runner{}, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		<-s.Changed()
		if ok, _, _, _ := s.Status(); !ok {
			t.Error("not passing after the change")
		}
		fail.Store(true)
		<-s.Changed()
		if ok, _, msg, _ := s.Status(); ok || !strings.HasSuffix(msg, ": 503") {
			t.Errorf("after the flip: %v %q", ok, msg)
		}
		if r := s.Results()[0]; r.Failures < 3 {
			t.Errorf("flipped after %d failures, want 3", r.Failures)
		}
		cancel()
		<-done
	})
}
