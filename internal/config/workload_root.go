package config

// workloadRoot refuses a root workload unless --workload-allow-root says
// so, and then warns (logged at start) with what it costs.
func (v *validator) workloadRoot() {
	c := v.c
	if v.opts.Scope&ScopeRun == 0 || c.WorkloadUser.Spec == "" || c.WorkloadUser.UID != 0 {
		return
	}
	if !c.WorkloadAllowRoot {
		v.add("workload-user",
			"run the workload as a non-root user (a workload that binds a port below 1024 can get CAP_NET_BIND_SERVICE through file capabilities); or accept the risk with --workload-allow-root (MESHEXP_WORKLOAD_ALLOW_ROOT=true)",
			"the workload would run as root, which can remove the interception rules and, with the embedded SPIRE server, read the trust anchor's key")
		return
	}
	v.warn("workload-allow-root", "run the workload as a non-root user when you can",
		"the workload runs as root (allowed by --workload-allow-root): it can remove the interception rules and so send traffic around the proxy, and in embedded SPIRE mode it can read ca.key, the mesh's signing key")
}
