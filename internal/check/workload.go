package check

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/meshexp/meshexp/internal/kube"
)

// ExternalWorkload checks that the host's ExternalWorkload exists, says
// what this host is (IPs, ports, identity, server name) and that its Ready
// condition agrees with this host's readiness (proxyReady: the proxy's
// /ready, or meshexp's own, which adds the workload probes).
func ExternalWorkload(get func(context.Context) (*kube.ExternalWorkload, error), want kube.Workload, proxyReady func(context.Context) error) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		ew, err := get(ctx)
		if err != nil {
			return "", err
		}
		if ew.Spec == nil {
			return "", fmt.Errorf("ExternalWorkload %s/%s has no spec", want.Namespace, want.Name)
		}
		var diff []string
		if ew.Spec.MeshTLS.Identity != want.Identity {
			diff = append(diff, fmt.Sprintf("meshTLS.identity is %q, this host is %q", ew.Spec.MeshTLS.Identity, want.Identity))
		}
		if ew.Spec.MeshTLS.ServerName != want.ServerName {
			diff = append(diff, fmt.Sprintf("meshTLS.serverName is %q, this host is %q", ew.Spec.MeshTLS.ServerName, want.ServerName))
		}
		var ips, wantIPs []string
		for _, ip := range ew.Spec.WorkloadIPs {
			ips = append(ips, ip.IP)
		}
		for _, ip := range want.IPs {
			wantIPs = append(wantIPs, ip.Unmap().String())
		}
		slices.Sort(ips)
		slices.Sort(wantIPs)
		if !slices.Equal(ips, wantIPs) {
			diff = append(diff, fmt.Sprintf("workloadIPs are [%s], this host is [%s]", strings.Join(ips, " "), strings.Join(wantIPs, " ")))
		}
		for _, p := range want.Ports {
			found := false
			for _, q := range ew.Spec.Ports {
				if q.Port == p.Port && q.Name == p.Name {
					found = true
				}
			}
			if !found {
				diff = append(diff, fmt.Sprintf("port %s:%d is missing", p.Name, p.Port))
			}
		}
		if len(diff) > 0 {
			return "", fmt.Errorf("ExternalWorkload %s/%s does not match this host: %s", want.Namespace, want.Name, strings.Join(diff, "; "))
		}
		ready := "Unknown"
		if ew.Status != nil {
			if c := kube.ReadyCondition(ew.Status.Conditions); c != nil {
				ready = c.Status
			}
		}
		perr := proxyReady(ctx)
		proxy := "True"
		if perr != nil {
			proxy = "False"
		}
		detail := "Ready=" + ready + ", host ready=" + proxy
		if (ready == "True") != (perr == nil) {
			if perr != nil {
				return detail, fmt.Errorf("the ExternalWorkload says Ready=%s but this host is not ready: %v", ready, perr)
			}
			return detail, fmt.Errorf("the ExternalWorkload says Ready=%s but this host is ready", ready)
		}
		return detail, nil
	}
}
