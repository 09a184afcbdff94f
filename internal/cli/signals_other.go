//go:build !linux

package cli

import "os"

// platformSignals: none beyond the common ones elsewhere.
func platformSignals() []os.Signal { return nil }
