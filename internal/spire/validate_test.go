package spire

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshexp/meshexp/internal/trust"
)

// validFixture is a complete, valid embedded-mode Options over files in a
// temporary directory; BinDir holds stand-in executables (validation only
// looks for them).
func validFixture(t *testing.T) (Options, string) {
	t.Helper()
	dir := shortDir(t)
	root := anchorFiles(t, dir)
	inter, err := trust.NewIntermediate(root, "spire.root.linkerd.cluster.local", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := inter.WriteFiles(filepath.Join(dir, "int.crt"), filepath.Join(dir, "int.key")); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"spire-server", "spire-agent"} {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Options{
		Mode:            ModeEmbedded,
		WorkloadName:    "vm-1",
		TrustAnchorPath: filepath.Join(dir, "ca.crt"),
		UpstreamKeyPath: filepath.Join(dir, "ca.key"),
		BinDir:          bin,
		DataDir:         filepath.Join(dir, "data"),
		SocketPath:      filepath.Join(dir, "run", "api.sock"),
	}, dir
}

func TestValidateAcceptsEachModesValidOptions(t *testing.T) {
	base, dir := validFixture(t)
	for name, f := range map[string]func(*Options){
		"embedded with the root": func(*Options) {},
		"embedded with an intermediate": func(o *Options) {
			o.UpstreamCertPath, o.UpstreamKeyPath = filepath.Join(dir, "int.crt"), filepath.Join(dir, "int.key")
		},
		"external with a token": func(o *Options) { o.Mode, o.ServerAddress, o.JoinToken = ModeExternal, "10.0.0.1", "tok" },
		"external with a token file": func(o *Options) {
			o.Mode, o.ServerAddress, o.JoinTokenFile = ModeExternal, "spire.example", filepath.Join(dir, "token")
		},
		"external with x509pop": func(o *Options) {
			o.Mode, o.ServerAddress = ModeExternal, "fd00::1"
			o.X509PopCertPath, o.X509PopKeyPath = filepath.Join(dir, "int.crt"), filepath.Join(dir, "int.key")
		},
		"existing": func(o *Options) { o.Mode, o.BinDir, o.DataDir = ModeExisting, "", "" },
	} {
		t.Run(name, func(t *testing.T) {
			o := base
			f(&o)
			if err := o.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidateNamesTheBadOptionAndTheFix(t *testing.T) {
	base, dir := validFixture(t)
	other := shortDir(t)
	anchorFiles(t, other)
	closed := filepath.Join(dir, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	long := "/" + strings.Repeat("d", 100)
	cases := []struct {
		name   string
		change func(*Options)
		option string
		want   string
	}{
		{"an unknown mode", func(o *Options) { o.Mode = "local" }, "Mode", "unknown SPIRE mode"},
		{"no workload name", func(o *Options) { o.WorkloadName = "" }, "WorkloadName", "empty"},
		{"a workload name that is no path segment", func(o *Options) { o.WorkloadName = "a/b" }, "WorkloadName", "path segment"},
		{"a bad trust domain", func(o *Options) { o.TrustDomain = "Root Domain" }, "TrustDomain", "trust domain"},
		{"no trust anchor", func(o *Options) { o.TrustAnchorPath = "" }, "TrustAnchorPath", "empty"},
		{"a missing trust anchor", func(o *Options) { o.TrustAnchorPath = filepath.Join(dir, "nope.crt") }, "TrustAnchorPath", "cannot read"},
		{"a relative data dir", func(o *Options) { o.DataDir = "data" }, "DataDir", "relative"},
		{"the root directory as data dir", func(o *Options) { o.DataDir = "/" }, "DataDir", "root directory"},
		{"a socket path too long", func(o *Options) { o.SocketPath = long + "/api.sock" }, "SocketPath", "at most 107"},
		{"a data dir too long for the server's socket", func(o *Options) { o.DataDir = long }, "DataDir", "at most 107"},
		{"the socket inside the data dir", func(o *Options) { o.SocketPath = filepath.Join(o.DataDir, "agent", "api.sock") }, "SocketPath", "private state"},
		{"a socket directory the proxy cannot enter", func(o *Options) { o.SocketPath = filepath.Join(closed, "run", "api.sock") }, "SocketPath", "does not let the proxy uid"},
		{"no upstream key", func(o *Options) { o.UpstreamKeyPath = "" }, "UpstreamKeyPath", "empty"},
		{"an upstream key of another certificate", func(o *Options) { o.UpstreamKeyPath = filepath.Join(dir, "int.key") }, "UpstreamKeyPath", "does not match"},
		{"an upstream CA from another root (wrong trust anchor for the server)", func(o *Options) {
			o.UpstreamCertPath, o.UpstreamKeyPath = filepath.Join(other, "ca.crt"), filepath.Join(other, "ca.key")
		}, "UpstreamCertPath", "does not chain to the trust anchor"},
		{"a bin dir without SPIRE", func(o *Options) { o.BinDir = dir }, "BinDir", "no usable spire-server"},
		{"a bad bind address", func(o *Options) { o.ServerBindAddress = "localhost" }, "ServerBindAddress", "not an IP"},
		{"external without a server", func(o *Options) { o.Mode, o.JoinToken = ModeExternal, "tok" }, "ServerAddress", "empty"},
		{"external with host:port", func(o *Options) { o.Mode, o.ServerAddress, o.JoinToken = ModeExternal, "spire:8081", "tok" }, "ServerAddress", "port in ServerPort"},
		{"external without attestation", func(o *Options) { o.Mode, o.ServerAddress = ModeExternal, "spire" }, "JoinToken", "no node attestation"},
		{"external with two attestations", func(o *Options) {
			o.Mode, o.ServerAddress, o.JoinToken, o.JoinTokenFile = ModeExternal, "spire", "tok", filepath.Join(dir, "token")
		}, "JoinToken", "more than one"},
		{"x509pop without its key", func(o *Options) {
			o.Mode, o.ServerAddress, o.X509PopCertPath = ModeExternal, "spire", filepath.Join(dir, "int.crt")
		}, "X509PopKeyPath", "empty"},
		{"an empty token file", func(o *Options) {
			empty := filepath.Join(dir, "empty")
			if err := os.WriteFile(empty, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			o.Mode, o.ServerAddress, o.JoinTokenFile = ModeExternal, "spire", empty
		}, "JoinTokenFile", "empty"},
		{"a negative timeout", func(o *Options) { o.Timeout = -time.Second }, "Timeout", "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := base
			c.change(&o)
			err := o.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			var oe *OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("error %v is not an *OptionError", err)
			}
			if !hasOptionError(err, c.option, c.want) {
				t.Errorf("want an error on %s containing %q, got: %v", c.option, c.want, err)
			}
			if _, err := os.Stat(base.DataDir); err == nil {
				t.Errorf("validation created %s", base.DataDir)
			}
		})
	}
}

func hasOptionError(err error, option, substr string) bool {
	var found bool
	var walk func(error)
	walk = func(e error) {
		if oe, ok := e.(*OptionError); ok && oe.Option == option && strings.Contains(oe.Error(), substr) {
			found = true
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return found
}

func TestValidateNeverEchoesTheJoinToken(t *testing.T) {
	base, _ := validFixture(t)
	base.Mode, base.ServerAddress, base.JoinToken = ModeExternal, "spire", "secret token\n"
	err := base.Validate()
	if err == nil {
		t.Fatal("Validate accepted a token with whitespace")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error echoes the token: %v", err)
	}
}
