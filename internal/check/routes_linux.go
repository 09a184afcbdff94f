//go:build linux

package check

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/meshexp/meshexp/internal/route"
)

// Routes checks that the kernel sends each node's pod CIDR via that node:
// the route lookup for the CIDR's first address either has the node as
// its gateway, or leaves on the same link as the node itself (a flat
// network). list returns the routes wanted (route.FromCluster).
func Routes(list func(context.Context) ([]route.Route, error)) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		want, err := list(ctx)
		if err != nil {
			return "", err
		}
		if len(want) == 0 {
			return "", Skipf("no node has a pod CIDR")
		}
		var bad []string
		for _, r := range want {
			if why := routedVia(r); why != "" {
				bad = append(bad, why)
			}
		}
		if len(bad) > 0 {
			return "", fmt.Errorf("%s", strings.Join(bad, "; "))
		}
		return fmt.Sprintf("%d pod CIDRs routed via their nodes", len(want)), nil
	}
}

func routedVia(r route.Route) string {
	dst := net.IP(r.Dst.Addr().AsSlice())
	got, err := netlink.RouteGet(dst)
	if err != nil || len(got) == 0 {
		return fmt.Sprintf("no route to %s: %v", r.Dst, err)
	}
	via := net.IP(r.Via.AsSlice())
	if got[0].Gw != nil {
		if got[0].Gw.Equal(via) {
			return ""
		}
		return fmt.Sprintf("%s goes via %s, not the node %s", r.Dst, got[0].Gw, r.Via)
	}
	node, err := netlink.RouteGet(via)
	if err == nil && len(node) > 0 && node[0].Gw == nil && node[0].LinkIndex == got[0].LinkIndex {
		return ""
	}
	return fmt.Sprintf("%s is not routed via the node %s", r.Dst, r.Via)
}
