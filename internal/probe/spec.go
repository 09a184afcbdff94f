// Package probe runs the workload's health probes — HTTP GET, TCP, exec
// and gRPC health — with Kubernetes' semantics (period, timeout, success
// and failure thresholds, initial delay), and reports whether every probe
// passes, with a reason and message a person can act on.
//
// HTTP, TCP and gRPC probes connect with meshexp's control mark, so the
// interception rules let them reach the workload directly, never through
// the proxy (loopback is exempt too). Exec probes run as the workload's
// user, like the workload itself.
package probe

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Kinds of probe.
const (
	HTTP = "http"
	TCP  = "tcp"
	Exec = "exec"
	GRPC = "grpc"
)

// Spec is one probe as written: http://HOST:PORT/PATH (or https://),
// tcp://HOST:PORT, grpc://HOST:PORT[/SERVICE] or exec:COMMAND [ARG...].
type Spec struct {
	Kind    string
	Text    string   // as written, for messages
	URL     string   // http, https
	Addr    string   // tcp, grpc: host:port
	Service string   // grpc: the health service name ("" = the server)
	Command []string // exec
}

// Timing is Kubernetes' probe timing; zero values take its defaults
// (k8s.io/api/core/v1 Probe: periodSeconds 10, timeoutSeconds 1,
// successThreshold 1, failureThreshold 3, initialDelaySeconds 0).
type Timing struct {
	Period           time.Duration
	Timeout          time.Duration
	SuccessThreshold int
	FailureThreshold int
	InitialDelay     time.Duration
}

func (t Timing) withDefaults() Timing {
	if t.Period <= 0 {
		t.Period = 10 * time.Second
	}
	if t.Timeout <= 0 {
		t.Timeout = time.Second
	}
	if t.SuccessThreshold <= 0 {
		t.SuccessThreshold = 1
	}
	if t.FailureThreshold <= 0 {
		t.FailureThreshold = 3
	}
	return t
}

// Parse reads one probe.
func Parse(s string) (Spec, error) {
	s = strings.TrimSpace(s)
	sp := Spec{Text: s}
	if cmd, ok := strings.CutPrefix(s, "exec:"); ok {
		sp.Kind, sp.Command = Exec, strings.Fields(cmd)
		if len(sp.Command) == 0 || !strings.HasPrefix(sp.Command[0], "/") {
			return Spec{}, fmt.Errorf("probe %q: exec needs an absolute command path, e.g. exec:/usr/local/bin/healthy", s)
		}
		return sp, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return Spec{}, fmt.Errorf("probe %q: write http://HOST:PORT/PATH, tcp://HOST:PORT, grpc://HOST:PORT[/SERVICE] or exec:/COMMAND", s)
	}
	switch u.Scheme {
	case "http", "https":
		sp.Kind, sp.URL = HTTP, s
	case "tcp", "grpc":
		sp.Kind, sp.Addr = u.Scheme, u.Host
		sp.Service = strings.TrimPrefix(u.Path, "/")
		if u.Scheme == "tcp" && sp.Service != "" {
			return Spec{}, fmt.Errorf("probe %q: a tcp probe has no path", s)
		}
	default:
		return Spec{}, fmt.Errorf("probe %q: unknown kind %q; use http, https, tcp, grpc or exec", s, u.Scheme)
	}
	if sp.Kind != HTTP {
		if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
			return Spec{}, fmt.Errorf("probe %q: give HOST:PORT", s)
		}
	}
	return sp, nil
}

// ParseAll reads every probe and reports every bad one at once.
func ParseAll(list []string) ([]Spec, error) {
	var out []Spec
	var errs []error
	for _, s := range list {
		sp, err := Parse(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, sp)
	}
	return out, errors.Join(errs...)
}
