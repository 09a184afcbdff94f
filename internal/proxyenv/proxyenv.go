// Package proxyenv renders linkerd2-proxy's environment from meshexp's
// configuration: the contract between meshexp and the proxy.
//
// Variable names and meanings are the proxy's (linkerd2-proxy
// linkerd/app/src/env.rs); the values default to what the mesh-expansion
// demo's run-proxy script sets (docs/DESIGN.md).
package proxyenv

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/meshexp/meshexp/internal/config"
)

// Var is one environment variable.
type Var struct {
	Name  string
	Value string
}

// Render returns the proxy's environment in a fixed order. trustAnchorsPEM
// is the content of the trust anchor file (ca.crt). dualStack makes the
// proxy listen on IPv6 as well, as Linkerd's chart does when IPv6 is enabled
// (charts/partials/templates/_proxy.tpl): it must be true whenever IPv6
// traffic is redirected to the proxy, or those connections are refused.
func Render(c *config.Config, trustAnchorsPEM []byte, dualStack bool) ([]Var, error) {
	policyWorkload, err := json.Marshal(struct {
		NS               string `json:"ns"`
		ExternalWorkload string `json:"external_workload"`
	}{c.WorkloadNamespace, c.WorkloadName})
	if err != nil {
		return nil, fmt.Errorf("proxyenv: encoding policy workload: %w", err)
	}
	// The destination context is opaque to the proxy and read by the
	// destination controller (controller/api/destination/server.go
	// contextToken), which looks for ns, nodeName and external_workload.
	dstContext, err := json.Marshal(struct {
		NS               string `json:"ns"`
		NodeName         string `json:"nodeName"`
		ExternalWorkload string `json:"external_workload"`
	}{c.WorkloadNamespace, c.NodeName, c.WorkloadName})
	if err != nil {
		return nil, fmt.Errorf("proxyenv: encoding destination context: %w", err)
	}
	if len(strings.TrimSpace(string(trustAnchorsPEM))) == 0 {
		return nil, fmt.Errorf("proxyenv: trust anchors are empty; the proxy refuses to start without them")
	}
	p := c.Proxy
	nets := joinPrefixes(p.ClusterNetworks)
	any, outbound := "0.0.0.0", fmt.Sprintf("127.0.0.1:%d", p.OutboundPort)
	if dualStack {
		any = "[::]"
	}
	vars := []Var{
		{"LINKERD2_PROXY_LOG", p.LogLevel},
		{"LINKERD2_PROXY_LOG_FORMAT", p.LogFormat},
		{"LINKERD2_PROXY_DESTINATION_SVC_ADDR", c.DestinationAddr},
		{"LINKERD2_PROXY_DESTINATION_SVC_NAME", c.DestinationIdentity},
		{"LINKERD2_PROXY_POLICY_SVC_ADDR", c.PolicyAddr},
		{"LINKERD2_PROXY_POLICY_SVC_NAME", c.PolicyIdentity},
		{"LINKERD2_PROXY_POLICY_WORKLOAD", string(policyWorkload)},
		{"LINKERD2_PROXY_DESTINATION_CONTEXT", string(dstContext)},
		{"LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS", nets},
		{"LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", nets},
		{"LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES", "svc." + c.ClusterDomain + "."},
		{"LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", p.InboundDefaultPolicy},
		{"LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT", "3s"},
		{"LINKERD2_PROXY_CONTROL_STREAM_IDLE_TIMEOUT", "5m"},
		{"LINKERD2_PROXY_CONTROL_STREAM_LIFETIME", "1h"},
		{"LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT", "100ms"},
		{"LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT", "1000ms"},
		{"LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT", "5s"},
		{"LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT", "90s"},
		{"LINKERD2_PROXY_CONTROL_LISTEN_ADDR", fmt.Sprintf("%s:%d", any, p.ControlPort)},
		{"LINKERD2_PROXY_ADMIN_LISTEN_ADDR", fmt.Sprintf("%s:%d", any, p.AdminPort)},
		{"LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", outbound},
		{"LINKERD2_PROXY_INBOUND_LISTEN_ADDR", fmt.Sprintf("%s:%d", any, p.InboundPort)},
		{"LINKERD2_PROXY_INBOUND_PORTS", ""},
		{"LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE", "10000ms"},
		{"LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE", "10000ms"},
		{"LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION", joinPorts(p.OpaquePorts)},
		{"LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", string(trustAnchorsPEM)},
		// The 2.15-era name; newer proxies read it as an alias of
		// LINKERD2_PROXY_IDENTITY_SPIRE_WORKLOAD_API_ADDRESS, so one variable
		// serves both.
		{"LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET", "unix://" + c.SPIRE.SocketPath},
		{"LINKERD2_PROXY_IDENTITY_SERVER_ID", c.SPIFFEID()},
		{"LINKERD2_PROXY_IDENTITY_SERVER_NAME", c.ServerName()},
	}
	if dualStack {
		// Proxies that know the plural read it instead of the singular.
		vars = append(vars, Var{"LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS", fmt.Sprintf("%s,[::1]:%d", outbound, p.OutboundPort)})
	}
	return vars, nil
}

// Environ turns vars into "NAME=value" strings for exec.Cmd.Env.
func Environ(vars []Var) []string {
	out := make([]string, len(vars))
	for i, v := range vars {
		out[i] = v.Name + "=" + v.Value
	}
	return out
}

// Redacted returns vars with long or sensitive values shortened for
// printing: the trust anchor PEM becomes a one-line summary.
func Redacted(vars []Var) []Var {
	out := make([]Var, len(vars))
	for i, v := range vars {
		if v.Name == "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS" {
			v.Value = fmt.Sprintf("<%d PEM certificate(s), %d bytes>", strings.Count(v.Value, "-----BEGIN CERTIFICATE-----"), len(v.Value))
		}
		out[i] = v
	}
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func joinPorts(rs []config.PortRange) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}
