//go:build linux

package image

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPodmanRunsTheSeedLineUnchanged runs the demo's podman line itself
// with Debian's podman. Its default ulimits (nofile and nproc far above
// this sandbox's hard limits) make runc refuse every container ("error
// setting rlimits for ready process: error setting rlimit type 7:
// operation not permitted"), so the test gives podman a containers.conf
// (CONTAINERS_CONF) with default_ulimits within the limits: the line's
// flags stay unchanged.
func TestPodmanRunsTheSeedLineUnchanged(t *testing.T) {
	d := newDemo(t)
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("MESHEXP_REQUIRE_DOCKER") != "" {
			t.Fatal("podman is missing: hack/install-deps.sh installs it")
		}
		t.Skip("skipped: podman is not installed (apt-get install podman)")
	}
	var nofile, nproc unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &nproc); err != nil {
		t.Fatal(err)
	}
	// Measured here: nproc 32768 works, 65536 and the hard limit are refused.
	np := min(nproc.Max, 32768)
	conf := filepath.Join(env.work, "containers.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[containers]\ndefault_ulimits = [\"nofile=%d:%d\", \"nproc=%d:%d\"]\n", nofile.Max, nofile.Max, np, np)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTAINERS_CONF", conf)
	img := "localhost/" + env.example
	load := exec.Command("sh", "-c", "docker save "+env.example+" | podman load -q")
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("loading the image into podman: %v\n%s", err, out)
	}
	web := name("podman")
	line := d.seedLine(web, img)
	line[0] = "podman"
	c := run(t, web, line)
	t.Cleanup(func() { exec.Command("podman", "rm", "-f", web).Run() })
	c.waitRunning()
	ip, err := exec.Command("podman", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", web).Output()
	if err != nil {
		t.Fatal(err)
	}
	body, err := httpGet(context.Background(), "http://127.0.0.1:8000/")
	if err != nil {
		t.Fatal(err)
	}
	if want := "meshexp-standin inbound orig_dst=" + strings.TrimSpace(string(ip)) + ":8000 "; !strings.HasPrefix(body, want) {
		t.Fatalf("GET 127.0.0.1:8000 = %q, want %q…", body, want)
	}
	if out, err := exec.Command("podman", "stop", "-t", "30", web).CombinedOutput(); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	if st := c.wait(); st != 0 {
		t.Fatalf("podman run exited %d after podman stop, want 0", st)
	}
	assertTeardown(t, c.out.String())
}
