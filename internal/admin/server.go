package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// DefaultAddr is the endpoint's default address: loopback, beside the
// proxy's 4190/4191 (control, admin) and 4140/4143 without colliding.
const DefaultAddr = "127.0.0.1:4192"

// AddExposition appends more Prometheus text to /metrics (the DNS
// forwarder's own counters, which it renders itself).
func (s *State) AddExposition(f func(io.Writer) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extra = append(s.extra, func() []byte {
		var b bytesBuffer
		_ = f(&b)
		return b
	})
}

type bytesBuffer []byte

func (b *bytesBuffer) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// Handler serves /metrics, /live, /ready and /status for s.
func Handler(s *State) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = writeMetrics(w, s.Snapshot())
		s.mu.Lock()
		extra := append([]func() []byte(nil), s.extra...)
		s.mu.Unlock()
		for _, f := range extra {
			_, _ = w.Write(f())
		}
	})
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "live") })
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if s.Snapshot().Ready {
			fmt.Fprintln(w, "ready")
			return
		}
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.Snapshot())
	})
	return mux
}

// Serve listens on addr and serves Handler(s) until the returned stop is
// called.
func Serve(addr string, s *State, logger *slog.Logger) (stop func(context.Context) error, bound net.Addr, err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("admin endpoint: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: Handler(s), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("admin endpoint stopped", "err", err)
		}
	}()
	logger.Info("admin endpoint serving", "addr", l.Addr().String())
	return srv.Shutdown, l.Addr(), nil
}
