//go:build !linux

package bootstrap

import (
	"context"
	"errors"
	"log/slog"

	"github.com/meshexp/meshexp/internal/check"
	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/kube"
)

// Checks has one failing check off Linux: meshexp runs on Linux only.
func Checks(*config.Config, *kube.Workload, bool, *slog.Logger) []check.Check {
	return []check.Check{{Category: check.Host, Description: "the host runs Linux", Hint: "run meshexp on Linux",
		Run: func(context.Context) (string, error) { return "", errors.New("meshexp runs on Linux only") }}}
}
