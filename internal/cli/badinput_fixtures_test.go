package cli

import (
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/meshexp/meshexp/internal/trust/trusttest"
)

// badInputFixtures are the files and directories the bad-input table
// points at; snapshot proves a refused run changed none of them.
type badInputFixtures struct {
	root            string
	closedDir       string // 0700, owned by root: the proxy uid cannot enter
	dataDir         string // not created yet
	file            string // an empty regular file
	token           string // a join token file
	ownerOnlyExe    string // 0700 executable in a 0755 directory
	fifo            string
	fifoKeyDir      string // ca.crt and a FIFO as ca.key
	encryptedKeyDir string // ca.crt and a legacy encrypted ca.key
}

func newBadInputFixtures(t *testing.T, goodDir string) *badInputFixtures {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is 0700 too; the proxy uid must get this far.
	for d := filepath.Dir(root); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := &badInputFixtures{root: root}
	mk := func(rel string, mode os.FileMode) string {
		p := filepath.Join(root, rel)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write := func(p, data string, mode os.FileMode) string {
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f.closedDir = mk("closed", 0o700)
	write(filepath.Join(f.closedDir, "linkerd2-proxy"), "#!/bin/sh\n", 0o755)
	f.dataDir = filepath.Join(root, "data", "spire")
	f.file = write(filepath.Join(root, "empty"), "", 0o644)
	f.token = write(filepath.Join(root, "token"), "0f1e2d3c\n", 0o600)
	bin := mk("bin", 0o755)
	f.ownerOnlyExe = write(filepath.Join(bin, "owner-only"), "#!/bin/sh\n", 0o700)
	f.fifo = filepath.Join(root, "fifo")
	if err := syscall.Mkfifo(f.fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	crt, err := os.ReadFile(filepath.Join(goodDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	f.fifoKeyDir = mk("fifo-key", 0o755)
	write(filepath.Join(f.fifoKeyDir, "ca.crt"), string(crt), 0o644)
	if err := syscall.Mkfifo(filepath.Join(f.fifoKeyDir, "ca.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A key as `openssl ec -aes256` writes it (legacy PEM encryption):
	// its body is ciphertext, which a parser would dump as broken ASN.1.
	junk := make([]byte, 128)
	if _, err := rand.Read(junk); err != nil {
		t.Fatal(err)
	}
	enc := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{
		"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}, Bytes: junk})
	f.encryptedKeyDir = trusttest.WriteDir(t, crt, enc)
	return f
}

// yaml writes a config file and returns its path.
func (f *badInputFixtures) yaml(content string) string {
	dir, err := os.MkdirTemp(f.root, "yaml")
	if err != nil {
		panic(err)
	}
	p := filepath.Join(dir, "meshexp.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		panic(err)
	}
	return p
}

// snapshot lists every path under the fixtures with its mode and size.
func (f *badInputFixtures) snapshot(t *testing.T) string {
	t.Helper()
	var out []string
	err := filepath.Walk(f.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d", strings.TrimPrefix(p, f.root), fi.Mode(), fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}
