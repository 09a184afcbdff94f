package config

// fillDerived computes the defaults that depend on other settings: the
// control plane's addresses and identities follow its namespace and the
// cluster domain, as Linkerd's chart derives them.
func (c *Config) fillDerived() {
	ns, domain := c.ControlPlaneNamespace, c.ClusterDomain
	if c.DestinationAddr == "" {
		c.DestinationAddr = "linkerd-dst-headless." + ns + ".svc." + domain + ".:8086"
	}
	if c.PolicyAddr == "" {
		c.PolicyAddr = "linkerd-policy." + ns + ".svc." + domain + ".:8090"
	}
	if c.DestinationIdentity == "" {
		c.DestinationIdentity = "linkerd-destination." + ns + ".serviceaccount.identity." + ns + "." + domain
	}
	if c.PolicyIdentity == "" {
		// The policy controller runs in the destination pod, under the
		// destination's service account.
		c.PolicyIdentity = c.DestinationIdentity
	}
	if c.SPIRE.TrustBundle == "" && c.TrustAnchorDir != "" {
		c.SPIRE.TrustBundle = c.TrustAnchorPath()
	}
}
