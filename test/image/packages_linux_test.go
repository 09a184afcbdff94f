//go:build linux

package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// pkgs are the two builds the package tests install and upgrade between.
var pkgs struct {
	once sync.Once
	err  error
	dir  string // holds v1/ and v2/
}

const (
	pkgV1 = "0.1.0"
	pkgV2 = "0.2.0"
)

// buildPackages runs `make packages`' script twice with two versions.
func buildPackages(t testing.TB) string {
	t.Helper()
	prepare(t)
	pkgs.once.Do(func() {
		pkgs.dir = filepath.Join(env.work, "pkgs")
		for sub, v := range map[string]string{"v1": pkgV1, "v2": pkgV2} {
			if _, err := script([]string{"VERSION=" + v, "PKG_OUT=" + filepath.Join(pkgs.dir, sub)}, "hack/packages.sh"); err != nil {
				pkgs.err = err
				return
			}
		}
	})
	if pkgs.err != nil {
		t.Fatal(pkgs.err)
	}
	return pkgs.dir
}

func glob1(t testing.TB, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) != 1 {
		t.Fatalf("want one file matching %s, got %v (%v)", pattern, m, err)
	}
	return m[0]
}

// sh runs a shell command in container c and returns its output.
func sh(t testing.TB, c, cmd string) string {
	t.Helper()
	return must(t, "exec", c, "sh", "-ec", cmd)
}

func TestDebPackageInstallUpgradeRemovePurge(t *testing.T) {
	dir := buildPackages(t)
	c := name("deb")
	must(t, "run", "-d", "--rm", "--name", c, "--network=none", "-v", dir+":/pkgs:ro", env.base, "sleep", "infinity")
	t.Cleanup(func() { docker("rm", "-f", c) })
	deb1 := "/pkgs/v1/" + filepath.Base(glob1(t, filepath.Join(dir, "v1", "*.deb")))
	deb2 := "/pkgs/v2/" + filepath.Base(glob1(t, filepath.Join(dir, "v2", "*.deb")))

	t.Run("the .deb installs with its user, modes and files", func(t *testing.T) {
		sh(t, c, "dpkg -i "+deb1)
		if got := sh(t, c, "meshexp version"); !strings.Contains(got, pkgV1) {
			t.Errorf("meshexp version = %q, want %s", got, pkgV1)
		}
		if got := sh(t, c, "id -u linkerd-proxy; getent passwd linkerd-proxy | cut -d: -f7"); got != "2102\n/usr/sbin/nologin" {
			t.Errorf("the proxy's user: %q, want uid 2102 with nologin", got)
		}
		got := sh(t, c, "stat -c '%a %U %n' /etc/meshexp /etc/meshexp/certs /etc/meshexp/meshexp.env /var/lib/meshexp /usr/bin/meshexp /lib/systemd/system/meshexp.service")
		want := "750 root /etc/meshexp\n750 root /etc/meshexp/certs\n640 root /etc/meshexp/meshexp.env\n750 root /var/lib/meshexp\n755 root /usr/bin/meshexp\n644 root /lib/systemd/system/meshexp.service"
		if got != want {
			t.Errorf("modes:\n%s\nwant:\n%s", got, want)
		}
		if unit := sh(t, c, "cat /lib/systemd/system/meshexp.service"); !strings.Contains(unit, "ExecStart=/usr/bin/meshexp bootstrap") {
			t.Errorf("the packaged unit does not start /usr/bin/meshexp:\n%s", unit)
		}
		if got := sh(t, c, "cat /var/lib/dpkg/info/meshexp.conffiles"); got != "/etc/meshexp/meshexp.env" {
			t.Errorf("conffiles = %q, want /etc/meshexp/meshexp.env", got)
		}
	})

	t.Run("bootstrap --dry-run passes with the environment file filled in", func(t *testing.T) {
		sh(t, c, `meshexp certs root --out-dir /etc/meshexp/certs >/dev/null 2>&1
echo not-a-real-token > /etc/meshexp/join-token
sed -i -e 's|^MESHEXP_WORKLOAD=.*|MESHEXP_WORKLOAD=/bin/true|' -e 's|^MESHEXP_WORKLOAD_USER=.*|MESHEXP_WORKLOAD_USER=nobody|' /etc/meshexp/meshexp.env
echo '# edited by the package test' >> /etc/meshexp/meshexp.env`)
		out := sh(t, c, "set -a; . /etc/meshexp/meshexp.env; set +a; meshexp bootstrap --dry-run 2>&1")
		for _, want := range []string{"billing", "spire.example.internal"} {
			if !strings.Contains(out, want) {
				t.Errorf("the plan lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("an upgrade keeps the edited environment file", func(t *testing.T) {
		sh(t, c, "dpkg -i "+deb2)
		if got := sh(t, c, "meshexp version"); !strings.Contains(got, pkgV2) {
			t.Errorf("meshexp version after upgrade = %q, want %s", got, pkgV2)
		}
		if got := sh(t, c, "grep -c 'edited by the package test' /etc/meshexp/meshexp.env"); got != "1" {
			t.Errorf("the edit did not survive the upgrade:\n%s", sh(t, c, "cat /etc/meshexp/meshexp.env"))
		}
	})

	t.Run("remove keeps the configuration, purge deletes it", func(t *testing.T) {
		sh(t, c, "dpkg -r meshexp")
		if got := sh(t, c, "test ! -e /usr/bin/meshexp && test ! -e /lib/systemd/system/meshexp.service && ls /etc/meshexp"); !strings.Contains(got, "meshexp.env") || !strings.Contains(got, "certs") {
			t.Errorf("after remove /etc/meshexp holds %q, want meshexp.env and certs", got)
		}
		sh(t, c, "dpkg -P meshexp")
		if got := sh(t, c, "ls -d /etc/meshexp /var/lib/meshexp 2>&1 || true"); !strings.Contains(got, "No such file") || strings.Contains(got, "\n/") {
			t.Errorf("after purge: %q, want both gone", got)
		}
	})
}

// The .rpm checked with Debian's rpm tools (no RPM-based image can be
// made offline here; see the README).
func TestRPMPackageContentsScriptsAndDependencies(t *testing.T) {
	dir := buildPackages(t)
	if _, err := exec.LookPath("rpm"); err != nil {
		if os.Getenv("MESHEXP_REQUIRE_DOCKER") != "" {
			t.Fatal("rpm is missing: hack/install-deps.sh installs it")
		}
		t.Skip("skipped: rpm is not installed (apt-get install rpm)")
	}
	rpmFile := glob1(t, filepath.Join(dir, "v1", "*.rpm"))
	q := func(args ...string) string {
		out, err := exec.Command("rpm", append(append([]string{"-qp"}, args...), rpmFile)...).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm -qp %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for _, tc := range []struct{ what, got, want string }{
		{"version", q("--qf", "%{NAME} %{VERSION} %{ARCH}"), "meshexp " + pkgV1 + " x86_64"},
		{"files", q("-l"), "/usr/bin/meshexp"},
		{"files", q("-l"), "/usr/lib/systemd/system/meshexp.service"},
		{"config files", q("--configfiles"), "/etc/meshexp/meshexp.env"},
		{"config noreplace", q("--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]"), "/etc/meshexp/meshexp.env cn"},
		{"modes", q("--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]"), "drwxr-x--- /etc/meshexp\n"},
		{"dependencies", q("--requires"), "iptables"},
		{"scripts", q("--scripts"), "useradd --system --uid 2102"},
		{"scripts", q("--scripts"), "systemctl disable --now meshexp.service"},
	} {
		if !strings.Contains(tc.got, tc.want) {
			t.Errorf("%s: %q lacks %q", tc.what, tc.got, tc.want)
		}
	}
}
