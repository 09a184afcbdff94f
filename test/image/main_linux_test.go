//go:build linux

package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// env is what TestMain prepared: the images every test uses.
var env struct {
	skip    string // why the suite skips, when it does
	err     error  // why preparing failed
	root    string // repository root
	prefix  string // unique name prefix of this test binary's containers
	base    string // the local Debian base
	image   string // meshexp's image, stand-in proxy (tests only)
	example string // the seed's example workload image FROM it
	work    string // scratch directory
	once    sync.Once
}

var seq atomic.Int64

func TestMain(m *testing.M) {
	code := func() int {
		defer cleanupAll()
		return m.Run()
	}()
	os.Exit(code)
}

// prepare builds the images the first time a test needs them.
func prepare(t testing.TB) {
	t.Helper()
	env.once.Do(func() {
		env.prefix = fmt.Sprintf("mxi-%d", os.Getpid())
		if env.skip = engineMissing(); env.skip != "" {
			return
		}
		env.err = build()
	})
	if env.skip != "" {
		if os.Getenv("MESHEXP_REQUIRE_DOCKER") != "" {
			t.Fatalf("MESHEXP_REQUIRE_DOCKER is set but %s", env.skip)
		}
		t.Skip("skipped: " + env.skip)
	}
	if env.err != nil {
		t.Fatal(env.err)
	}
}

func engineMissing() string {
	if os.Geteuid() != 0 {
		return "the image tests run as root (they build images and read the trust anchor's key)"
	}
	if _, err := exec.LookPath("docker"); err != nil {
		return "no docker command (install docker.io)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Sprintf("no Docker engine answers (docker version: %v: %s)", err, bytes.TrimSpace(out))
	}
	return ""
}

func build() error {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return fmt.Errorf("finding the repository root: %w", err)
	}
	env.root = strings.TrimSpace(string(out))
	if env.work, err = os.MkdirTemp("", env.prefix+"-"); err != nil {
		return err
	}
	if env.base, err = script(nil, "hack/image-base.sh"); err != nil {
		return err
	}
	env.image = "meshexp-test/meshexp:latest"
	if _, err = script([]string{"MESHEXP_IMAGE=" + env.image, "MESHEXP_IMAGE_STANDIN=1", "MESHEXP_IMAGE_BASE=" + env.base, "VERSION=test"}, "hack/image.sh"); err != nil {
		return err
	}
	// The example workload: the seed's two-line Dockerfile FROM the image.
	ctx := filepath.Join(env.work, "example")
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		return err
	}
	gob := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctx, "my-workload"), "./test/workload")
	gob.Dir, gob.Env = env.root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gob.CombinedOutput(); err != nil {
		return fmt.Errorf("building the example workload: %v\n%s", err, out)
	}
	env.example = "meshexp-test/example:latest"
	if _, err := docker("build", "-q", "--label", "meshexp.test=1", "-t", env.example, "--build-arg", "BASE="+env.image,
		"-f", filepath.Join(env.root, "deploy/example-workload/Dockerfile"), ctx); err != nil {
		return err
	}
	return nil
}

// script runs a hack/ script from the repository root and returns the last
// line of its output (the scripts print what they made there).
func script(extraEnv []string, name string, args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(env.root, name)}, args...)...)
	cmd.Dir = env.root
	cmd.Env = append(os.Environ(), extraEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %v\n%s", name, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// docker runs a docker command to completion and returns its trimmed
// output.
func docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)), fmt.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// must is docker for tests: a failure fails the test.
func must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// name makes a unique container or network name for this test binary.
func name(what string) string {
	n := seq.Add(1)
	return env.prefix + "-" + what + "-" + strconv.FormatInt(n, 10)
}

// cleanupAll removes every container and network of this test binary
// (tests remove their own; this catches what a failed test left) and the
// test images.
func cleanupAll() {
	if env.prefix == "" || env.skip != "" {
		return
	}
	if ids, _ := docker("ps", "-aq", "--filter", "name="+env.prefix); ids != "" {
		docker(append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	if ids, _ := docker("network", "ls", "-q", "--filter", "name="+env.prefix); ids != "" {
		docker(append([]string{"network", "rm"}, strings.Fields(ids)...)...)
	}
	// The test images keep their tags (a warm run reuses their layers);
	// the ones they replaced are removed.
	docker("image", "prune", "-f", "--filter", "label=meshexp.test=1")
	if env.work != "" {
		os.RemoveAll(env.work)
	}
}
