package spire

import (
	"sort"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/golden"
)

// goldenOptions are fixed (no temporary paths) so the rendered files are
// stable.
func goldenOptions() map[string]Options {
	base := Options{
		WorkloadName:    "vm-1",
		TrustAnchorPath: "/opt/spire/certs/ca.crt",
	}
	with := func(f func(*Options)) Options {
		o := base
		f(&o)
		return o
	}
	return map[string]Options{
		"embedded-root": with(func(o *Options) {
			o.Mode = ModeEmbedded
			o.UpstreamKeyPath = "/opt/spire/certs/ca.key"
		}),
		"embedded-intermediate": with(func(o *Options) {
			o.Mode = ModeEmbedded
			o.UpstreamCertPath = "/etc/meshexp/spire-ca.crt"
			o.UpstreamKeyPath = "/etc/meshexp/spire-ca.key"
		}),
		"external-join-token": with(func(o *Options) {
			o.Mode = ModeExternal
			o.ServerAddress = "spire.example.com"
			o.JoinToken = "not-in-any-file"
		}),
		"external-join-token-file": with(func(o *Options) {
			o.Mode = ModeExternal
			o.ServerAddress = "10.0.0.5"
			o.ServerPort = 18081
			o.TrustBundlePath = "/etc/meshexp/spire-bundle.pem"
			o.JoinTokenFile = "/run/secrets/spire-join-token"
		}),
		"external-x509pop": with(func(o *Options) {
			o.Mode = ModeExternal
			o.ServerAddress = "spire.example.com"
			o.X509PopCertPath = "/etc/meshexp/node.crt"
			o.X509PopKeyPath = "/etc/meshexp/node.key"
		}),
		"existing": with(func(o *Options) {
			o.Mode = ModeExisting
		}),
	}
}

func TestRenderedConfigsMatchTheGoldenFiles(t *testing.T) {
	for name, opts := range goldenOptions() {
		t.Run(name, func(t *testing.T) {
			files, err := RenderConfigs(opts)
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			paths := make([]string, 0, len(files))
			for p := range files {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			for _, p := range paths {
				got.WriteString("### " + p + "\n" + files[p] + "\n")
			}
			golden.Check(t, name+".golden", []byte(got.String()))
		})
	}
}

func TestRenderedConfigsNeverHoldTheJoinToken(t *testing.T) {
	opts := goldenOptions()["external-join-token"]
	files, err := RenderConfigs(opts)
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range files {
		if strings.Contains(content, opts.JoinToken) {
			t.Errorf("%s contains the join token", p)
		}
	}
}

func TestRenderedConfigsUseShortIntervalsAndAnSVIDTTLUnderSPIREsLimit(t *testing.T) {
	files, err := RenderConfigs(goldenOptions()["embedded-root"])
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, c := range files {
		all += c
	}
	for _, want := range []string{`cache_reload_interval = "1s"`, `sync_interval = "1s"`, `default_x509_svid_ttl = "24h"`, `ca_ttl = "168h"`, `log_format = "json"`} {
		if !strings.Contains(all, want) {
			t.Errorf("configs lack %s", want)
		}
	}
}
