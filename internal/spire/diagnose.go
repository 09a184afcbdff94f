package spire

import (
	"fmt"
	"strings"
	"sync"
)

// diagnosis turns what SPIRE logs into reasons a start fails: some log
// lines mean the wait can never succeed (a used join token, a trust bundle
// that does not match the server), others are the best explanation to give
// when the deadline passes (the server cannot be reached).
type diagnosis struct {
	o Options

	mu   sync.Mutex
	last map[string]string // component → last warning or error
}

func newDiagnosis(o Options) *diagnosis {
	return &diagnosis{o: o, last: map[string]string{}}
}

// note records e from component and returns a non-nil error when e means
// the start cannot succeed.
func (d *diagnosis) note(component string, e logEntry) error {
	switch e.Level {
	case "warning", "warn", "error", "fatal", "panic", "":
	default:
		return nil
	}
	if benign(e) || e.Msg == noIdentityIssued {
		return nil
	}
	d.mu.Lock()
	d.last[component] = e.describe()
	d.mu.Unlock()
	if component != "spire-agent" {
		return nil
	}
	text := e.Msg + " " + e.Err
	server := fmt.Sprintf("%s:%d", d.serverHost(), d.o.ServerPort)
	switch {
	// spire pkg/server/api/agent/v1/service.go attestJoinToken
	case strings.Contains(text, "join token does not exist or has already been used"):
		return fmt.Errorf("spire: the SPIRE server at %s rejected the agent's join token: it does not exist or has already been used (tokens are single-use; the agent would retry forever): %s", server, d.tokenFix())
	case strings.Contains(text, "join token expired"):
		return fmt.Errorf("spire: the SPIRE server at %s rejected the agent's join token: it has expired: %s", server, d.tokenFix())
	// spire pkg/server/plugin/nodeattestor/base/base.go
	case strings.Contains(text, "attestation data has already been used"):
		return fmt.Errorf("spire: the SPIRE server at %s refused the agent: its attestation data has already been used to attest another agent", server)
	case strings.Contains(text, "certificate signed by unknown authority"),
		strings.Contains(text, "x509: certificate has expired"),
		strings.Contains(text, "Trust Bandle and Server dont agree"):
		return fmt.Errorf("spire: the SPIRE agent does not trust the server at %s: the server's certificate does not chain to the trust bundle %s (%s); set TrustBundlePath to the server's CA bundle", server, d.o.TrustBundlePath, e.describe())
	}
	return nil
}

func (d *diagnosis) serverHost() string {
	if d.o.Mode == ModeEmbedded {
		return d.o.ServerBindAddress
	}
	return d.o.ServerAddress
}

func (d *diagnosis) tokenFix() string {
	if d.o.Mode == ModeEmbedded {
		return "this is a bug in meshexp's embedded mode; remove DataDir and start again"
	}
	return "create a new one on the server (spire-server token generate) and pass it with JoinToken or JoinTokenFile"
}

// hints says what SPIRE last complained about, for an error from a wait
// that ran out of time.
func (d *diagnosis) hints() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var hints []string
	if l, ok := d.last["spire-agent"]; ok {
		switch {
		case unreachable(l):
			hints = append(hints, fmt.Sprintf("the agent cannot reach the SPIRE server at %s:%d", d.serverHost(), d.o.ServerPort))
		case strings.Contains(l, "does not look like a TLS handshake"):
			hints = append(hints, fmt.Sprintf("something other than a SPIRE server answers at %s:%d (does traffic interception redirect the agent? exempt the server's address)", d.serverHost(), d.o.ServerPort))
		}
		hints = append(hints, "the agent last logged: "+l)
	}
	if l, ok := d.last["spire-server"]; ok {
		hints = append(hints, "the server last logged: "+l)
	}
	return hints
}

func unreachable(msg string) bool {
	for _, s := range []string{"connection refused", "no route to host", "network is unreachable", "i/o timeout", "no such host", "context deadline exceeded", "connection reset"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
