package cli

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/config"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's generated configuration table")

const (
	tableBegin = "<!-- BEGIN GENERATED: bootstrap settings (go test ./internal/cli -update-readme) -->\n"
	tableEnd   = "<!-- END GENERATED -->"
)

// TestReadmeConfigurationTableIsCurrent keeps the README's settings table
// equal to the registry that --help is made from.
func TestReadmeConfigurationTableIsCurrent(t *testing.T) {
	const path = "../../README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, tableBegin)
	end := strings.Index(readme, tableEnd)
	if start < 0 || end < start {
		t.Fatalf("README lacks the generated-table markers %q … %q", strings.TrimSpace(tableBegin), tableEnd)
	}
	want := config.MarkdownTable(config.ScopeBootstrap)
	got := readme[start+len(tableBegin) : end]
	if got == want {
		return
	}
	if *updateReadme {
		readme = readme[:start+len(tableBegin)] + want + readme[end:]
		if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README's configuration table is stale; run go test ./internal/cli -run Readme -update-readme")
}
