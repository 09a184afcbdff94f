package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// logTarget is the tracing target printed on each line. It is not the
// proxy's ("linkerd2_proxy") so nobody mistakes the stand-in's log for the
// real thing.
const logTarget = "linkerd2_proxy_standin"

// proxyHandler writes slog records the way linkerd2-proxy's tracing
// subscriber does (linkerd/tracing): plain
//
//	[     0.002146s]  INFO ThreadId(01) linkerd2_proxy_standin: Admin interface on 0.0.0.0:4191
//
// or, with LINKERD2_PROXY_LOG_FORMAT=json, one JSON object a line with
// timestamp, level, fields (message and attributes), target and threadId.
type proxyHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	json  bool
	level slog.Leveler
	start time.Time
	attrs []slog.Attr
}

func newProxyHandler(w io.Writer, jsonFormat bool, level slog.Leveler, start time.Time) *proxyHandler {
	return &proxyHandler{mu: new(sync.Mutex), w: w, json: jsonFormat, level: level, start: start}
}

func (h *proxyHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *proxyHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), as...)
	return &c
}

// WithGroup is not needed by the stand-in; groups are flattened.
func (h *proxyHandler) WithGroup(string) slog.Handler { return h }

func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "DEBUG"
	case l < slog.LevelWarn:
		return "INFO"
	case l < slog.LevelError:
		return "WARN"
	}
	return "ERROR"
}

func (h *proxyHandler) Handle(_ context.Context, r slog.Record) error {
	ts := fmt.Sprintf("[%12.6fs]", r.Time.Sub(h.start).Seconds())
	var attrs []slog.Attr
	attrs = append(attrs, h.attrs...)
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })

	var line []byte
	if h.json {
		fields := map[string]any{"message": r.Message}
		for _, a := range attrs {
			fields[a.Key] = a.Value.Resolve().Any()
		}
		var err error
		line, err = json.Marshal(struct {
			Timestamp string         `json:"timestamp"`
			Level     string         `json:"level"`
			Fields    map[string]any `json:"fields"`
			Target    string         `json:"target"`
			ThreadID  string         `json:"threadId"`
		}{ts, levelName(r.Level), fields, logTarget, "ThreadId(1)"})
		if err != nil {
			return err
		}
	} else {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %5s ThreadId(01) %s: %s", ts, levelName(r.Level), logTarget, r.Message)
		for _, a := range attrs {
			v := a.Value.Resolve().String()
			if strings.ContainsAny(v, " \t\n\"=") || v == "" {
				v = fmt.Sprintf("%q", v)
			}
			fmt.Fprintf(&b, " %s=%s", a.Key, v)
		}
		line = []byte(b.String())
	}
	line = append(line, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(line)
	return err
}
