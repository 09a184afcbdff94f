package config

import (
	"os"
	"path/filepath"
	"strings"
)

// splitKubeconfig reads KUBECONFIG as kubectl does: a list of files joined
// by ':'. meshexp uses the first file of the list that exists — what
// kubectl's merge gives whenever that file holds the context, cluster and
// user (kubectl takes each from the first file that sets it); the files
// it leaves out are named in a warning. --kubeconfig and
// MESHEXP_KUBECONFIG name one file. When the command would not use it
// (bootstrap without --register), a list with no file is only a warning.
func (c *Config) splitKubeconfig(needed bool) Problems {
	o, ok := c.origins["kubeconfig"]
	if !ok || o.kind != fromEnv || o.name != "KUBECONFIG" || !strings.ContainsRune(o.value, filepath.ListSeparator) {
		return nil
	}
	var existing, missing []string
	for _, p := range filepath.SplitList(o.value) {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			existing = append(existing, p)
		} else {
			missing = append(missing, p)
		}
	}
	if len(existing) == 0 {
		return Problems{{Setting: "kubeconfig", Input: "KUBECONFIG", Warning: !needed,
			Message: "none of its files exists: " + strings.Join(missing, ", "),
			Fix:     "point KUBECONFIG (or --kubeconfig) at an existing kubeconfig file"}}
	}
	c.Register.Kubeconfig = existing[0]
	if len(existing) > 1 {
		return Problems{{Setting: "kubeconfig", Input: "KUBECONFIG", Warning: true,
			Message: "meshexp reads only the first existing file, " + existing[0] + "; not " + strings.Join(existing[1:], ", "),
			Fix:     "merge them (kubectl config view --flatten > FILE) and give that file with --kubeconfig"}}
	}
	return nil
}
