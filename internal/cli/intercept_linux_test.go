//go:build linux

package cli

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/netns"
)

// inNS runs the CLI on a thread inside ns, so every iptables command it
// starts acts on ns.
func inNS(t *testing.T, ns *netns.NS, args []string, env map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	if err := ns.Do(func() error { code, stdout, stderr = run(t, args, env); return nil }); err != nil {
		t.Fatal(err)
	}
	return code, stdout, stderr
}

var chainCounters = regexp.MustCompile(`\[\d+:\d+\]$`)

// allRules dumps every table of both families and both backends in ns,
// without timestamps and counters.
func allRules(t *testing.T, ns *netns.NS) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range []string{"iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save"} {
		if _, err := exec.LookPath(cmd); err != nil {
			continue
		}
		b.WriteString("== " + cmd + "\n")
		for _, l := range strings.Split(ns.Run(t, cmd), "\n") {
			if !strings.HasPrefix(l, "#") {
				b.WriteString(chainCounters.ReplaceAllString(l, "[0:0]") + "\n")
			}
		}
	}
	return b.String()
}

func TestInterceptRefusesBadSettingsWithExitTwoBeforeWritingARule(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		input string // the flag or variable the message must name
	}{
		{"a skip port of 70000", []string{"--skip-outbound-ports", "70000"}, nil, "--skip-outbound-ports"},
		{"a skip port of 70000 from the environment", nil, map[string]string{"MESHEXP_SKIP_INBOUND_PORTS": "4567,70000"}, "MESHEXP_SKIP_INBOUND_PORTS"},
		{"a malformed range", []string{"--skip-outbound-ports", "5000-"}, nil, "--skip-outbound-ports"},
		{"a reversed range", []string{"--skip-inbound-ports", "6000:5000"}, nil, "--skip-inbound-ports"},
		{"an invalid subnet", []string{"--skip-outbound-subnets", "10.0.0.0/33"}, nil, "--skip-outbound-subnets"},
		{"a subnet with host bits", []string{"--skip-outbound-subnets", "10.1.2.3/8"}, nil, "--skip-outbound-subnets"},
		{"proxy uid 0", []string{"--proxy-uid", "0"}, nil, "--proxy-uid"},
		{"proxy uid 0 from the environment", nil, map[string]string{"MESHEXP_PROXY_UID": "0"}, "MESHEXP_PROXY_UID"},
		{"an unknown backend", []string{"--intercept-backend", "nftables"}, nil, "--intercept-backend"},
		{"a bad control mark", []string{"--control-mark", "mark"}, nil, "--control-mark"},
		{"a bad exempt destination", []string{"--exempt-destinations", "spire.example.com:8081"}, nil, "--exempt-destinations"},
		{"a bad exempt destination from the environment", nil, map[string]string{"MESHEXP_INTERCEPT_EXEMPT_DESTINATIONS": "10.0.0.1:0"}, "MESHEXP_INTERCEPT_EXEMPT_DESTINATIONS"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			for _, sub := range []string{"install", "remove", "show"} {
				args := append([]string{"intercept", sub}, tc.args...)
				exec := func() (int, string, string) { return run(t, args, tc.env) }
				var ns *netns.NS
				var before string
				if os.Geteuid() == 0 {
					// Where a rule would land if validation let one through.
					ns = netns.New(t)
					before = allRules(t, ns)
					exec = func() (int, string, string) { return inNS(t, ns, args, tc.env) }
				}
				code, stdout, stderr := exec()
				if code != ExitUsage {
					t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", sub, code, ExitUsage, stdout, stderr)
				}
				if !strings.Contains(stderr, tc.input) {
					t.Errorf("%s: message does not name %s: %s", sub, tc.input, stderr)
				}
				if ns != nil {
					if after := allRules(t, ns); after != before {
						t.Errorf("%s: rules changed although the input was refused\n--- before\n%s--- after\n%s", sub, before, after)
					}
				}
			}
		})
	}
}

func TestInterceptInstallShowRemove(t *testing.T) {
	netns.RequireRoot(t)
	for _, backend := range []string{"auto", "iptables-legacy", "iptables-nft"} {
		t.Run(backend, func(t *testing.T) {
			ns := netns.New(t)
			env := map[string]string{"MESHEXP_INTERCEPT_BACKEND": backend, "MESHEXP_INTERCEPT_IPV6": "on"}
			before := allRules(t, ns)
			step := func(args ...string) string {
				t.Helper()
				code, stdout, stderr := inNS(t, ns, append([]string{"intercept"}, args...), env)
				if code != 0 {
					t.Fatalf("intercept %s: exit %d: %s", strings.Join(args, " "), code, stderr)
				}
				return stdout
			}

			if out := step("show"); !strings.Contains(out, "IPv4") || !strings.Contains(out, "not installed") {
				t.Errorf("show before install:\n%s", out)
			}
			dry := step("install", "--dry-run")
			if !strings.Contains(dry, "*nat\n:PROXY_INIT_REDIRECT - [0:0]") || !strings.Contains(dry, "# IPv6: ") {
				t.Errorf("dry run does not print the restore input of both families:\n%s", dry)
			}
			if after := allRules(t, ns); after != before {
				t.Fatalf("install --dry-run changed the rules:\n%s", after)
			}
			step("install")
			step("install")
			show := step("show")
			for _, fam := range []string{"IPv4", "IPv6"} {
				if !regexp.MustCompile(fam + ` \(\S+\): installed, matches the plan`).MatchString(show) {
					t.Errorf("show after two installs does not say %s matches:\n%s", fam, show)
				}
			}
			if strings.Count(show, "install-proxy-init-output/meshexp") != 2 {
				t.Errorf("show lists the OUTPUT jump other than once per family:\n%s", show)
			}
			if dry := step("install", "--dry-run"); !strings.Contains(dry, "-D OUTPUT ") {
				t.Errorf("dry run over an install does not delete the old jump first:\n%s", dry)
			}
			step("remove")
			if after := allRules(t, ns); after != before && !onlyEmptyNat(before, after) {
				t.Errorf("remove did not restore the rules\n--- before\n%s--- after\n%s", before, after)
			}
		})
	}
}

// onlyEmptyNat reports whether after differs from before only by empty nat
// tables: with iptables-legacy, a namespace that had no nat table keeps an
// empty one (every built-in chain ACCEPT, no rule) once rules were
// installed there; the kernel cannot unregister a legacy table.
func onlyEmptyNat(before, after string) bool {
	empty := "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
	return strings.ReplaceAll(after, empty, "") == strings.ReplaceAll(before, empty, "")
}

func TestInterceptOutputObeysTheLogLevel(t *testing.T) {
	netns.RequireRoot(t)
	ns := netns.New(t)
	env := map[string]string{"MESHEXP_INTERCEPT_BACKEND": "iptables-nft", "MESHEXP_INTERCEPT_IPV6": "on"}
	for _, tc := range []struct {
		name       string
		args       []string
		wantStdout string // "" means nothing at all
		wantStderr string
	}{
		{"install under --log-level warn prints nothing", []string{"intercept", "install", "--log-level", "warn"}, "", ""},
		{"remove under --log-level warn prints nothing", []string{"intercept", "remove", "--log-level", "warn"}, "", ""},
		{"install under the default level reports through the logger, on stderr", []string{"intercept", "install"}, "", "interception installed"},
		{"remove under the default level reports through the logger, on stderr", []string{"intercept", "remove"}, "", "interception removed"},
		{"install --dry-run prints the input asked for whatever the level", []string{"intercept", "install", "--dry-run", "--log-level", "error"}, "*nat\n", ""},
		{"show prints the status asked for whatever the level", []string{"intercept", "show", "--log-level", "error"}, "not installed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := inNS(t, ns, tc.args, env)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if tc.wantStdout == "" && stdout != "" || !strings.Contains(stdout, tc.wantStdout) {
				t.Errorf("stdout = %q, want %q", stdout, tc.wantStdout)
			}
			if tc.wantStderr == "" && stderr != "" || !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr = %q, want %q", stderr, tc.wantStderr)
			}
		})
	}
}
