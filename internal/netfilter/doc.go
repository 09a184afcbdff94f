// Package netfilter intercepts a host's TCP traffic for linkerd2-proxy, the
// way Linkerd's proxy-init does inside a pod, and removes the interception
// again.
//
// Rules are data: Plan turns Options into a Ruleset (pure, golden-tested),
// InstallInput/RemoveInput render it as iptables-restore input, and a
// Runner applies it with one `iptables-restore --noflush` transaction per
// address family, with the iptables-legacy or iptables-nft backend (auto:
// whichever the host already uses, see Detect).
//
// In the nat table, chain PROXY_INIT_REDIRECT (jumped to last from
// PREROUTING) sends inbound TCP addressed to this host to the proxy's
// inbound port except the proxy's own ports and the skipped ones. Forwarded
// connections — a container's, a VM's, one routed through the host — are
// not addressed to it (addrtype LOCAL) and stay alone; so do connections
// to a port another tool publishes with DNAT in PREROUTING (Docker), as
// the jump comes after that tool's and the first NAT rule to match wins.
// Chain PROXY_INIT_OUTPUT (jumped to first from OUTPUT, which only sees
// this host's own connections) sends outbound TCP to the proxy's outbound
// port except:
//   - the proxy's uid (never root: the demo exempted uid 0, so every root
//     process escaped the mesh);
//   - packets carrying the control mark, which meshexp sets with SO_MARK on
//     its own connections (ControlFunc, ControlDialer) — the Kubernetes
//     API, gRPC, DNS upstreams. A mark rather than a uid or port, because
//     meshexp runs as root like the workload may, and its destinations'
//     ports (443, 6443) are ones the workload uses too;
//   - loopback, skipped ports and subnets, and exempt destinations (the
//     SPIRE server, for the agent, a separate binary that cannot carry the
//     mark).
//
// Installing is idempotent and atomic: each transaction re-declares both
// chains (emptying them), deletes every meshexp rule elsewhere (stale jumps
// from a crash) and inserts exactly one jump, so any number of installs, or
// an install after a crash, leaves exactly one copy; a killed install
// commits all or nothing. Every rule carries the comment
// "proxy-init/<what>/meshexp" — proxy-init's form, deterministic — which is
// how Remove finds exactly meshexp's rules and leaves everyone else's.
// With iptables-nft, an install also records (created.go) the nat table
// and base chains it brought into existence, and Remove deletes them again
// when no other tool's rule is in them, so the ruleset reads as found.
package netfilter
