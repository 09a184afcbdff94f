package bootstrap

import (
	"log/slog"
	"testing"
)

func TestProxyLinesAreLoggedAtTheProxysLevel(t *testing.T) {
	tests := []struct {
		name, line string
		want       slog.Level
	}{
		{"a plain ERROR line is an error", `[     0.002146s] ERROR ThreadId(01) linkerd2_proxy: Invalid configuration`, slog.LevelError},
		{"a plain WARN line is a warning", `[     1.000000s]  WARN ThreadId(02) linkerd2_proxy::identity: no SVID yet`, slog.LevelWarn},
		{"a plain INFO line is info", `[     0.000001s]  INFO ThreadId(01) linkerd2_proxy: Admin interface on 0.0.0.0:4191`, slog.LevelInfo},
		{"a plain DEBUG line is debug", `[     0.1s] DEBUG ThreadId(01) linkerd2_proxy: detail`, slog.LevelDebug},
		{"a plain TRACE line is below debug", `[     0.1s] TRACE ThreadId(01) h2: frame`, LevelTrace},
		{"a JSON ERROR line is an error", `{"timestamp":"[ 0.1s]","level":"ERROR","fields":{"message":"boom"},"target":"linkerd2_proxy"}`, slog.LevelError},
		{"a JSON WARN line is a warning", `{"timestamp":"[ 0.1s]","level":"WARN","fields":{"message":"w"}}`, slog.LevelWarn},
		{"a JSON DEBUG line is debug", `{"level":"DEBUG"}`, slog.LevelDebug},
		{"a JSON TRACE line is below debug", `{"level":"TRACE"}`, LevelTrace},
		{"a line in neither format is info", `thread 'main' panicked at src/main.rs:1:1`, slog.LevelInfo},
		{"broken JSON is info", `{"level":`, slog.LevelInfo},
		{"an unclosed timestamp is info", `[ 0.1s ERROR`, slog.LevelInfo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := proxyLineLevel(tc.line); got != tc.want {
				t.Errorf("level = %v, want %v", got, tc.want)
			}
		})
	}
}
