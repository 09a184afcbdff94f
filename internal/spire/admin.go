package spire

import (
	"context"
	"fmt"
	"time"

	agentv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/agent/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// pollInterval is how often a readiness poll retries. SPIRE's own steps
// take hundreds of milliseconds (docs/spire.md), so 50ms adds little.
const pollInterval = 50 * time.Millisecond

// dialUnix opens a gRPC client on a unix socket that may not exist yet.
// grpc's reconnect backoff starts at 1s by default (grpc backoff.DefaultConfig),
// which would dominate a start that takes about a second; poll faster.
func dialUnix(path string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(fastConnect))
	if err != nil {
		return nil, fmt.Errorf("creating gRPC client for %s: %w", path, err)
	}
	return conn, nil
}

var fastConnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: pollInterval, Multiplier: 1.5, Jitter: 0.1, MaxDelay: time.Second},
	MinConnectTimeout: time.Second,
}

// waitServing polls gRPC health on conn until it reports SERVING or ctx
// ends. what names the thing awaited in the error.
func waitServing(ctx context.Context, conn *grpc.ClientConn, what string) error {
	client := healthpb.NewHealthClient(conn)
	var last error
	for {
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := client.Check(callCtx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("health status %s", resp.GetStatus())
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last health check: %v)", what, ctx.Err(), last)
		case <-time.After(pollInterval):
		}
	}
}

// registration is what the embedded server is told through its admin API.
type registration struct {
	trustDomain string
	workload    string // path segment of the workload's SPIFFE ID
	proxyUID    uint32
	tokenTTL    time.Duration
	svidTTL     time.Duration // the entry's X.509 SVID TTL; 0: the server's default
}

// createEntry creates the workload's entry (parent: the agent alias,
// selector: the proxy's uid only), or finds it there already: a server that
// kept its datastore has it from an earlier run.
func createEntry(ctx context.Context, conn *grpc.ClientConn, r registration) error {
	entry := &types.Entry{
		SpiffeId:    &types.SPIFFEID{TrustDomain: r.trustDomain, Path: "/" + r.workload},
		ParentId:    &types.SPIFFEID{TrustDomain: r.trustDomain, Path: agentPath},
		Selectors:   []*types.Selector{{Type: "unix", Value: fmt.Sprintf("uid:%d", r.proxyUID)}},
		X509SvidTtl: int32(r.svidTTL / time.Second),
	}
	resp, err := entryv1.NewEntryClient(conn).BatchCreateEntry(ctx, &entryv1.BatchCreateEntryRequest{Entries: []*types.Entry{entry}})
	if err != nil {
		return fmt.Errorf("creating the registration entry through the SPIRE server's admin API: %w", err)
	}
	for _, res := range resp.GetResults() {
		if c := codes.Code(res.GetStatus().GetCode()); c != codes.OK && c != codes.AlreadyExists {
			return fmt.Errorf("creating the registration entry for spiffe://%s/%s: %s: %s", r.trustDomain, r.workload, c, res.GetStatus().GetMessage())
		}
	}
	return nil
}

// createJoinToken creates a join token whose agent gets the alias the entry
// is parented to, and returns its value.
func createJoinToken(ctx context.Context, conn *grpc.ClientConn, r registration) (string, error) {
	tok, err := agentv1.NewAgentClient(conn).CreateJoinToken(ctx, &agentv1.CreateJoinTokenRequest{
		Ttl:     int32(r.tokenTTL / time.Second),
		AgentId: &types.SPIFFEID{TrustDomain: r.trustDomain, Path: agentPath},
	})
	if err != nil {
		return "", fmt.Errorf("creating a join token through the SPIRE server's admin API: %w", err)
	}
	return tok.GetValue(), nil
}

// register creates the entry and a join token for it (for servers the
// tests and benchmarks start themselves).
func register(ctx context.Context, conn *grpc.ClientConn, r registration) (string, error) {
	if err := createEntry(ctx, conn, r); err != nil {
		return "", err
	}
	return createJoinToken(ctx, conn, r)
}

// healthCheck is one gRPC health check (for the benchmark's floor loop).
func healthCheck(ctx context.Context, conn *grpc.ClientConn) error {
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		err = fmt.Errorf("health status %s", resp.GetStatus())
	}
	return err
}

func grpcInsecure() grpc.DialOption {
	return grpc.WithTransportCredentials(insecure.NewCredentials())
}
