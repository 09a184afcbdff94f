package bootstrap

import (
	"encoding/json"
	"log/slog"
	"strings"
)

// LevelTrace is the slog level of the proxy's TRACE lines, below Debug.
const LevelTrace = slog.LevelDebug - 4

// proxyLineLevel reads the level linkerd2-proxy wrote a log line at, so
// meshexp logs it at the same level: the plain format
//
//	[     0.002146s]  WARN ThreadId(01) linkerd2_proxy: message
//
// and the JSON format ({"timestamp":…,"level":"WARN",…}). A line in
// neither form (a panic message, say) is logged at Info.
func proxyLineLevel(line string) slog.Level {
	var word string
	if strings.HasPrefix(line, "{") {
		var rec struct {
			Level string `json:"level"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			return slog.LevelInfo
		}
		word = rec.Level
	} else if rest, ok := strings.CutPrefix(line, "["); ok {
		_, after, found := strings.Cut(rest, "]")
		if !found {
			return slog.LevelInfo
		}
		word, _, _ = strings.Cut(strings.TrimLeft(after, " "), " ")
	}
	switch strings.ToUpper(word) {
	case "ERROR":
		return slog.LevelError
	case "WARN":
		return slog.LevelWarn
	case "DEBUG":
		return slog.LevelDebug
	case "TRACE":
		return LevelTrace
	}
	return slog.LevelInfo
}
