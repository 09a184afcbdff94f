// Package image tests meshexp's container image, its example workload and
// its packages with a real Docker engine: the demo's `podman run` line run
// with docker and its flags unchanged, the .deb installed, upgraded,
// removed and purged, and the systemd unit under a real systemd.
//
// The images are built once per test binary (TestMain) from a local Debian
// base (hack/image-base.sh, cached by version) with the linkerd2-proxy
// stand-in as the proxy. Without a Docker engine the tests skip, saying so;
// with MESHEXP_REQUIRE_DOCKER set (CI) they fail instead.
package image
