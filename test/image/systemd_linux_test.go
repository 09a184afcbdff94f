//go:build linux

package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/eventually"
)

// The env file the systemd tests install: the demo's embedded SPIRE, the
// stand-in proxy at the packaged default path, the example workload.
const systemdEnv = `WORKLOAD_NAME=web
WORKLOAD_NAMESPACE=mixed-env
NODE_NAME=vm-1
MESHEXP_TRUST_ANCHOR_DIR=/etc/meshexp/certs
MESHEXP_WORKLOAD=/opt/workload/start
MESHEXP_WORKLOAD_USER=workload
MESHEXP_SPIRE_MODE=embedded
MESHEXP_SPIRE_BIN_DIR=/opt/spire/bin
MESHEXP_SHUTDOWN_GRACE=5s
`

// systemdImage builds the test system: the local base with systemd, the
// .deb installed.
func systemdImage(t testing.TB) string {
	t.Helper()
	dir := buildPackages(t)
	base, err := script([]string{"MESHEXP_BASE_INCLUDE=systemd,systemd-sysv,dbus,procps"}, "hack/image-base.sh")
	if err != nil {
		t.Fatal(err)
	}
	ctx := filepath.Join(env.work, "systemd")
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		t.Fatal(err)
	}
	deb, err := os.ReadFile(glob1(t, filepath.Join(dir, "v1", "*.deb")))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctx, "meshexp.deb"), deb, 0o644); err != nil {
		t.Fatal(err)
	}
	img := "meshexp-test/systemd:latest"
	must(t, "build", "-q", "--label", "meshexp.test=1", "-t", img, "--build-arg", "BASE="+base,
		"--build-arg", "MESHEXP_IMAGE="+env.image, "--build-arg", "EXAMPLE_IMAGE="+env.example,
		"-f", filepath.Join(env.root, "test/image/systemd/Dockerfile"), ctx)
	return img
}

// bootSystemd starts the test system with systemd as PID 1. This engine
// (cgroup v1, a daemon without CAP_SYS_MODULE) refuses --privileged
// ("unable to apply caps"), so systemd gets SYS_ADMIN and a read-only
// view of the host's cgroups instead; NET_ADMIN is for meshexp's rules.
func bootSystemd(t testing.TB, img string) string {
	t.Helper()
	c := name("systemd")
	must(t, "run", "-d", "--name", c, "--cap-add=SYS_ADMIN", "--cap-add=NET_ADMIN",
		"-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "--tmpfs", "/run", "--tmpfs", "/run/lock", "-e", "container=docker", img)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := docker("exec", c, "journalctl", "--no-pager", "-u", "meshexp", "-n", "80")
			t.Logf("journal of meshexp.service:\n%s", out)
		}
		docker("rm", "-f", c)
	})
	eventually.NoError(t, "systemd to finish booting", func() error {
		out, _ := docker("exec", c, "systemctl", "is-system-running")
		if out == "running" || out == "degraded" {
			return nil
		}
		return fmt.Errorf("system state %q", out)
	})
	sh(t, c, "meshexp certs root --out-dir /etc/meshexp/certs >/dev/null 2>&1")
	writeEnv(t, c, systemdEnv)
	return c
}

func writeEnv(t testing.TB, c, content string) {
	t.Helper()
	sh(t, c, "cat > /etc/meshexp/meshexp.env <<'EOF'\n"+content+"EOF")
}

func TestSystemdUnit(t *testing.T) {
	prepare(t)
	img := systemdImage(t)
	c := bootSystemd(t, img)
	ip := must(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", c)
	served := func() {
		t.Helper()
		eventually.NoError(t, "the workload's port to answer through the proxy", func() error {
			if st, _ := docker("exec", c, "systemctl", "is-active", "meshexp"); st == "failed" {
				t.Fatalf("meshexp.service failed")
			}
			body, err := httpGet(context.Background(), "http://"+ip+":8000/")
			if err != nil {
				return err
			}
			if want := "meshexp-standin inbound orig_dst=" + ip + ":8000 "; !strings.HasPrefix(body, want) {
				t.Fatalf("GET %s:8000 = %q, want %q…", ip, body, want)
			}
			return nil
		})
	}
	nothingLeft := func() {
		t.Helper()
		if rules := sh(t, c, "iptables-save -t nat"); strings.Contains(rules, "PROXY_INIT") {
			t.Errorf("rules left after stop:\n%s", rules)
		}
		if ps := sh(t, c, "ps -eo user,args --no-headers"); strings.Contains(ps, "spire-") || strings.Contains(ps, "linkerd2-proxy") || strings.Contains(ps, "/opt/workload/start") {
			t.Errorf("processes left after stop:\n%s", ps)
		}
	}

	t.Run("systemd-analyze verify finds nothing to say about the unit", func(t *testing.T) {
		out, err := docker("exec", c, "systemd-analyze", "verify", "/lib/systemd/system/meshexp.service")
		if err != nil || out != "" {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("systemctl start serves the workload through the proxy", func(t *testing.T) {
		sh(t, c, "systemctl start meshexp")
		served()
		top := sh(t, c, "ps -eo uid,args --no-headers")
		if !strings.Contains(top, "2102 /opt/linkerd/linkerd2-proxy") || !strings.Contains(top, "2103 /opt/workload/start") {
			t.Errorf("want the proxy as 2102 and the workload as 2103:\n%s", top)
		}
	})

	t.Run("systemctl stop tears down in order and leaves nothing", func(t *testing.T) {
		sh(t, c, "systemctl stop meshexp")
		if st, _ := docker("exec", c, "systemctl", "is-active", "meshexp"); st != "inactive" {
			t.Fatalf("after stop the unit is %q, want inactive", st)
		}
		nothingLeft()
		journal := sh(t, c, "journalctl --no-pager -o cat -u meshexp")
		assertTeardown(t, journal)
	})

	t.Run("systemctl kill -s KILL is restarted and the new start replaces the old rules", func(t *testing.T) {
		sh(t, c, "systemctl start meshexp")
		served()
		sh(t, c, "systemctl kill -s KILL meshexp")
		eventually.NoError(t, "systemd to restart meshexp", func() error {
			if n := sh(t, c, "systemctl show -p NRestarts --value meshexp"); n != "1" {
				return fmt.Errorf("NRestarts=%s", n)
			}
			return nil
		})
		served()
		if n := strings.Count(sh(t, c, "iptables-save -t nat"), "-j PROXY_INIT_REDIRECT"); n != 1 {
			t.Errorf("after the restart the PREROUTING jump appears %d times, want 1", n)
		}
		sh(t, c, "systemctl stop meshexp")
		nothingLeft()
	})

	t.Run("a bad environment file fails the unit without restarts", func(t *testing.T) {
		writeEnv(t, c, strings.Replace(systemdEnv, "WORKLOAD_NAME=web", "WORKLOAD_NAME=Not_A_Label", 1))
		sh(t, c, "systemctl reset-failed meshexp 2>/dev/null || true; systemctl start meshexp || true")
		eventually.NoError(t, "the unit to fail", func() error {
			if st, _ := docker("exec", c, "systemctl", "is-active", "meshexp"); st != "failed" {
				return fmt.Errorf("unit is %s", st)
			}
			return nil
		})
		if n := sh(t, c, "systemctl show -p NRestarts --value meshexp"); n != "0" {
			t.Errorf("NRestarts=%s after a bad env file, want 0", n)
		}
		if j := sh(t, c, "journalctl --no-pager -o cat -u meshexp -n 20"); !strings.Contains(j, "WORKLOAD_NAME") {
			t.Errorf("the journal does not name WORKLOAD_NAME:\n%s", j)
		}
		nothingLeft()
	})
}
