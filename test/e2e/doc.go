// Package e2e drives the meshexp binary end to end: `meshexp bootstrap` in a
// network namespace joined to a peer namespace by a veth, with the real SPIRE
// server and agent, real interception rules, the linkerd2-proxy stand-in
// (test/standin-proxy) and the test workload (test/workload).
//
// The tests need root and the SPIRE binaries (hack/install-spire.sh;
// MESHEXP_SPIRE_BIN_DIR). Without them they skip, unless
// MESHEXP_REQUIRE_SPIRE is set (CI), when they fail.
package e2e
