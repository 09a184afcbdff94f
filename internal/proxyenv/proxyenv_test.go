package proxyenv_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/golden"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/proxyenv"
)

// A fixed PEM keeps the golden file stable; the proxy only needs it non-empty.
const anchorPEM = "-----BEGIN CERTIFICATE-----\nMIIBfixture\n-----END CERTIFICATE-----\n"

func load(t *testing.T, args []string, env map[string]string) *config.Config {
	t.Helper()
	base := map[string]string{"WORKLOAD_NAME": "web", "WORKLOAD_NAMESPACE": "mixed-env", "NODE_NAME": "vm-1"}
	for k, v := range env {
		base[k] = v
	}
	c, probs := config.LoadArgs(config.ScopeBootstrap, args, base)
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

func check(t *testing.T, name string, vars []proxyenv.Var) {
	t.Helper()
	var b strings.Builder
	for _, v := range vars {
		b.WriteString(v.Name + "=" + v.Value + "\n")
	}
	golden.Check(t, name, []byte(b.String()))
}

func TestDefaultEnvironmentMatchesTheDemo(t *testing.T) {
	vars, err := proxyenv.Render(load(t, nil, nil), []byte(anchorPEM), false)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "default.env", vars)
}

func TestCustomisedEnvironment(t *testing.T) {
	c := load(t, []string{"--control-plane-namespace", "mesh", "--cluster-domain", "corp.example", "--inbound-port", "5143",
		"--opaque-ports", "3306,9000-9010", "--cluster-networks", "10.8.0.0/16,fd10::/64", "--spire-socket", "/run/spire/api.sock"}, nil)
	vars, err := proxyenv.Render(c, []byte(anchorPEM), true)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "custom.env", vars)
}

func TestJSONValuesAreEncodedNotPasted(t *testing.T) {
	// A name cannot carry a quote past validation, but the encoder must not
	// depend on that: render a config whose names would break pasted JSON.
	c := load(t, nil, nil)
	c.WorkloadName, c.NodeName = `we"b`, `vm\1`
	vars, err := proxyenv.Render(c, []byte(anchorPEM), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		if v.Name == "LINKERD2_PROXY_POLICY_WORKLOAD" || v.Name == "LINKERD2_PROXY_DESTINATION_CONTEXT" {
			var m map[string]string
			if err := json.Unmarshal([]byte(v.Value), &m); err != nil {
				t.Errorf("%s is not JSON: %v", v.Name, err)
			}
			if m["external_workload"] != `we"b` {
				t.Errorf("%s external_workload = %q", v.Name, m["external_workload"])
			}
		}
	}
}

func TestEmptyTrustAnchorsAreRefused(t *testing.T) {
	if _, err := proxyenv.Render(load(t, nil, nil), []byte("  \n"), false); err == nil {
		t.Fatal("rendered an environment the proxy would refuse")
	}
}
