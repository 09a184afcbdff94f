package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// fakeAgent is a process whose command line holds AgentArgs, as a real
// agent's does.
func fakeAgent(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", "sleep 600", AgentArgs[0], AgentArgs[1])
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

func TestAnUnreachableControllerIsPublishedAsRetryingWithItsError(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	dir := t.TempDir()
	o := AgentOptions{ControllerAddr: addr, Group: "web", Namespace: "shop"}
	pub := newPublisher(dir, o, slog.New(slog.DiscardHandler))
	pub.write()
	if s, err := readStateFile(dir); err != nil || s.State != PhaseConnecting || s.PID != os.Getpid() {
		t.Fatalf("at the start: %+v, %v; want connecting with this pid", s, err)
	}
	c, err := NewClient(ClientOptions{Addr: addr, TLS: &tls.Config{}, Group: "web", Namespace: "shop", MaxBackoff: 500 * time.Millisecond,
		Ready: func(context.Context) error { return nil }, OnState: pub.client})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var s Published
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s, err = readStateFile(dir); err == nil && s.State == PhaseRetrying {
			break
		}
	}
	if s.State != PhaseRetrying || !strings.Contains(s.Error, "controller unreachable") || s.Controller != addr || s.Group != "web" || s.Namespace != "shop" {
		t.Fatalf("published %+v; want retrying, controller unreachable, with the controller and group", s)
	}
	if s.Ready != nil || !s.LastRegistered.IsZero() {
		t.Errorf("never registered, yet published ready %v, last registered %s", s.Ready, s.LastRegistered)
	}
	if cs := c.State(); cs.Phase != PhaseRetrying || cs.Changed.IsZero() {
		t.Errorf("client state %+v", cs)
	}
	// Read by meshexp: this test process is no agent, so the state is not
	// current.
	if got, err := ReadState(dir); err != nil || got.State != PhaseRetrying || !strings.Contains(got.Error, "is no longer running") {
		t.Errorf("ReadState of a state whose agent is gone: %+v, %v", got, err)
	}
}

func TestAStateIsCurrentOnlyWhileItsAgentRuns(t *testing.T) {
	dir := t.TempDir()
	agent := fakeAgent(t)
	ready := true
	want := Published{PID: agent.Process.Pid, State: PhaseRegistered, Controller: "ctl:8443", Group: "web", Namespace: "shop",
		ExternalWorkload: "shop/web-1", Ready: &ready, LastRegistered: time.Now(), Changed: time.Now()}
	if err := writeState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(dir)
	if err != nil || got.State != PhaseRegistered || got.ExternalWorkload != "shop/web-1" || got.Ready == nil || !*got.Ready {
		t.Fatalf("the running agent's state: %+v, %v", got, err)
	}
	_ = agent.Process.Kill()
	_ = agent.Wait()
	got, err = ReadState(dir)
	if err != nil || got.State != PhaseRetrying || !strings.Contains(got.Error, "no longer running") || !strings.Contains(got.Error, "its last state: registered") {
		t.Errorf("after the agent died: %+v, %v", got, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only %s (no temporary files)", len(entries), StateFile)
	}
}

func TestARestartedAgentKeepsTheLastErrorAndRegistrationWhileItConnects(t *testing.T) {
	dir := t.TempDir()
	ready := false
	last := time.Now().Add(-time.Hour).Round(0)
	if err := writeState(dir, Published{PID: 1, State: PhaseRetrying, Error: "no SVID", ExternalWorkload: "shop/web-1",
		Ready: &ready, LastRegistered: last}); err != nil {
		t.Fatal(err)
	}
	p := newPublisher(dir, AgentOptions{ControllerAddr: "ctl:8443", Group: "web", Namespace: "shop"}, slog.New(slog.DiscardHandler))
	p.write()
	s, err := readStateFile(dir)
	if err != nil || s.State != PhaseConnecting || s.PID != os.Getpid() || s.Error != "no SVID" || !s.LastRegistered.Equal(last) || s.ExternalWorkload != "shop/web-1" {
		t.Fatalf("%+v, %v", s, err)
	}
	p.client(State{Phase: PhaseRetrying, LastError: "controller unreachable: x", Changed: time.Now()})
	if s, _ = readStateFile(dir); !s.LastRegistered.Equal(last) || s.Ready == nil || s.Error != "controller unreachable: x" {
		t.Errorf("a new agent's first failure dropped the last registration: %+v", s)
	}
	p.failed(errors.New("the host's SVID: gone"))
	if s, _ = readStateFile(dir); s.State != PhaseRetrying || s.Error != "the host's SVID: gone" {
		t.Errorf("after the agent failed: %+v", s)
	}
}

func TestTheReaderFollowsNoLinkAndNeedsAState(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadState(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no state: %v, want fs.ErrNotExist", err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(`{"state":"registered"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, StateFile)); err != nil {
		t.Fatal(err)
	}
	if s, err := ReadState(dir); err == nil {
		t.Errorf("a symbolic link was followed: %+v", s)
	}
}

func TestRefusalsAreToldFromTroubleThatMayPass(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Phase
	}{
		{status.Error(codes.PermissionDenied, "SPIFFE ID spiffe://td/x may not join ExternalGroup ns/web"), PhaseRefused},
		{status.Error(codes.NotFound, "ExternalGroup ns/nope not found"), PhaseRefused},
		{status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: the controller presented identity spiffe://td/a, not the expected spiffe://td/b\""), PhaseRefused},
		{status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority\""), PhaseRefused},
		{status.Error(codes.Unavailable, "connection error: desc = \"transport: authentication handshake failed: EOF\""), PhaseRetrying},
		{status.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp 10.0.0.2:8443: connect: connection refused\""), PhaseRetrying},
		{errors.New("EOF"), PhaseRetrying},
	} {
		if msg, got := describe(tc.err); got != tc.want {
			t.Errorf("%v: %s (%s), want %s", tc.err, got, msg, tc.want)
		}
	}
}
