package spire

import (
	"log/slog"
	"strings"
	"testing"
)

func TestLogSinkRedactsSecretsAndMapsSPIRELevels(t *testing.T) {
	logger, buf := testLogger(t)
	s := &secrets{}
	s.add("tok-123456")
	var seen []logEntry
	out, errw, tl := newLogSinks("spire-agent", logger, s, func(e logEntry) { seen = append(seen, e) }, nil)

	// Written in pieces, as a pipe delivers it.
	line := `{"level":"info","msg":"Node attestation was successful","spiffe_id":"spiffe://td/spire/agent/join_token/tok-123456","time":"x"}` + "\n"
	out.Write([]byte(line[:20]))
	out.Write([]byte(line[20:]))
	out.Write([]byte(`{"level":"warning","msg":"Failed to retrieve attestation result","error":"boom"}` + "\n" + `{"level":"error","msg":"bad"}` + "\n"))
	errw.Write([]byte("plain text from before the logger\n"))

	got := buf.String()
	if strings.Contains(got, "tok-123456") || strings.Contains(tl.String(), "tok-123456") {
		t.Errorf("the token leaked:\n%s", got)
	}
	if !strings.Contains(got, "join_token/"+redacted) {
		t.Errorf("the redacted ID is missing:\n%s", got)
	}
	for _, want := range []string{
		`level=DEBUG msg="Node attestation was successful" component=spire-agent`,
		`level=WARN msg="Failed to retrieve attestation result" component=spire-agent error=boom`,
		`level=ERROR msg=bad`,
		`level=WARN msg="plain text from before the logger"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if len(seen) != 4 || seen[1].Err != "boom" || seen[1].Level != "warning" {
		t.Errorf("watched entries = %+v", seen)
	}
}

func TestLogSinkTreatsDeliberateChoicesAsDebug(t *testing.T) {
	for _, msg := range []string{
		"Experimental features have been enabled. Please see doc/upgrading.md",
		"Current umask 0022 is too permissive; setting umask 0027",
		"UpstreamAuthority plugin does not support JWT-SVIDs.",
	} {
		if l := slogLevel(logEntry{Level: "warning", Msg: msg}); l != slog.LevelDebug {
			t.Errorf("%q logged at %v", msg, l)
		}
	}
}

func TestDiagnosisStopsTheWaitOnlyForHopelessFailures(t *testing.T) {
	o := Options{Mode: ModeExternal, ServerAddress: "spire", ServerPort: 8081, TrustBundlePath: "/b.pem"}
	cases := []struct {
		name  string
		entry logEntry
		fatal string
	}{
		{"a used join token", logEntry{Level: "warning", Msg: "Failed to retrieve attestation result", Err: "rpc error: code = InvalidArgument desc = failed to attest: join token does not exist or has already been used"}, "single-use"},
		{"an expired join token", logEntry{Level: "warning", Msg: "Failed to retrieve attestation result", Err: "join token expired"}, "expired"},
		{"a server the bundle does not vouch for", logEntry{Level: "warning", Msg: "Failed to retrieve attestation result", Err: "x509: certificate signed by unknown authority"}, "TrustBundlePath"},
		{"an unreachable server", logEntry{Level: "warning", Msg: "Failed to retrieve attestation result", Err: "connection refused"}, ""},
		{"an info line", logEntry{Level: "info", Msg: "join token does not exist or has already been used"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := newDiagnosis(o).note("spire-agent", c.entry)
			switch {
			case c.fatal == "" && err != nil:
				t.Errorf("stopped the wait: %v", err)
			case c.fatal != "" && (err == nil || !strings.Contains(err.Error(), c.fatal)):
				t.Errorf("want an error mentioning %q, got %v", c.fatal, err)
			}
		})
	}
	d := newDiagnosis(o)
	d.note("spire-agent", cases[3].entry)
	if h := strings.Join(d.hints(), "; "); !strings.Contains(h, "cannot reach the SPIRE server at spire:8081") {
		t.Errorf("hints = %q", h)
	}
}
