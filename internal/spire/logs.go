package spire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
)

// redacted replaces every secret in forwarded SPIRE output. SPIRE itself
// logs a join-token agent's SPIFFE ID, spiffe://<td>/spire/agent/join_token/<token>
// (spire pkg/agent/attestor/node: "Node attestation was successful").
const redacted = "[redacted]"

// secrets are strings that must never reach a log.
type secrets struct {
	mu   sync.Mutex
	list []string
}

func (s *secrets) add(v string) {
	if v = strings.TrimSpace(v); v == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.list, v) {
		s.list = append(s.list, v)
	}
}

func (s *secrets) redact(line string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.list {
		line = strings.ReplaceAll(line, v, redacted)
	}
	return line
}

// logEntry is one line of SPIRE output (log_format = "json", logrus).
type logEntry struct {
	Level string // debug, info, warning, error, fatal, panic; "" if not JSON
	Msg   string
	Err   string // the "error" field
	Line  string // the whole line, redacted
}

// logSink turns a SPIRE process's output into slog records: SPIRE's info
// chatter at debug level, its warnings and errors as they are. Each entry
// is also passed to watch, which reads failures SPIRE only logs.
type logSink struct {
	name    string
	logger  *slog.Logger
	secrets *secrets
	watch   func(logEntry)

	tail *tail // shared by a process's stdout and stderr
	// quiet, if set, says an entry is expected noise (logged at debug).
	quiet func(logEntry) bool

	mu  sync.Mutex
	buf []byte
}

// tail keeps the last lines a process printed, for error messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > tailSize {
		t.lines = t.lines[1:]
	}
}

// String returns the last lines, joined.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

const (
	maxLine  = 64 << 10
	tailSize = 8
)

// newLogSinks returns the stdout and stderr sinks of one process and the
// tail they share. Separate sinks keep the two streams' partial lines apart.
func newLogSinks(name string, logger *slog.Logger, s *secrets, watch func(logEntry), quiet func(logEntry) bool) (stdout, stderr *logSink, t *tail) {
	t = &tail{}
	l := logger.With("component", name)
	return &logSink{name: name, logger: l, secrets: s, watch: watch, quiet: quiet, tail: t},
		&logSink{name: name, logger: l, secrets: s, watch: watch, quiet: quiet, tail: t}, t
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf = append(s.buf, p...)
	var lines []string
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			if len(s.buf) > maxLine {
				lines = append(lines, string(s.buf))
				s.buf = s.buf[:0]
			}
			break
		}
		lines = append(lines, string(s.buf[:i]))
		s.buf = s.buf[i+1:]
	}
	s.mu.Unlock()
	for _, l := range lines {
		s.handle(l)
	}
	return len(p), nil
}

func (s *logSink) handle(raw string) {
	line := s.secrets.redact(strings.TrimRight(raw, "\r"))
	if strings.TrimSpace(line) == "" {
		return
	}
	e := logEntry{Line: line}
	var fields map[string]any
	if json.Unmarshal([]byte(line), &fields) == nil {
		e.Level, _ = fields["level"].(string)
		e.Msg, _ = fields["msg"].(string)
		e.Err, _ = fields["error"].(string)
	} else {
		e.Msg = line
	}
	s.tail.add(line)

	attrs := []any{}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		switch k {
		case "level", "msg", "time":
			continue
		}
		attrs = append(attrs, k, fields[k])
	}
	level := slogLevel(e)
	if s.quiet != nil && s.quiet(e) {
		level = slog.LevelDebug
	}
	s.logger.Log(context.Background(), level, e.Msg, attrs...)
	if s.watch != nil {
		s.watch(e)
	}
}

func slogLevel(e logEntry) slog.Level {
	switch e.Level {
	case "debug", "trace":
		return slog.LevelDebug
	case "info":
		return slog.LevelDebug
	case "warning", "warn":
		if benign(e) {
			return slog.LevelDebug
		}
		return slog.LevelWarn
	case "error", "fatal", "panic":
		return slog.LevelError
	default:
		// Not JSON: SPIRE prints config and flag errors before its logger
		// exists.
		return slog.LevelWarn
	}
}

// benign are warnings SPIRE prints for choices meshexp makes on purpose.
func benign(e logEntry) bool {
	for _, prefix := range []string{
		// render.go enables the short intervals.
		"Experimental features have been enabled",
		// SPIRE tightens its own umask; socket directories are made 0755
		// beforehand (sockets.go).
		"Current umask",
		// Linkerd uses X.509 SVIDs only.
		"UpstreamAuthority plugin does not support JWT-SVIDs",
	} {
		if strings.HasPrefix(e.Msg, prefix) {
			return true
		}
	}
	return false
}

// describe is a one-line summary of an entry for error messages.
func (e logEntry) describe() string {
	if e.Err != "" {
		return fmt.Sprintf("%s: %s", e.Msg, e.Err)
	}
	return e.Msg
}
