//go:build linux

package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Manager adds, lists and removes meshexp's routes in one network
// namespace's main table.
type Manager struct {
	h      *netlink.Handle
	logger *slog.Logger
}

// NewManager works in the calling process's network namespace.
func NewManager(logger *slog.Logger) (*Manager, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	return &Manager{h: h, logger: logger}, nil
}

// NewManagerAt works in the network namespace bound at path (for example
// /run/netns/NAME) without moving any thread into it.
func NewManagerAt(path string, logger *slog.Logger) (*Manager, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink in %s: %w", path, err)
	}
	return &Manager{h: h, logger: logger}, nil
}

// Close releases the netlink socket.
func (m *Manager) Close() { m.h.Close() }

// Add makes sure every route exists, marked as meshexp's. It is idempotent:
// a route already there is left as is, one of meshexp's with another
// gateway is replaced. Everything is checked before anything changes: a
// destination already routed by someone else, or a gateway that is not on
// a directly connected network, is an error and nothing is written. If the
// kernel refuses a route midway, the routes added by this call are removed.
func (m *Manager) Add(ctx context.Context, routes []Route) error {
	routes, err := Dedup(routes)
	if err != nil {
		return err
	}
	var todo []change
	for _, r := range routes {
		existing, err := m.routesTo(r.Dst)
		if err != nil {
			return err
		}
		var mine *netlink.Route
		for i := range existing {
			e := existing[i]
			if int(e.Protocol) != Protocol {
				return fmt.Errorf("route %s: %s is already routed by someone else (%s, protocol %s); meshexp leaves it alone: remove it or leave %s out", r, r.Dst, describe(e), e.Protocol, r.Dst)
			}
			mine = &e
		}
		if mine != nil && gwOf(*mine) == r.Via {
			m.logger.Debug("route already present", "route", r.String())
			continue
		}
		if err := m.checkGateway(r); err != nil {
			return err
		}
		todo = append(todo, change{r: r, replace: mine})
	}
	var done []change
	for _, c := range todo {
		if err := ctx.Err(); err != nil {
			m.rollback(done)
			return err
		}
		if err := m.h.RouteReplace(m.kernelRoute(c.r)); err != nil {
			m.rollback(done)
			return fmt.Errorf("add route %s (from %s): %w", c.r, c.r.From, err)
		}
		m.logger.Info("added route", "dst", c.r.Dst.String(), "via", c.r.Via.String(), "from", c.r.From)
		done = append(done, c)
	}
	return nil
}

// change is one route Add writes, with meshexp's previous route to the
// same destination to restore on rollback.
type change struct {
	r       Route
	replace *netlink.Route
}

func (m *Manager) rollback(done []change) {
	for i := len(done) - 1; i >= 0; i-- {
		c := done[i]
		var err error
		if c.replace != nil {
			err = m.h.RouteReplace(c.replace)
		} else {
			err = m.h.RouteDel(m.kernelRoute(c.r))
		}
		if err != nil {
			m.logger.Error("could not undo route after a failure; remove it with `meshexp route remove`", "route", c.r.String(), "err", err)
		}
	}
}

// List returns meshexp's routes, sorted by destination.
func (m *Manager) List(ctx context.Context) ([]Route, error) {
	rs, err := m.h.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{Protocol: netlink.RouteProtocol(Protocol), Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []Route
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		p, ok := prefixOf(r.Dst)
		if !ok {
			continue
		}
		out = append(out, Route{Dst: p, Via: gwOf(r), From: "kernel"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dst.String() < out[j].Dst.String() })
	return out, nil
}

// Remove deletes meshexp's routes to dsts, or all of meshexp's routes when
// dsts is empty, and returns what it deleted. A destination that has no
// meshexp route is skipped, even when someone else routes it.
func (m *Manager) Remove(ctx context.Context, dsts []netip.Prefix) ([]Route, error) {
	mine, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	want := map[netip.Prefix]bool{}
	for _, d := range dsts {
		want[d.Masked()] = true
	}
	var removed []Route
	var errs []error
	for _, r := range mine {
		if len(dsts) > 0 && !want[r.Dst] {
			continue
		}
		if err := m.h.RouteDel(m.kernelRoute(r)); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", r, err))
			continue
		}
		m.logger.Info("removed route", "dst", r.Dst.String(), "via", r.Via.String())
		removed = append(removed, r)
	}
	return removed, errors.Join(errs...)
}

// Prune removes meshexp's routes whose destination is not in keep (a node
// left the cluster).
func (m *Manager) Prune(ctx context.Context, keep []Route) ([]Route, error) {
	mine, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	k := map[netip.Prefix]bool{}
	for _, r := range keep {
		k[r.Dst] = true
	}
	var stale []netip.Prefix
	for _, r := range mine {
		if !k[r.Dst] {
			stale = append(stale, r.Dst)
		}
	}
	if len(stale) == 0 {
		return nil, nil
	}
	return m.Remove(ctx, stale)
}

func (m *Manager) kernelRoute(r Route) *netlink.Route {
	dst := &net.IPNet{IP: net.IP(r.Dst.Addr().AsSlice()), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())}
	family := netlink.FAMILY_V4
	if r.Dst.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	return &netlink.Route{
		Dst:      dst,
		Gw:       net.IP(r.Via.AsSlice()),
		Protocol: netlink.RouteProtocol(Protocol),
		Table:    unix.RT_TABLE_MAIN,
		Family:   family,
	}
}

// routesTo returns the main table's routes whose destination is exactly dst.
func (m *Manager) routesTo(dst netip.Prefix) ([]netlink.Route, error) {
	family := netlink.FAMILY_V4
	if dst.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	ipnet := &net.IPNet{IP: net.IP(dst.Addr().AsSlice()), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}
	rs, err := m.h.RouteListFiltered(family, &netlink.Route{Dst: ipnet, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("look up existing routes to %s: %w", dst, err)
	}
	return rs, nil
}

// checkGateway makes sure the gateway is on a directly connected network:
// the kernel would refuse it anyway ("Nexthop has invalid gateway"), but
// this names the fix.
func (m *Manager) checkGateway(r Route) error {
	got, err := m.h.RouteGet(net.IP(r.Via.AsSlice()))
	if err != nil {
		return fmt.Errorf("route %s (from %s): gateway %s is unreachable from this host: %w", r, r.From, r.Via, err)
	}
	for _, g := range got {
		if g.Gw != nil {
			return fmt.Errorf("route %s (from %s): gateway %s is not on a directly connected network (it is reached via %s); the node's InternalIP must be on one of this host's links", r, r.From, r.Via, g.Gw)
		}
		if g.Type == unix.RTN_LOCAL {
			return fmt.Errorf("route %s (from %s): gateway %s is an address of this host", r, r.From, r.Via)
		}
	}
	return nil
}

func gwOf(r netlink.Route) netip.Addr {
	a, _ := netip.AddrFromSlice(r.Gw)
	return a.Unmap()
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	if len(n.IP) == net.IPv4len || a.Is4In6() {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, ones), true
}

func describe(r netlink.Route) string {
	if r.Gw != nil {
		return "via " + r.Gw.String()
	}
	return fmt.Sprintf("dev index %d", r.LinkIndex)
}
