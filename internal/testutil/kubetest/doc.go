// Package kubetest runs a real kube-apiserver and etcd on loopback for the
// tests of one package, with Linkerd's ExternalWorkload CRD applied.
//
// Typical use:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) } // stops the server after the tests
//
//	func TestSomething(t *testing.T) {
//		srv := kubetest.Get(t) // started on first use, shared by the package
//		admin := srv.AdminConfig()
//		ns := srv.CreateNamespace(t, "reg")
//		host := srv.TokenConfig(token) // a least-privilege client
//	}
//
// The binaries come from MESHEXP_KUBE_BIN_DIR (CI sets it to the output of
// hack/install-kube.sh), else from the cache directory that script fills
// (${MESHEXP_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/meshexp}/kube-v1.34.4-etcd-v3.6.4).
// Tests never build them: the build takes minutes. When they are absent the
// tests that need them are skipped with a message, unless
// MESHEXP_REQUIRE_KUBE is set (CI), in which case they fail.
//
// Both processes live in a temporary directory (etcd data with fsync off,
// certificates, keys, logs) removed at the end, listen on loopback ports
// picked free at start, and are stopped by PID. They are started with
// Pdeathsig so that a test binary killed by a timeout takes them with it.
//
// No controller-manager runs: there is no garbage collection, no
// EndpointSlices, no default ServiceAccount, and deleted namespaces stay
// Terminating (see docs/kube-apiserver.md).
package kubetest
