package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// DialFunc opens a connection, like net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Runner runs single probe attempts. Dial carries the control mark
// (netfilter.ControlDialer(mark).DialContext; nil: a plain dialer);
// UID/GID are the workload's user for exec probes.
type Runner struct {
	Dial     DialFunc
	UID, GID uint32
}

// Once runs one attempt of sp within ctx's deadline. The error reads as
// what was tried and what came back: "GET http://127.0.0.1:8000/healthz: 503".
func (r Runner) Once(ctx context.Context, sp Spec) error {
	d := r.Dial
	if d == nil {
		d = (&net.Dialer{}).DialContext
	}
	switch sp.Kind {
	case HTTP:
		return r.http(ctx, d, sp)
	case TCP:
		c, err := d(ctx, "tcp", sp.Addr)
		if err != nil {
			return fmt.Errorf("TCP %s: %w", sp.Addr, unwrapOp(err))
		}
		return c.Close()
	case GRPC:
		return r.grpc(ctx, d, sp)
	case Exec:
		return r.exec(ctx, sp)
	}
	return fmt.Errorf("probe %q: unknown kind", sp.Text)
}

func (r Runner) http(ctx context.Context, d DialFunc, sp Spec) error {
	// A fresh connection per attempt, as kubelet does; redirects are not
	// followed past the workload (kubelet follows them to the same host).
	tr := &http.Transport{DialContext: d, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sp.URL, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", sp.URL, err)
	}
	req.Header.Set("User-Agent", "meshexp-probe")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", sp.URL, unwrapOp(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	// kubelet: 200 <= code < 400 succeeds.
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %d", sp.URL, resp.StatusCode)
	}
	return nil
}

func (r Runner) grpc(ctx context.Context, d DialFunc, sp Spec) error {
	conn, err := grpc.NewClient("passthrough:///"+sp.Addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return d(ctx, "tcp", addr) }))
	if err != nil {
		return fmt.Errorf("gRPC health %s: %w", sp.Addr, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: sp.Service}, grpc.WaitForReady(false))
	if err != nil {
		return fmt.Errorf("gRPC health %s%s: %w", sp.Addr, svc(sp.Service), err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("gRPC health %s%s: %s", sp.Addr, svc(sp.Service), s)
	}
	return nil
}

func svc(s string) string {
	if s == "" {
		return ""
	}
	return " service " + s
}

func (r Runner) exec(ctx context.Context, sp Spec) error {
	cmd := exec.CommandContext(ctx, sp.Command[0], sp.Command[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: r.UID, Gid: r.GID, Groups: []uint32{}}, Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("exec %s: timed out", sp.Command[0])
	}
	msg := bytes.TrimSpace(out.Bytes())
	if len(msg) > 200 {
		msg = msg[:200]
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if len(msg) > 0 {
			return fmt.Errorf("exec %s: exit status %d: %s", sp.Command[0], ee.ExitCode(), msg)
		}
		return fmt.Errorf("exec %s: exit status %d", sp.Command[0], ee.ExitCode())
	}
	return fmt.Errorf("exec %s: %w", sp.Command[0], err)
}

// unwrapOp drops the url/net wrappers that repeat the address.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
