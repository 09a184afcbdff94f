//go:build linux

package config

import (
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/trust/trusttest"
)

func TestHostChecks(t *testing.T) {
	all := uint64(1<<capNetAdmin | 1<<capSetuid | 1<<capSetgid)
	tests := []struct {
		name    string
		caps    uint64
		args    []string
		dryRun  bool
		errors  []string // each must appear in one blocking problem
		warning string   // must appear in a warning
	}{
		{name: "a process with NET_ADMIN, SETUID and SETGID passes", caps: all},
		{name: "without NET_ADMIN bootstrap is refused, naming the capability and --cap-add", caps: all &^ (1 << capNetAdmin),
			errors: []string{"lacks the NET_ADMIN capability", "--cap-add=NET_ADMIN"}},
		{name: "without NET_ADMIN but with --intercept=false bootstrap passes", caps: all &^ (1 << capNetAdmin), args: []string{"--intercept=false"}},
		{name: "without NET_ADMIN a dry run only warns", caps: all &^ (1 << capNetAdmin), dryRun: true, warning: "NET_ADMIN"},
		{name: "without SETUID bootstrap is refused, naming it", caps: all &^ (1 << capSetuid), errors: []string{"lacks the SETUID capability"}},
		{name: "a root workload is refused without --workload-allow-root", caps: all, args: []string{"--workload-user", "0:0"},
			errors: []string{"--workload-user", "--workload-allow-root", "remove the interception rules"}},
		{name: "a root workload with --workload-allow-root warns with its consequence", caps: all, args: []string{"--workload-user", "0:0", "--workload-allow-root"},
			warning: "read ca.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := effectiveCaps
			effectiveCaps = func() (uint64, error) { return tt.caps, nil }
			t.Cleanup(func() { effectiveCaps = saved })
			dir, _ := trusttest.AnchorDir(t)
			env := map[string]string{"WORKLOAD_NAME": "web", "WORKLOAD_NAMESPACE": "ns", "NODE_NAME": "vm-1", "MESHEXP_TRUST_ANCHOR_DIR": dir}
			c, probs := LoadArgs(ScopeBootstrap, tt.args, env)
			if err := probs.Err(); err != nil {
				t.Fatal(err)
			}
			probs = c.Validate(ValidateOptions{Scope: ScopeBootstrap, DryRun: tt.dryRun})
			var errs, warns []string
			for _, p := range probs {
				if p.Warning {
					warns = append(warns, p.String()+" ("+p.Fix+")")
				} else if strings.Contains(p.String()+p.Fix, "capability") || strings.Contains(p.Input, "workload-user") || strings.Contains(p.Input, "workload-allow-root") {
					errs = append(errs, p.String()+" ("+p.Fix+")")
				}
			}
			joined := strings.Join(errs, "\n")
			if len(tt.errors) == 0 && joined != "" {
				t.Fatalf("unexpected problems:\n%s", joined)
			}
			for _, want := range tt.errors {
				if !strings.Contains(joined, want) {
					t.Errorf("problems lack %q:\n%s", want, joined)
				}
			}
			if tt.warning != "" && !strings.Contains(strings.Join(warns, "\n"), tt.warning) {
				t.Errorf("warnings lack %q:\n%s", tt.warning, strings.Join(warns, "\n"))
			}
		})
	}
}
