//go:build !linux

package supervise

import (
	"context"
	"log/slog"
)

// Reaper reaps orphaned processes; Linux only.
type Reaper struct{}

// StartReaper fails outside Linux.
func StartReaper(context.Context, *slog.Logger) (*Reaper, error) { return nil, errUnsupported }

// Stop does nothing outside Linux.
func (r *Reaper) Stop() {}

// Reaped is always 0 outside Linux.
func (r *Reaper) Reaped() int64 { return 0 }
