// Package spire gives the linkerd2-proxy its SPIFFE identity from a real
// SPIRE agent, in one of three modes:
//
//   - embedded (demo only, as the Linkerd mesh-expansion demo did): a
//     spire-server on this host whose UpstreamAuthority "disk" signs with the
//     trust anchor itself, or with an intermediate CA plus the bundle above it
//     so the root key need not be on the host; then a spire-agent joined to it
//     with a join token created through the server's admin API;
//   - external: only a spire-agent, joining a remote SPIRE server (join token
//     or x509pop); the workload's entry is registered on that server by its
//     operator;
//   - existing: an agent that already runs; only its Workload API socket.
//
// Start brings the mode up and returns only when an X.509 SVID for
// spiffe://<trust domain>/<workload name> has been fetched by a process
// running as the proxy's uid and verified against the trust anchor (chain and
// URI SAN). Every step is a poll of a real API with one deadline
// (Options.Timeout): the server's gRPC health on its admin socket, the
// agent's gRPC health on its Workload API socket, then the Workload API
// itself; no fixed sleeps. Failures SPIRE only logs (a used join token, a
// trust bundle that does not match the server) are read from the agents'
// JSON logs and end the wait at once with a message that names the setting
// to fix.
//
// Secrets: the join token is handed to the agent in a 0600 file
// (join_token_file), never on a command line, and is replaced by
// "[redacted]" in every SPIRE log line forwarded to the logger. Children get
// a minimal environment, so nothing from meshexp's own environment (say a
// MESHEXP_SPIRE_JOIN_TOKEN variable) reaches them.
//
// State: SPIRE's state under DataDir (server keys and datastore, the
// agent's SVID) is kept between runs, so a restart is warm: the server
// keeps its CA, the entry is created or found, and an agent with a valid
// kept SVID needs no join token. DataDir/meshexp-state.json records what
// the state was made for; when that changes it is stale and cleared, with
// a log line. Nothing meshexp did not create is deleted or chmod'ed: only
// missing socket directories are created (0755), and what is at a socket
// path must be nothing or a stale socket of meshexp's own agent
// (CheckHostPaths, for the validation pass).
//
// Processes are started through a Starter so that the bootstrap supervisor
// can own them; ExecStarter is the default (process groups, SIGTERM then
// SIGKILL, restart of the agent when it dies).
//
// The SVID check must run as the proxy's uid, because the registration entry
// selects only that uid (unix:uid:<ProxyUID>): the calling binary re-executes
// itself as that uid with FetcherArgs (see RunFetcher), so any binary that
// calls Start must route those arguments to RunFetcher (meshexp does through
// its hidden `identity fetch-svid` command; test binaries through
// RunFetcherIfRequested in TestMain).
package spire
