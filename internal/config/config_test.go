package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/trust/trusttest"
)

func demoEnv(dir string) map[string]string {
	return map[string]string{
		"WORKLOAD_NAME":            "web",
		"WORKLOAD_NAMESPACE":       "mixed-env",
		"NODE_NAME":                "vm-1",
		"MESHEXP_TRUST_ANCHOR_DIR": dir,
	}
}

func TestDemoVariablesAloneGiveAValidConfig(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	c, probs := config.LoadArgs(config.ScopeBootstrap, nil, demoEnv(dir))
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	probs = c.Validate(config.ValidateOptions{Scope: config.ScopeBootstrap, DryRun: true})
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	if got, want := c.SPIFFEID(), "spiffe://root.linkerd.cluster.local/web"; got != want {
		t.Errorf("SPIFFEID = %s, want %s", got, want)
	}
	if got, want := c.ServerName(), "web.cluster.local"; got != want {
		t.Errorf("ServerName = %s, want %s", got, want)
	}
	if got, want := c.DestinationAddr, "linkerd-dst-headless.linkerd.svc.cluster.local.:8086"; got != want {
		t.Errorf("DestinationAddr = %s, want %s", got, want)
	}
	if got, want := c.DestinationIdentity, "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local"; got != want {
		t.Errorf("DestinationIdentity = %s, want %s", got, want)
	}
	if c.Proxy.User.UID != 2102 || c.WorkloadUser.UID == 0 {
		t.Errorf("proxy uid %d, workload uid %d: want 2102 and non-root", c.Proxy.User.UID, c.WorkloadUser.UID)
	}
}

func TestPrecedenceIsFlagThenEnvThenFileThenDefault(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	file := filepath.Join(t.TempDir(), "meshexp.yaml")
	if err := os.WriteFile(file, []byte("inbound-port: 5001\noutbound-port: 5002\nadmin-port: 5003\nskip-outbound-ports: [22, 8000-8100]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := demoEnv(dir)
	env["MESHEXP_OUTBOUND_PORT"] = "6002"
	env["MESHEXP_ADMIN_PORT"] = "6003"
	c, probs := config.LoadArgs(config.ScopeBootstrap, []string{"--config", file, "--admin-port", "7003"}, env)
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	if c.Proxy.InboundPort != 5001 || c.Proxy.OutboundPort != 6002 || c.Proxy.AdminPort != 7003 || c.Proxy.ControlPort != 4190 {
		t.Errorf("ports = %d/%d/%d/%d, want file 5001, env 6002, flag 7003, default 4190",
			c.Proxy.InboundPort, c.Proxy.OutboundPort, c.Proxy.AdminPort, c.Proxy.ControlPort)
	}
	if got := c.Origin("outbound-port"); got != "MESHEXP_OUTBOUND_PORT" {
		t.Errorf("origin of outbound-port = %q", got)
	}
	if got := len(c.Intercept.SkipOutboundPorts); got != 2 || c.Intercept.SkipOutboundPorts[1] != (config.PortRange{From: 8000, To: 8100}) {
		t.Errorf("skip-outbound-ports from a YAML list = %v", c.Intercept.SkipOutboundPorts)
	}
}

func TestRepeatedListFlagsAppend(t *testing.T) {
	c, probs := config.LoadArgs(config.ScopeIntercept, []string{"--skip-outbound-subnets", "10.1.0.0/16", "--skip-outbound-subnets", "fd01::/64,192.168.1.0/24"}, nil)
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	if got := len(c.Intercept.SkipOutboundSubnets); got != 3 {
		t.Errorf("got %d subnets, want 3: %v", got, c.Intercept.SkipOutboundSubnets)
	}
}

func TestAllProblemsAreReportedTogether(t *testing.T) {
	env := map[string]string{"WORKLOAD_NAME": "Bad_Name", "MESHEXP_PROXY_UID": "0", "MESHEXP_INBOUND_PORT": "70000"}
	c, probs := config.LoadArgs(config.ScopeBootstrap, []string{"--cluster-networks", "10.0.0.0/33"}, env)
	probs = append(probs, c.Validate(config.ValidateOptions{Scope: config.ScopeBootstrap, DryRun: true})...)
	msg := probs.Err().Error()
	for _, want := range []string{"WORKLOAD_NAME", "WORKLOAD_NAMESPACE: is not set", "NODE_NAME: is not set", "MESHEXP_PROXY_UID", "MESHEXP_INBOUND_PORT", "--cluster-networks"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

func TestConfigFileProblemsNameTheFileAndKey(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("proxy-uidd: 5\ninbound-port: nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, probs := config.LoadArgs(config.ScopeBootstrap, []string{"--config", bad}, nil)
	msg := probs.Err().Error()
	for _, want := range []string{`unknown key "proxy-uidd"`, "key inbound-port in " + bad} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

func TestMarkdownTableListsEveryEnvironmentVariable(t *testing.T) {
	table := config.MarkdownTable(config.ScopeBootstrap)
	for _, s := range config.Settings(config.ScopeBootstrap) {
		for _, e := range s.Env {
			if !strings.Contains(table, "`"+e+"`") {
				t.Errorf("table lacks %s", e)
			}
		}
	}
}

func TestABooleanFlagAloneMeansTrueAndDoesNotSwallowTheNextFlag(t *testing.T) {
	c, probs := config.LoadArgs(config.ScopeBootstrap, []string{"--register", "--intercept=false", "--dns", "--cluster-dns", "10.0.0.10"}, map[string]string{
		"WORKLOAD_NAME": "web", "WORKLOAD_NAMESPACE": "ns", "NODE_NAME": "vm",
	})
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	if !c.Register.Enabled || c.Intercept.Enabled || !c.DNS.Enabled || len(c.DNS.ClusterDNS) != 1 {
		t.Errorf("register=%t intercept=%t dns=%t cluster-dns=%v", c.Register.Enabled, c.Intercept.Enabled, c.DNS.Enabled, c.DNS.ClusterDNS)
	}
}
