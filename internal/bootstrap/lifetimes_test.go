package bootstrap

import (
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/config"
)

func TestLifetimeSettingsAreCheckedAgainstSPIREsRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    string // substring of the one problem; "" for none
		warning bool
	}{
		{"the defaults pass", nil, "", false},
		{"a one-minute SVID with a six-minute CA passes", map[string]string{"MESHEXP_SPIRE_SVID_TTL": "1m", "MESHEXP_SPIRE_CA_TTL": "6m"}, "", false},
		{"a CA too short for the SVID names the CA setting", map[string]string{"MESHEXP_SPIRE_SVID_TTL": "1h", "MESHEXP_SPIRE_CA_TTL": "2h"}, "MESHEXP_SPIRE_CA_TTL", false},
		{"an SVID under 30s names the SVID setting", map[string]string{"MESHEXP_SPIRE_SVID_TTL": "5s"}, "MESHEXP_SPIRE_SVID_TTL", false},
		{"a lifetime in external mode is a warning", map[string]string{"MESHEXP_SPIRE_MODE": "external", "MESHEXP_SPIRE_SVID_TTL": "1h"}, "has no effect in external mode", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, loadProbs := config.LoadArgs(config.ScopeSPIRE, nil, tc.env)
			if errs := loadProbs.Errors(); len(errs) == 1 && tc.want != "" && !tc.warning && strings.Contains(errs[0].String(), tc.want) {
				return // the settings' own bounds refuse it first, naming the setting
			}
			if c == nil || len(loadProbs.Errors()) > 0 {
				t.Fatal(loadProbs)
			}
			probs := validateLifetimes(c)
			if tc.want == "" {
				if len(probs) != 0 {
					t.Fatalf("problems: %v", probs)
				}
				return
			}
			if len(probs) != 1 || !strings.Contains(probs[0].String(), tc.want) || probs[0].Warning != tc.warning {
				t.Fatalf("problems = %v, want one (warning %v) mentioning %q", probs, tc.warning, tc.want)
			}
		})
	}
}
