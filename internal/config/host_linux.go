//go:build linux

package config

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability numbers (linux/capability.h) meshexp needs.
const (
	capSetgid   = 6
	capSetuid   = 7
	capNetAdmin = 12
)

// effectiveCaps returns this process's effective capability set; a
// variable so tests can pretend to lack one.
var effectiveCaps = func() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading this process's capabilities: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("reading this process's capabilities: no CapEff line in /proc/self/status")
}

// host checks what the host (or container) must grant before anything
// starts: NET_ADMIN for the interception rules, SETUID/SETGID to run the
// proxy and the workload as their users. A container started without
// --cap-add=NET_ADMIN fails here with exit 2, naming the capability.
func (v *validator) host() {
	s, c := v.opts.Scope, v.c
	v.workloadRoot()
	intercept := s&ScopeIntercept != 0 && (s&ScopeRun == 0 || c.Intercept.Enabled)
	run := s&ScopeRun != 0
	if !intercept && !run {
		return
	}
	caps, err := effectiveCaps()
	if err != nil {
		v.hostDependent("intercept", "run meshexp on Linux with /proc mounted", "%v", err)
		return
	}
	if intercept && caps&(1<<capNetAdmin) == 0 {
		v.hostDependent("intercept",
			"in a container add --cap-add=NET_ADMIN to docker/podman run; on a host run meshexp as root; or set --intercept=false when traffic is redirected some other way",
			"meshexp lacks the NET_ADMIN capability, which installing the interception rules needs (effective capabilities %#x)", caps)
	}
	if run {
		for _, need := range []struct {
			bit  uint
			name string
		}{{capSetuid, "SETUID"}, {capSetgid, "SETGID"}} {
			if caps&(1<<need.bit) == 0 {
				v.hostDependent("proxy-uid",
					"do not drop "+need.name+" (docker/podman --cap-drop); meshexp needs it to start the proxy and the workload as their own users",
					"meshexp lacks the %s capability, which running the proxy and the workload as their users needs", need.name)
			}
		}
	}
}
