package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/trust/trusttest"
)

func writeYAML(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "meshexp.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBooleansMeanTheSameInTheEnvironmentAndTheFile: one parser for both.
func TestBooleansMeanTheSameInTheEnvironmentAndTheFile(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	for word, want := range map[string]bool{
		"true": true, "yes": true, "on": true, "1": true, "TRUE": true, "Yes": true,
		"false": false, "no": false, "off": false, "0": false, "False": false, "NO": false,
	} {
		env := demoEnv(dir)
		env["MESHEXP_REGISTER"] = word
		c, probs := config.LoadArgs(config.ScopeBootstrap, nil, env)
		if err := probs.Err(); err != nil || c.Register.Enabled != want {
			t.Errorf("MESHEXP_REGISTER=%s: %v, err %v; want %v", word, c.Register.Enabled, err, want)
		}
		c, probs = config.LoadArgs(config.ScopeBootstrap, []string{"--config", writeYAML(t, "register: "+word+"\n")}, demoEnv(dir))
		if err := probs.Err(); err != nil || c.Register.Enabled != want {
			t.Errorf("register: %s in the file: %v, err %v; want %v", word, c.Register.Enabled, err, want)
		}
	}
	for _, word := range []string{"t", "f", "y", "enabled", "2"} {
		env := demoEnv(dir)
		env["MESHEXP_REGISTER"] = word
		if _, probs := config.LoadArgs(config.ScopeBootstrap, nil, env); probs.Err() == nil {
			t.Errorf("MESHEXP_REGISTER=%s was accepted", word)
		}
		if _, probs := config.LoadArgs(config.ScopeBootstrap, []string{"--config", writeYAML(t, "register: "+word+"\n")}, demoEnv(dir)); probs.Err() == nil {
			t.Errorf("register: %s in the file was accepted", word)
		}
	}
}

// TestFileValuesAreTheTextAsWritten: a quoted value is text, whatever YAML
// 1.1 would make of it; lists may be YAML lists.
func TestFileValuesAreTheTextAsWritten(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	env := demoEnv(dir)
	delete(env, "WORKLOAD_NAME")
	delete(env, "NODE_NAME")
	file := writeYAML(t, "workload-name: \"no\"\nnode-name: '0123'\ncluster-domain: example.internal.\nopaque-ports: [3306, 5432-5433]\nproxy-log-level: warn\ncontrol-mark: 0x2000\nworkload-user: \"1000:10\"\n")
	c, probs := config.LoadArgs(config.ScopeBootstrap, []string{"--config", file}, env)
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	if c.WorkloadName != "no" || c.NodeName != "0123" || c.ClusterDomain != "example.internal" || len(c.Proxy.OpaquePorts) != 2 || c.Proxy.LogLevel != "warn" ||
		c.Intercept.ControlMark != 0x2000 || c.WorkloadUser.UID != 1000 || c.WorkloadUser.GID != 10 {
		t.Errorf("read %q %q %q %v %q %#x %v", c.WorkloadName, c.NodeName, c.ClusterDomain, c.Proxy.OpaquePorts, c.Proxy.LogLevel, c.Intercept.ControlMark, c.WorkloadUser)
	}
}

// TestAnEmptyVariableDoesNotHideAnother: WORKLOAD_NAME= used to mask
// MESHEXP_WORKLOAD_NAME and the config file.
func TestAnEmptyVariableDoesNotHideAnother(t *testing.T) {
	dir, _ := trusttest.AnchorDir(t)
	env := demoEnv(dir)
	env["WORKLOAD_NAME"] = ""
	env["MESHEXP_WORKLOAD_NAME"] = "web"
	c, probs := config.LoadArgs(config.ScopeBootstrap, nil, env)
	if err := probs.Err(); err != nil || c.WorkloadName != "web" {
		t.Fatalf("workload name %q, err %v", c.WorkloadName, err)
	}
	env = demoEnv(dir)
	env["MESHEXP_INBOUND_PORT"] = " "
	c, probs = config.LoadArgs(config.ScopeBootstrap, []string{"--config", writeYAML(t, "inbound-port: 5001\n")}, env)
	if err := probs.Err(); err != nil || c.Proxy.InboundPort != 5001 {
		t.Fatalf("inbound port %d, err %v; want the file's 5001", c.Proxy.InboundPort, err)
	}
}

// TestKubeconfigListIsReadLikeKubectl: KUBECONFIG=a:b was read as one path.
func TestKubeconfigListIsReadLikeKubectl(t *testing.T) {
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(tmp, "missing")
	c, probs := config.LoadArgs(config.ScopeKubeAPI, nil, map[string]string{"KUBECONFIG": missing + ":" + a + ":" + b})
	if err := probs.Err(); err != nil || c.Register.Kubeconfig != a {
		t.Fatalf("kubeconfig %q, err %v; want %s", c.Register.Kubeconfig, err, a)
	}
	if w := probs.Warnings(); len(w) != 1 || !strings.Contains(w[0].String(), "not "+b) {
		t.Errorf("want one warning naming %s, got %v", b, w)
	}
	_, probs = config.LoadArgs(config.ScopeKubeAPI, nil, map[string]string{"KUBECONFIG": missing + ":" + missing + "2"})
	if err := probs.Err(); err == nil || !strings.Contains(err.Error(), "KUBECONFIG: none of its files exists") {
		t.Errorf("err %v", err)
	}
}

// TestEveryDurationHasBounds: the bounds table covers every duration
// setting, with the default inside.
func TestEveryDurationHasBounds(t *testing.T) {
	for _, s := range config.Settings(^config.Scope(0)) {
		if s.Kind != "duration" {
			continue
		}
		// Its own scope: commands may spell flags alike (the controller's
		// --lease-duration is not bootstrap's).
		_, probs := config.LoadArgs(s.Scope, []string{"--" + s.FlagName(), "876000h"}, nil)
		found := false
		for _, p := range probs {
			if p.Setting == s.Name && strings.Contains(p.Message, "is outside") {
				found = true
			}
			if p.Setting == s.Name && s.Default != "" && !strings.Contains(p.Input, "--"+s.FlagName()) {
				t.Errorf("%s: the default is refused: %s", s.Name, p)
			}
		}
		if !found {
			t.Errorf("--%s accepts 876000h: no bounds", s.FlagName())
		}
		if _, err := time.ParseDuration(s.Default); s.Default != "" && err != nil {
			t.Errorf("--%s default %q is not a duration", s.FlagName(), s.Default)
		}
	}
}

// TestAFIFOIsRefusedWithoutBlocking: reading a FIFO would wait for a
// writer forever, and SIGTERM would not end the wait.
func TestAFIFOIsRefusedWithoutBlocking(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.ReadRegularFile(p)
	if err == nil || !strings.Contains(err.Error(), "is a named pipe (FIFO), not a regular file") {
		t.Errorf("err %v", err)
	}
}
