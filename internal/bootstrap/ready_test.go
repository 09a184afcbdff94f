package bootstrap

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitReadyReturnsOnceTheProxyAnswers200(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	if err := WaitReady(context.Background(), srv.URL+"/ready"); err != nil {
		t.Fatal(err)
	}
	if calls.Load() < 3 {
		t.Errorf("returned after %d calls, before the proxy was ready", calls.Load())
	}
}

func TestWaitReadyGivesUpSayingWhatTheProxySaid(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := WaitReady(ctx, srv.URL+"/ready")
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("got %v, want a deadline error naming the 503", err)
	}
}
