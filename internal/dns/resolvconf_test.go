package dns

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/golden"
)

func TestResolvConfLooksLikeAPods(t *testing.T) {
	rc := ResolvConf{
		Nameserver:    netip.MustParseAddr("127.0.0.1"),
		Namespace:     "shop",
		ClusterDomain: "cluster.local.",
		HostSearch:    []string{"corp.example.", "svc.cluster.local"},
	}
	golden.Check(t, "resolv.conf.golden", rc.Render("/etc/resolv.conf"+BackupSuffix))
}

func TestPointResolverKeepsAndRestoresTheOriginal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	orig := "# from DHCP\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
	if err := os.WriteFile(path, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	rc := ResolvConf{Nameserver: netip.MustParseAddr("127.0.0.1"), Namespace: "shop", ClusterDomain: "cluster.local"}
	restore, err := PointResolver(path, rc)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(cur), "nameserver 127.0.0.1\n") ||
		!strings.Contains(string(cur), "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n") ||
		!strings.Contains(string(cur), "options ndots:5\n") {
		t.Errorf("written resolv.conf:\n%s", cur)
	}
	if b, _ := os.ReadFile(path + BackupSuffix); string(b) != orig {
		t.Errorf("backup holds %q, want the original", b)
	}
	// A forwarder that restarts now reads its upstreams from the backup.
	o := validOptions()
	o.Upstreams, o.ResolvConf = nil, path
	if ups, err := o.resolvConfUpstreams(); err != nil || len(ups) != 1 || ups[0].String() != "192.0.2.53:53" {
		t.Errorf("upstreams after pointing: %v, %v; want the original's 192.0.2.53", ups, err)
	}

	// A crash: PointResolver runs again over its own file.
	if _, err := PointResolver(path, rc); err != nil {
		t.Fatalf("second PointResolver over our own file: %v", err)
	}
	if b, _ := os.ReadFile(path + BackupSuffix); string(b) != orig {
		t.Errorf("backup overwritten with our own file: %q", b)
	}

	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Errorf("restored file %q, want the original", b)
	}
	if _, err := os.Stat(path + BackupSuffix); !os.IsNotExist(err) {
		t.Errorf("backup left behind: %v", err)
	}
}

func TestPointResolverWithoutAFileRemovesItsOwn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	restore, err := PointResolver(path, ResolvConf{Nameserver: netip.MustParseAddr("127.0.0.1"), ClusterDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("not written: %v", err)
	}
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file left behind after restore: %v", err)
	}
}

func TestPointResolverChangesNothingWhenItCannotKeepABackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The backup's name is taken by a directory, so it cannot be written.
	if err := os.Mkdir(path+BackupSuffix, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := PointResolver(path, ResolvConf{Nameserver: netip.MustParseAddr("127.0.0.1"), ClusterDomain: "cluster.local"}); err == nil {
		t.Fatal("PointResolver succeeded without a backup")
	}
	if b, _ := os.ReadFile(path); string(b) != "nameserver 192.0.2.53\n" {
		t.Errorf("file changed to %q", b)
	}
}
