// Package e2e drives the meshexp binary end to end: `meshexp bootstrap` in a
// network namespace joined to a peer namespace by a veth, with the real SPIRE
// server and agent, real interception rules, the linkerd2-proxy stand-in
// (test/standin-proxy) and the test workload (test/workload).
//
// The tests need root and the SPIRE binaries (hack/install-spire.sh;
// MESHEXP_SPIRE_BIN_DIR). Without them they skip, unless
// MESHEXP_REQUIRE_SPIRE is set (CI), when they fail.
//
// The tests run one after another, except the few that mostly wait for
// certificates to age (the soaks, the trust anchor's expiry): those run in
// parallel with each other once the rest are done, all at once (TestMain
// raises -parallel's default, GOMAXPROCS, as they mostly sleep; the external
// soak's expiry case has a host of its own so that it waits beside the
// soak, not after it). Each host has its own
// namespaces, SPIRE and API-server namespace, and a test finds (and kills)
// only processes inside its own network namespace (host.procs): the
// machine, other hosts and other test packages run the same binaries.
package e2e
