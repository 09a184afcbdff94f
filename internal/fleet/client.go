package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Client timing. The reconnect backoff is capped at DefaultMaxBackoff so
// that a host whose controller replica dies reconnects (to another one)
// well within the smallest grace a group allows (3 s) times its usual
// 15 s: a failover never turns a healthy host not-ready.
const (
	DefaultMaxBackoff = 5 * time.Second
	minBackoff        = 200 * time.Millisecond
	clientKeepalive   = 20 * time.Second
	defaultPeriod     = 10 * time.Second // kubelet's readiness period
)

// ClientOptions configure a host's registration client.
type ClientOptions struct {
	// Addr is the controller's host:port.
	Addr string
	// TLS is the client's mutual TLS (see ClientTLS).
	TLS *tls.Config
	// Group and Namespace name the ExternalGroup to join; Name, when set,
	// is the ExternalWorkload the host expects (the controller checks it).
	Group, Namespace, Name string
	// IPs the cluster reaches the host on.
	IPs []string
	// Ready probes the host's readiness (the proxy's /ready): nil is ready.
	Ready func(ctx context.Context) error
	// Dial, when set, dials the controller (bootstrap marks the socket so
	// interception lets it through).
	Dial       func(ctx context.Context, addr string) (net.Conn, error)
	MaxBackoff time.Duration
	Logger     *slog.Logger
	// OnState, when set, receives the state after every change (from
	// Run's goroutine, in order); the agent publishes it (statefile.go).
	OnState func(State)
}

// Phase is where a registration stands.
type Phase string

const (
	// PhaseConnecting: no answer from the controller yet.
	PhaseConnecting Phase = "connecting"
	// PhaseRegistered: the stream is open and the controller acknowledged
	// the host.
	PhaseRegistered Phase = "registered"
	// PhaseRefused: the controller refused the host, or the host refused
	// the controller's certificate; it needs a fix (LastError says which),
	// though the client keeps retrying.
	PhaseRefused Phase = "refused"
	// PhaseRetrying: the controller could not be reached or the stream
	// broke; the client retries with backoff.
	PhaseRetrying Phase = "retrying"
)

// State is the client's view of its registration, for status commands.
type State struct {
	Phase      Phase
	Registered bool
	Namespace  string // the ExternalWorkload, as the controller bound it
	Name       string
	Ready      bool      // the readiness last reported
	Since      time.Time // of the current registration
	// LastRegistered is when the host last registered (kept while it is
	// not): zero until the first registration.
	LastRegistered time.Time
	LastError      string    // the last refusal or connection error
	Changed        time.Time // when any of the above last changed
}

// Client keeps a host registered with the controller.
type Client struct {
	o ClientOptions

	mu    sync.Mutex
	state State
}

// NewClient checks o and returns a Client.
func NewClient(o ClientOptions) (*Client, error) {
	var errs []error
	if o.Addr == "" {
		errs = append(errs, errors.New("controller address: empty; give host:port of the meshexp controller"))
	} else if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		errs = append(errs, fmt.Errorf("controller address %q: want host:port (%v)", o.Addr, err))
	}
	if o.TLS == nil {
		errs = append(errs, errors.New("controller TLS: not configured"))
	}
	if o.Group == "" || o.Namespace == "" {
		errs = append(errs, errors.New("group: give the ExternalGroup's name and namespace"))
	}
	if o.Ready == nil {
		errs = append(errs, errors.New("readiness probe: not set"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Client{o: o, state: State{Phase: PhaseConnecting, Changed: time.Now()}}, nil
}

// State returns a copy of the registration state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// setState applies f and, when it changed anything, stamps the change
// and hands the new state to OnState. Only Run's goroutine calls it.
func (c *Client) setState(f func(*State)) {
	c.mu.Lock()
	old := c.state
	f(&c.state)
	changed := c.state != old
	if changed {
		c.state.Changed = time.Now()
	}
	s := c.state
	c.mu.Unlock()
	if changed && c.o.OnState != nil {
		c.o.OnState(s)
	}
}

// Run keeps the host registered until ctx ends: it holds one stream to the
// controller, reports readiness on every change and every heartbeat, and
// reconnects with jittered backoff when the stream breaks or is refused.
// It never fails the host: it returns only ctx's error.
func (c *Client) Run(ctx context.Context) error {
	var opts []grpc.DialOption
	if c.o.Dial != nil {
		opts = append(opts, grpc.WithContextDialer(c.o.Dial))
	}
	conn, err := grpc.NewClient("passthrough:///"+c.o.Addr, append(opts, dialOptions(c.o.TLS, c.o.MaxBackoff)...)...)
	if err != nil {
		return fmt.Errorf("controller client for %s: %w", c.o.Addr, err)
	}
	defer conn.Close()
	wait := minBackoff
	for {
		start := time.Now()
		err := c.session(ctx, conn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg, phase := describe(err)
		c.setState(func(s *State) { s.Phase, s.Registered, s.Since, s.LastError = phase, false, time.Time{}, msg })
		c.o.Logger.Warn("registration with the controller interrupted; retrying", "controller", c.o.Addr, "error", msg, "retry_in", wait)
		if time.Since(start) > time.Minute {
			wait = minBackoff
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait/2 + rand.N(wait/2+1)):
		}
		wait = min(2*wait, c.o.MaxBackoff)
	}
}

// describe turns a gRPC error into the controller's words and tells a
// refusal (something to fix) from trouble that may pass (retrying).
func describe(err error) (string, Phase) {
	if s, ok := status.FromError(err); ok {
		if m := s.Message(); strings.Contains(m, "authentication handshake failed") {
			phase := PhaseRetrying // e.g. the connection closed mid-handshake
			if strings.Contains(m, "certificate") || strings.Contains(m, "x509") || strings.Contains(m, "presented identity") {
				phase = PhaseRefused // the controller's certificate is not the expected one
			}
			return "TLS handshake with the controller failed (check the controller identity setting and the trust anchor): " + m, phase
		}
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			return "controller unreachable: " + s.Message(), PhaseRetrying
		default:
			return "refused by the controller: " + s.Message(), PhaseRefused
		}
	}
	return err.Error(), PhaseRetrying
}

// prober applies the probe's thresholds to consecutive results.
type prober struct {
	ready   bool
	started bool
	streak  int32
	reason  string
	message string
}

func (c *Client) session(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := OpenStream(ctx, conn)
	if err != nil {
		return err
	}
	probe := Probe{PeriodSeconds: int32(defaultPeriod / time.Second), TimeoutSeconds: 1, FailureThreshold: 3, SuccessThreshold: 1}
	p := &prober{}
	c.probe(ctx, p, probe)
	send := func() error { return stream.SendMsg(c.report(p)) }
	if err := send(); err != nil {
		return recvErr(stream, err)
	}
	var ack Ack
	if err := stream.RecvMsg(&ack); err != nil {
		return err
	}
	if ack.Probe.PeriodSeconds > 0 {
		probe = ack.Probe
	}
	heartbeat := time.Duration(ack.HeartbeatSeconds) * time.Second
	if heartbeat <= 0 {
		heartbeat = 5 * time.Second
	}
	c.setState(func(s *State) {
		now := time.Now()
		*s = State{Phase: PhaseRegistered, Registered: true, Namespace: ack.Namespace, Name: ack.Name, Ready: p.ready,
			Since: now, LastRegistered: now, Changed: s.Changed}
	})
	c.o.Logger.Info("registered with the controller", "controller", c.o.Addr, "externalworkload", ack.Namespace+"/"+ack.Name, "ready", p.ready)
	done := make(chan error, 1)
	go func() {
		for {
			var a Ack
			if err := stream.RecvMsg(&a); err != nil {
				done <- err
				return
			}
		}
	}()
	period := time.Duration(probe.PeriodSeconds) * time.Second
	tick := time.NewTicker(min(period, heartbeat))
	defer tick.Stop()
	lastSent := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-done:
			return err
		case <-tick.C:
		}
		was := p.ready
		c.probe(ctx, p, probe)
		if p.ready == was && time.Since(lastSent) < heartbeat-time.Second/2 {
			continue
		}
		if err := send(); err != nil {
			return recvErr(stream, err)
		}
		lastSent = time.Now()
		c.setState(func(s *State) { s.Ready = p.ready })
	}
}

// recvErr returns the server's status after a failed send (SendMsg
// returns io.EOF and the status comes from RecvMsg).
func recvErr(stream grpc.ClientStream, err error) error {
	var a Ack
	if rerr := stream.RecvMsg(&a); rerr != nil {
		return rerr
	}
	return err
}

func (c *Client) probe(ctx context.Context, p *prober, o Probe) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(max(o.TimeoutSeconds, 1))*time.Second)
	defer cancel()
	err := c.o.Ready(ctx)
	ok := err == nil
	if !p.started {
		p.started, p.ready = true, ok
	} else if ok != p.ready {
		p.streak++
		if (ok && p.streak >= max(o.SuccessThreshold, 1)) || (!ok && p.streak >= max(o.FailureThreshold, 1)) {
			p.ready, p.streak = ok, 0
		}
	} else {
		p.streak = 0
	}
	if p.ready {
		p.reason, p.message = "ProxyReady", "the host's proxy answers /ready"
	} else if err != nil {
		p.reason, p.message = "ProxyNotReady", "the host's proxy is not ready: "+err.Error()
	}
}

func (c *Client) report(p *prober) *Report {
	return &Report{Group: c.o.Group, Namespace: c.o.Namespace, Name: c.o.Name, IPs: c.o.IPs, Ready: p.ready, Reason: p.reason, Message: p.message}
}

func dialOptions(cfg *tls.Config, maxBackoff time.Duration) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: clientKeepalive, Timeout: 5 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(codec{})),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: minBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxBackoff,
		}, MinConnectTimeout: 5 * time.Second}),
	}
}

// Dial returns a connection to a controller at addr (host:port) with the
// protocol's options; streams open on it with OpenStream. The controller's
// replicas use it to relay to their leader.
func Dial(addr string, cfg *tls.Config) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr, dialOptions(cfg, DefaultMaxBackoff)...)
}

// OpenStream opens a registration stream on conn.
func OpenStream(ctx context.Context, conn *grpc.ClientConn) (grpc.ClientStream, error) {
	return conn.NewStream(ctx, &registerStreamDesc, registerMethod)
}
