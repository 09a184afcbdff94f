package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/config"
)

// TestControllerSettingsComeFromFlagsEnvironmentAndFile: the controller's
// short flag names are its file keys; its variables are MESHEXP_CONTROLLER_*.
func TestControllerSettingsComeFromFlagsEnvironmentAndFile(t *testing.T) {
	file := writeYAML(t, "namespace: mesh-ctl\nlisten: 0.0.0.0:9443\nretry-period: 1s\n")
	c, probs := config.LoadArgs(config.ScopeControllerCommand, []string{"--config", file, "--lease-duration", "20s"}, map[string]string{
		"MESHEXP_CONTROLLER_ADVERTISE_ADDR": "10.0.0.5:9443", "MESHEXP_CONTROLLER_RETRY_PERIOD": "3s", "MESHEXP_TRUST_DOMAIN": "example.org",
	})
	if err := probs.Err(); err != nil {
		t.Fatal(err)
	}
	o := c.Controller
	if o.Namespace != "mesh-ctl" || o.Listen != "0.0.0.0:9443" || o.AdvertiseAddr != "10.0.0.5:9443" || o.TLSDir != "/var/run/meshexp/tls" ||
		o.LeaseDuration != 20*time.Second || o.RenewDeadline != 10*time.Second || o.RetryPeriod != 3*time.Second || c.TrustDomain != "example.org" {
		t.Errorf("got %+v, trust domain %s", o, c.TrustDomain)
	}
	if got := c.Origin("controller-namespace"); !strings.Contains(got, "--namespace (key namespace in") {
		t.Errorf("origin %q", got)
	}
	if p := c.Validate(config.ValidateOptions{Scope: config.ScopeControllerCommand}); len(p) != 0 {
		t.Errorf("valid settings refused: %v", p)
	}
}

// TestTheControllersFlagNamesAreNotBootstrapKeys: `namespace:` in
// bootstrap's file is no setting of bootstrap's.
func TestTheControllersFlagNamesAreNotBootstrapKeys(t *testing.T) {
	_, probs := config.LoadArgs(config.ScopeBootstrap, []string{"--config", writeYAML(t, "namespace: web\n")}, nil)
	if err := probs.Err(); err == nil || !strings.Contains(err.Error(), `unknown key "namespace"`) {
		t.Errorf("err %v", err)
	}
}

// TestAnUnknownKeyPointsAtTheCommandsOwnHelp: the hint names the command
// whose file it is.
func TestAnUnknownKeyPointsAtTheCommandsOwnHelp(t *testing.T) {
	for scope, want := range map[config.Scope]string{config.ScopeControllerCommand: "meshexp controller --help", config.ScopeBootstrap: "meshexp bootstrap --help"} {
		_, probs := config.LoadArgs(scope, []string{"--config", writeYAML(t, "no-such-setting: 1\n")}, nil)
		if err := probs.Err(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("scope %v: err %v, want a hint naming %q", scope, err, want)
		}
	}
}
