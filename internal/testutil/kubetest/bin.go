package kubetest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Versions built by hack/install-kube.sh; the cache directory is keyed by
// them, so bumping them here and there together picks the new build.
const (
	KubeVersion = "v1.34.4"
	EtcdVersion = "v3.6.4"
)

// Environment variables the harness reads.
const (
	EnvBinDir  = "MESHEXP_KUBE_BIN_DIR" // directory holding kube-apiserver and etcd
	EnvRequire = "MESHEXP_REQUIRE_KUBE" // set: missing binaries fail instead of skip
	EnvCRD     = "MESHEXP_LINKERD_CRD"  // path of the ExternalWorkload CRD, overriding the default
)

// errAbsent marks binaries that are simply not installed (skip), as opposed
// to a broken setup (fail).
var errAbsent = errors.New("kube binaries not installed")

// BinDir returns the directory holding kube-apiserver and etcd.
func BinDir() (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if err := checkBins(dir); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinDir, dir, err)
		}
		return dir, nil
	}
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	if err := checkBins(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w: %v; run hack/install-kube.sh (builds them in about 5 min) or set %s", errAbsent, err, EnvBinDir)
		}
		return "", err
	}
	return dir, nil
}

// cacheDir mirrors hack/install-kube.sh's choice of directory.
func cacheDir() (string, error) {
	root := os.Getenv("MESHEXP_CACHE_DIR")
	if root == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("find the kube binaries: no home directory (%w); set %s", err, EnvBinDir)
			}
			base = filepath.Join(home, ".cache")
		}
		root = filepath.Join(base, "meshexp")
	}
	return filepath.Join(root, "kube-"+KubeVersion+"-etcd-"+EtcdVersion), nil
}

func checkBins(dir string) error {
	for _, name := range []string{"kube-apiserver", "etcd"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", p)
		}
	}
	return nil
}

// CRDPath returns the path of Linkerd's ExternalWorkload CRD: $MESHEXP_LINKERD_CRD,
// else the copy kept in this package's testdata (source and license in
// testdata/README.md).
func CRDPath() (string, error) {
	if p := os.Getenv(EnvCRD); p != "" {
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "internal", "testutil", "kubetest", "testdata", "linkerd-externalworkload-crd.yaml")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("ExternalWorkload CRD: %w; set %s to its path", err, EnvCRD)
	}
	return p, nil
}

// repoRoot walks up from the working directory (a test runs in its
// package's directory) to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find the repository root: no go.mod above %s", dir)
		}
	}
}
