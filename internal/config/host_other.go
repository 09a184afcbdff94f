//go:build !linux

package config

// host checks nothing beyond the workload's user off Linux, where meshexp
// cannot run its proxy anyway; the plan (--dry-run) still works there.
func (v *validator) host() { v.workloadRoot() }
