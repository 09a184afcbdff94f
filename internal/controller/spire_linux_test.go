//go:build linux

package controller_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/fleet"
	"github.com/meshexp/meshexp/internal/spire"
	"github.com/meshexp/meshexp/internal/testutil/kubetest"
	"github.com/meshexp/meshexp/internal/trust"
)

// spireBin is the SPIRE binaries' directory, or a skip (a failure when
// MESHEXP_REQUIRE_SPIRE is set).
func spireBin(t *testing.T) string {
	dir := os.Getenv("MESHEXP_SPIRE_BIN_DIR")
	if _, err := os.Stat(filepath.Join(dir, "spire-server")); dir == "" || err != nil {
		if os.Getenv("MESHEXP_REQUIRE_SPIRE") != "" {
			t.Fatal("MESHEXP_REQUIRE_SPIRE is set but MESHEXP_SPIRE_BIN_DIR has no spire-server")
		}
		t.Skip("skipped: SPIRE binaries not found: run hack/install-spire.sh and set MESHEXP_SPIRE_BIN_DIR")
	}
	return dir
}

// A real SPIRE server and agent (embedded mode, signing with the mesh's
// trust anchor) issue the host's SVID to the proxy's uid only: the agent
// running as that uid registers; the same agent as the workload's uid gets
// no SVID and registers nothing.
func TestARealSPIRESVIDRegistersOnlyAsTheProxysUID(t *testing.T) {
	bin := spireBin(t)
	admin, _, ns := setup(t)
	f := newProcessFleet(t, kubetest.Get(t), admin)
	// SPIRE signs with the same trust anchor the controller trusts.
	anchor := &trust.KeyPair{Cert: f.m.ca.Root.Cert, Key: f.m.ca.Root.Key, CertPEM: f.m.ca.Root.CertPEM, KeyPEM: f.m.ca.Root.KeyPEM}
	dir := world(t)
	if err := anchor.WriteFiles(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	opts := spire.Options{
		Mode: spire.ModeEmbedded, WorkloadName: "vm-9", TrustDomain: td.Name(),
		TrustAnchorPath: filepath.Join(dir, "ca.crt"), UpstreamKeyPath: filepath.Join(dir, "ca.key"),
		BinDir: bin, DataDir: filepath.Join(dir, "data"), SocketPath: filepath.Join(dir, "run", "api.sock"),
		ServerPort: uint16(freePort(t)), Timeout: 2 * time.Minute,
	}
	id, err := spire.Start(ctxT(t), opts, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatalf("start SPIRE: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = id.Stop(ctx)
	})
	spiffeID := opts.SPIFFEID()
	if err := applyGroup(t, admin, groupYAML(ns, "web", "identities: {pathPrefix: /hosts/}", `identities: {ids: ["`+spiffeID+`"]}`)); err != nil {
		t.Fatal(err)
	}
	_, addr := f.controller(t)
	agent := func(uid uint32) *proc {
		o := fleet.AgentOptions{
			Socket: id.SocketPath(), ID: spiffeID, TrustAnchor: filepath.Join(dir, "ca.crt"), ControllerAddr: addr,
			ControllerIdentity: (&config.Config{TrustDomain: td.Name()}).ControllerIdentity(),
			Group:              "web", Namespace: ns, IPs: []string{"192.0.2.30"}, ReadyURL: f.ready.URL + "/ready", SVIDTimeout: 20 * time.Second,
		}
		return startProc(t, f.bin, uid, append(append([]string{}, fleet.AgentArgs...), o.Args()...)...)
	}
	workloadUID := agent(65534)
	<-workloadUID.done
	if out := workloadUID.output(); workloadUID.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(out, "no SVID for "+spiffeID) || strings.Contains(out, "registered with the controller") {
		t.Fatalf("the agent as the workload's uid: exit %d:\n%s", workloadUID.cmd.ProcessState.ExitCode(), out)
	}
	list, err := admin.Resource(ewGVR).Namespace(ns).List(ctxT(t), metav1.ListOptions{})
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("the workload's uid registered something: %d objects, %v", len(list.Items), err)
	}
	agent(2102)
	waitReady(t, admin, ns, "vm-9", "True", "ProxyReady")
}
