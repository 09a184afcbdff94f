package cli

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/config"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's generated configuration table")

// generatedTables are the settings tables kept equal to the registry that
// --help is made from: the README's for bootstrap, internal/dns's for
// `meshexp dns`, docs/controller.md's for `meshexp controller`.
var generatedTables = []struct {
	path, begin string
	scope       config.Scope
}{
	{"../../README.md", "<!-- BEGIN GENERATED: bootstrap settings (go test ./internal/cli -update-readme) -->\n", config.ScopeBootstrap},
	{"../dns/README.md", "<!-- BEGIN GENERATED: dns settings (go test ./internal/cli -update-readme) -->\n", config.ScopeDNSCommand},
	{"../../docs/controller.md", "<!-- BEGIN GENERATED: controller settings (go test ./internal/cli -update-readme) -->\n", config.ScopeControllerCommand},
}

const tableEnd = "<!-- END GENERATED -->"

// TestReadmeConfigurationTableIsCurrent keeps the READMEs' settings tables
// equal to the registry.
func TestReadmeConfigurationTableIsCurrent(t *testing.T) {
	for _, g := range generatedTables {
		data, err := os.ReadFile(g.path)
		if err != nil {
			t.Fatal(err)
		}
		readme := string(data)
		start := strings.Index(readme, g.begin)
		end := start + strings.Index(readme[max(start, 0):], tableEnd)
		if start < 0 || end < start {
			t.Fatalf("%s lacks the generated-table markers %q … %q", g.path, strings.TrimSpace(g.begin), tableEnd)
		}
		want := config.MarkdownTable(g.scope)
		got := readme[start+len(g.begin) : end]
		if got == want {
			continue
		}
		if *updateReadme {
			readme = readme[:start+len(g.begin)] + want + readme[end:]
			if err := os.WriteFile(g.path, []byte(readme), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s's configuration table is stale; run go test ./internal/cli -run Readme -update-readme", g.path)
	}
}
